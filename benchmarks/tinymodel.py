"""A tiny real classifier graph built in memory with onnx.helper (Conv → ReLU → GlobalAveragePool
→ Gemm), carrying catdog metadata. `doctor` proves providers with it; tests benchmark it. The baked
variant takes NHWC uint8 crops and does the normalization inside the graph, like --bake-preprocess."""

from __future__ import annotations

import numpy as np

from catdog.runtime.metadata import METADATA_KEY, ModelMetadata
from catdog.runtime.spec import PreprocessSpec


def tiny_spec(size: int = 32) -> PreprocessSpec:
    return PreprocessSpec(size=size, resize=size + size // 8, interpolation="bilinear")


def tiny_classifier(size: int = 32, classes: tuple[str, ...] = ("cat", "dog"), baked: bool = False,
                    width: int = 8, seed: int = 0, batch: int | str = "N") -> bytes:
    """Serialized ONNX model; input 'input' (batch dim `batch`: "N" = dynamic), output 'logits'."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    spec = tiny_spec(size)
    inits = [
        numpy_helper.from_array(rng.standard_normal((width, 3, 3, 3)).astype(np.float32) * 0.3, "conv_w"),
        numpy_helper.from_array(rng.standard_normal(width).astype(np.float32) * 0.1, "conv_b"),
        numpy_helper.from_array(rng.standard_normal((len(classes), width)).astype(np.float32), "fc_w"),
        numpy_helper.from_array(rng.standard_normal(len(classes)).astype(np.float32) * 0.1, "fc_b"),
    ]
    nodes = []
    x = "input"
    if baked:  # uint8 NHWC crop -> float NCHW normalized: x * a - b with a = scale/std, b = mean/std
        std, mean = np.asarray(spec.std, np.float32), np.asarray(spec.mean, np.float32)
        inits += [numpy_helper.from_array((spec.scale / std).reshape(1, 3, 1, 1).astype(np.float32), "pre_a"),
                  numpy_helper.from_array((mean / std).reshape(1, 3, 1, 1).astype(np.float32), "pre_b")]
        nodes += [helper.make_node("Cast", ["input"], ["x_f"], to=TensorProto.FLOAT),
                  helper.make_node("Transpose", ["x_f"], ["x_t"], perm=[0, 3, 1, 2]),
                  helper.make_node("Mul", ["x_t", "pre_a"], ["x_m"]),
                  helper.make_node("Sub", ["x_m", "pre_b"], ["x_n"])]
        x = "x_n"
    nodes += [
        helper.make_node("Conv", [x, "conv_w", "conv_b"], ["c"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["logits"], transB=1),
    ]
    if baked:
        inp = helper.make_tensor_value_info("input", TensorProto.UINT8, [batch, size, size, 3])
    else:
        inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, size, size])
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, len(classes)])
    graph = helper.make_graph(nodes, "catdog_tiny", [inp], [out], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = min(model.ir_version, 9)  # loadable by older onnxruntime (JetPack wheels)
    meta = ModelMetadata(classes=tuple(classes), spec=spec, arch="tiny",
                         input_format="uint8" if baked else "float")
    helper.set_model_props(model, {METADATA_KEY: meta.to_json()})
    onnx.checker.check_model(model)
    return model.SerializeToString()


def tiny_macs(size: int = 32, width: int = 8, classes: int = 2) -> int:
    """The MACs the flops counter must find in tiny_classifier at batch 1 (for tests)."""
    out = (size + 1) // 2
    return out * out * width * 3 * 3 * 3 + width * classes
