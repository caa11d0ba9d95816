"""--bake-preprocess: prepend the spine's normalize() to the graph. The baked model takes what
resize_crop returns, stacked: uint8 NHWC (N,S,S,3) in spec.channel_order. Inside: Cast to float,
x * a - b with the same float32 a = scale/std and b = mean/std as normalize() (so the arithmetic
is the same, operation for operation), then Transpose to NCHW."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from catdog.runtime.spine.preprocess import normalize_affine
from catdog.runtime.spine.spec import PreprocessSpec

BAKED_INPUT = "input"  # same name as the float model: the metadata's input_format tells them apart


def bake_preprocess(fp32: onnx.ModelProto, spec: PreprocessSpec) -> onnx.ModelProto:
    model = onnx.ModelProto()
    model.CopyFrom(fp32)
    g = model.graph
    if len(g.input) != 1:
        raise ValueError(f"expected one graph input, got {len(g.input)}")
    old = g.input[0]
    inner = "preprocessed_" + old.name
    for node in g.node:
        for i, name in enumerate(node.input):
            if name == old.name:
                node.input[i] = inner
    a, b = normalize_affine(spec)  # the spine's own constants, shape (3,): broadcast over NHWC's last axis
    consts = [
        numpy_helper.from_array(np.asarray(a, np.float32).reshape(3), "bake_a"),
        numpy_helper.from_array(np.asarray(b, np.float32).reshape(3), "bake_b"),
    ]
    pre = [
        helper.make_node("Cast", [BAKED_INPUT], ["bake_float"], name="bake_cast", to=TensorProto.FLOAT),
        helper.make_node("Mul", ["bake_float", "bake_a"], ["bake_scaled"], name="bake_mul"),
        helper.make_node("Sub", ["bake_scaled", "bake_b"], ["bake_norm"], name="bake_sub"),
        helper.make_node("Transpose", ["bake_norm"], [inner], name="bake_nchw", perm=[0, 3, 1, 2]),
    ]
    nodes = pre + list(g.node)
    del g.node[:]
    g.node.extend(nodes)
    g.initializer.extend(consts)
    new_input = helper.make_tensor_value_info(BAKED_INPUT, TensorProto.UINT8, ["batch", spec.size, spec.size, 3])
    del g.input[:]
    g.input.extend([new_input])
    del g.value_info[:]
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    onnx.checker.check_model(model)
    return model
