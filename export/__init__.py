"""catdog.export: checkpoint -> TorchScript and ONNX (fp32, fp16, INT8, baked preprocessing), with parity gates."""
