"""The engine: ONNX Runtime sessions with an honest provider choice (TensorRT, CUDA, CPU), the
Classifier that runs the spine's preprocessing through them, stage timings, the shipped model.
Imports the spine only."""
