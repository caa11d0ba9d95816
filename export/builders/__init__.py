"""A model or a graph made into an artifact: TorchScript (torchscript), fp32 ONNX (onnx_export),
flip TTA (tta), baked preprocessing (bake), fp16 (fp16), onnxsim proved on real images (simplify),
and the metadata stamped into every artifact (meta)."""
