"""Parameter count and GFLOPs counted from the ONNX graph (onnx is optional: without it, None).

MACs of Conv/ConvInteger/QLinearConv, Gemm and MatMul(-Integer/QLinear) come from tensor shapes
after onnx shape inference at batch 1; FLOPs = 2 × MACs (the usual convention; elementwise ops,
pooling and activations are not counted, which is a few percent on a CNN)."""

from __future__ import annotations

import importlib.util
from math import prod
from pathlib import Path
from typing import Any

# op type -> index of the weight input (the one whose shape gives the kernel)
_CONV_W = {"Conv": 1, "ConvInteger": 1, "QLinearConv": 3}
_MATMUL_B = {"MatMul": 1, "MatMulInteger": 1, "QLinearMatMul": 3, "Gemm": 1}


def onnx_available() -> bool:
    return importlib.util.find_spec("onnx") is not None


def _fix_batch(model: Any, size: int | None) -> None:
    """Give every symbolic input dim a number (batch 1, spatial `size`) so shapes infer."""
    for inp in model.graph.input:
        dims = inp.type.tensor_type.shape.dim
        for i, d in enumerate(dims):
            if not d.HasField("dim_value"):
                d.dim_value = 1 if i == 0 else (size or 224)


def count(path: Path, size: int | None = None) -> dict[str, Any] | None:
    """{"params", "macs", "gflops"} for one ONNX file, or None when onnx is not installed."""
    if not onnx_available():
        return None
    import onnx
    from onnx import shape_inference

    model = onnx.load(str(path))
    inits = {t.name: tuple(t.dims) for t in model.graph.initializer}
    # Weights only: scales/zero points are scalars or per-channel vectors of one dim.
    params = sum(prod(d) for d in inits.values() if len(d) >= 1 and prod(d) > 1)
    for node in model.graph.node:  # Constant-node weights (some exporters) count too
        if node.op_type == "Constant" and node.attribute and node.attribute[0].HasField("t"):
            inits[node.output[0]] = tuple(node.attribute[0].t.dims)
    _fix_batch(model, size)
    try:
        model = shape_inference.infer_shapes(model, data_prop=True)
    except Exception:  # an unusual graph: count what we can from declared shapes
        pass
    shapes: dict[str, tuple[int, ...]] = dict(inits)
    for vi in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output):
        dims = vi.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            shapes[vi.name] = tuple(d.dim_value for d in dims)
    macs, unknown = 0, 0
    for node in model.graph.node:
        if node.op_type in _CONV_W:
            w = shapes.get(node.input[_CONV_W[node.op_type]])
            out = shapes.get(node.output[0])
            if w is None or out is None:
                unknown += 1
                continue
            macs += prod(out) * prod(w[1:])  # each output element: Cin/group × kh × kw MACs
        elif node.op_type in _MATMUL_B:
            b = shapes.get(node.input[_MATMUL_B[node.op_type]])
            out = shapes.get(node.output[0])
            if b is None or out is None:
                unknown += 1
                continue
            trans_b = any(a.name == "transB" and a.i for a in node.attribute)
            k = b[-1] if (node.op_type == "Gemm" and trans_b) else b[-2] if len(b) >= 2 else b[0]
            macs += prod(out) * k
    return {"params": int(params), "macs": int(macs), "gflops": 2 * macs / 1e9, "uncounted_nodes": unknown}
