"""The spine every stage shares (train, export, benchmarks and the runtime all import it): the
preprocessing spec and the one preprocess(), the model metadata block, the one image reader, the
one labelled-folder reader, atomic file writes, metrics, the error classes and the CLI boundary.
Imports nothing above it: numpy, and OpenCV lazily."""
