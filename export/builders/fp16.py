"""fp16 weights and compute for GPUs, with fp32 graph inputs and outputs kept, written with onnx +
numpy (no onnxconverter-common): float initializers and constants become float16, a Cast to fp16
follows each float input and a Cast back to fp32 precedes each output. Inputs that ONNX requires
to stay float32 whatever the data type (Resize roi/scales, ...) are left alone. On ORT's CPU
provider, ops without an fp16 kernel get Casts inserted by ORT itself, so the model still runs."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# op_type -> input positions whose float tensors must stay float32 (per the ONNX op schemas).
FP32_ONLY_INPUTS: dict[str, tuple[int, ...]] = {
    "Resize": (1, 2),  # roi, scales
    "Upsample": (1,),  # scales
}
_FP16_MAX = float(np.finfo(np.float16).max)


def _keep_fp32(graph: onnx.GraphProto) -> set[str]:
    keep = set()
    for node in graph.node:
        for i in FP32_ONLY_INPUTS.get(node.op_type, ()):
            if i < len(node.input) and node.input[i]:
                keep.add(node.input[i])
    return keep


def _to_fp16(t: onnx.TensorProto) -> onnx.TensorProto:
    # Weights beyond fp16's range saturate instead of becoming inf.
    arr = np.clip(numpy_helper.to_array(t), -_FP16_MAX, _FP16_MAX).astype(np.float16)
    return numpy_helper.from_array(arr, t.name)


def _rename_inputs(graph: onnx.GraphProto, old: str, new: str) -> None:
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new


def convert_fp16(fp32: onnx.ModelProto) -> onnx.ModelProto:
    model = onnx.ModelProto()
    model.CopyFrom(fp32)
    g = model.graph
    keep = _keep_fp32(g)
    for i, t in enumerate(g.initializer):
        if t.data_type == TensorProto.FLOAT and t.name not in keep:
            g.initializer[i].CopyFrom(_to_fp16(t))
    for node in g.node:
        if node.op_type == "Constant" and node.output[0] not in keep:
            for attr in node.attribute:
                if attr.name == "value" and attr.t.data_type == TensorProto.FLOAT:
                    attr.t.CopyFrom(_to_fp16(attr.t))
        if node.op_type == "Cast" and node.output[0] not in keep:
            for attr in node.attribute:
                if attr.name == "to" and attr.i == TensorProto.FLOAT:
                    attr.i = TensorProto.FLOAT16
    head, tail = [], []
    for inp in g.input:
        if inp.type.tensor_type.elem_type == TensorProto.FLOAT:
            inner = inp.name + "_fp16"
            _rename_inputs(g, inp.name, inner)
            head.append(helper.make_node("Cast", [inp.name], [inner], name=inner + "_cast", to=TensorProto.FLOAT16))
    for out in g.output:
        if out.type.tensor_type.elem_type == TensorProto.FLOAT:
            inner = out.name + "_fp16"
            for node in g.node:
                for i, name in enumerate(node.output):
                    if name == out.name:
                        node.output[i] = inner
            _rename_inputs(g, out.name, inner)
            tail.append(helper.make_node("Cast", [inner], [out.name], name=out.name + "_cast", to=TensorProto.FLOAT))
    nodes = head + list(g.node) + tail
    del g.node[:]
    g.node.extend(nodes)
    del g.value_info[:]  # stale fp32 types; shape inference recomputes them
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    onnx.checker.check_model(model)
    return model
