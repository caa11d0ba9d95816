"""catdog.train: data layouts, the model registry, the training engine and checkpoints."""
