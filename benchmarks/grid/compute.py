"""Compute: what a model asks (parameters and GFLOPs counted from its ONNX graph) and what this
machine gives (its measured float32 peak). '% of peak' = achieved GFLOP/s (model GFLOPs × images/s)
over that peak. onnx is optional: without it the counts are None and the CPU peak is numpy's.

Counting: MACs of Conv/ConvInteger/QLinearConv, Gemm and MatMul(-Integer/QLinear) come from tensor
shapes after onnx shape inference at batch 1; FLOPs = 2 × MACs (the usual convention; elementwise
ops, pooling and activations are not counted, which is a few percent on a CNN).

Peak: the best GFLOP/s of a large GEMM. With onnx installed it is an onnxruntime MatMul (the MLAS
kernels the convolutions use) in a runtime session on the same provider and thread count as the
artifacts; without onnx a numpy matmul on all cores (said in the report)."""

from __future__ import annotations

import importlib.util
import tempfile
import time
from math import prod
from pathlib import Path
from typing import Any, Callable

import numpy as np

from catdog.benchmarks.common.schema import Peak
from catdog.benchmarks.grid.artifacts import ort_has
from catdog.benchmarks.grid.runners import DEFAULT_GPU, GpuSettings, torch_tf32

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


def _shapes(model: Any, size: int | None) -> tuple[int, dict[str, tuple[int, ...]]]:
    """(weight parameter count, every tensor shape known after shape inference)."""
    from onnx import shape_inference

    inits = {t.name: tuple(t.dims) for t in model.graph.initializer}
    # Weights only: scales/zero points are scalars or per-channel vectors of one dim.
    params = sum(prod(d) for d in inits.values() if len(d) >= 1 and prod(d) > 1)
    for node in model.graph.node:  # Constant-node weights (some exporters) count too
        if node.op_type == "Constant" and node.attribute and node.attribute[0].HasField("t"):
            inits[node.output[0]] = tuple(node.attribute[0].t.dims)
    _fix_batch(model, size)
    try:
        model = shape_inference.infer_shapes(model, data_prop=True)
    except Exception:  # noqa: BLE001 - an unusual graph: count what we can from declared shapes
        pass
    shapes: dict[str, tuple[int, ...]] = dict(inits)
    for vi in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output):
        dims = vi.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            shapes[vi.name] = tuple(d.dim_value for d in dims)
    return int(params), shapes


def count(path: Path, size: int | None = None) -> dict[str, Any] | None:
    """{"params", "macs", "gflops", "uncounted_nodes"} for one ONNX file, or None without onnx."""
    if not onnx_available():
        return None
    import onnx

    model = onnx.load(str(path))
    params, shapes = _shapes(model, size)
    macs, unknown = 0, 0
    for node in model.graph.node:
        if node.op_type not in _CONV_W and node.op_type not in _MATMUL_B:
            continue
        conv = node.op_type in _CONV_W
        w = shapes.get(node.input[_CONV_W[node.op_type] if conv else _MATMUL_B[node.op_type]])
        out = shapes.get(node.output[0])
        if w is None or out is None:
            unknown += 1
        elif conv:
            macs += prod(out) * prod(w[1:])  # each output element: Cin/group × kh × kw MACs
        else:
            trans_b = any(a.name == "transB" and a.i for a in node.attribute)
            k = w[-1] if (node.op_type == "Gemm" and trans_b) else w[-2] if len(w) >= 2 else w[0]
            macs += prod(out) * k
    return {"params": params, "macs": int(macs), "gflops": 2 * macs / 1e9, "uncounted_nodes": unknown}


def matmul_model(n: int) -> bytes:
    """A serialized ONNX graph: Y = X @ W, X and W both n × n float32 (W an initializer)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["Y"])],
        "peak_gemm",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [n, n])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [n, n])],
        [numpy_helper.from_array(w, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = min(model.ir_version, 9)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _best_gflops(fn: Callable[[], Any], flops: float, repeats: int, min_s: float) -> float:
    fn()  # warm-up
    best = float("inf")
    t_end = time.perf_counter() + min_s
    for i in range(repeats * 100):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
        if i + 1 >= repeats and time.perf_counter() >= t_end:
            break
    return flops / best / 1e9


def _torch_peak(provider: str, threads: int | None, n: int, repeats: int, min_s: float, gpu: GpuSettings) -> Peak:
    import torch

    device = f"cuda:{gpu.device_id}"
    a = torch.randn(n * 4, n * 4, device=device)
    torch_tf32(gpu.tf32)  # the math the CUDA rows run with, so % of peak compares like with like

    def mm() -> None:
        a @ a
        torch.cuda.synchronize(device)

    gflops = _best_gflops(mm, 2.0 * (4 * n) ** 3, repeats, min_s)
    math = "TF32" if gpu.tf32 else "fp32, no TF32"
    return Peak(gflops, f"torch matmul {4 * n}^3 on {device} ({math})", provider, threads)


def _ort_peak(provider: str, threads: int | None, n: int, repeats: int, min_s: float, gpu: GpuSettings) -> Peak:
    from catdog.runtime.engine.session import open_session

    # TensorRT would rebuild an engine for a one-op graph; its peak is the CUDA GEMM peak.
    p = "cuda" if provider == "tensorrt" else provider
    with tempfile.TemporaryDirectory(prefix="catdog-peak-") as tmp:
        path = Path(tmp) / "peak_gemm.onnx"  # the runtime opens files; the session keeps its own copy
        path.write_bytes(matmul_model(n))
        sess = open_session(path, p, threads=threads, log=None, spinning=True, device_id=gpu.device_id,
                            batches=(n,), cuda_tf32=gpu.tf32)
    x = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
    gflops = _best_gflops(lambda: sess.run(x), 2.0 * n**3, repeats, min_s)
    how = f"onnxruntime MatMul {n}x{n}x{n} fp32 on {p}, {threads or 'default'} threads"
    if p != "cpu":
        how = f"onnxruntime MatMul {n}x{n}x{n} on {p}:{gpu.device_id} ({'TF32' if gpu.tf32 else 'fp32, no TF32'})"
    return Peak(gflops, how, provider, threads)


def measure_peak(provider: str = "cpu", threads: int | None = None, n: int = 1024,
                 repeats: int = 5, min_s: float = 0.3, gpu: GpuSettings = DEFAULT_GPU) -> Peak:
    """Best-of-`repeats` GFLOP/s of an n × n × n float32 GEMM (2n³ FLOPs)."""
    if provider != "cpu" and not ort_has("cuda" if provider == "tensorrt" else provider):
        return _torch_peak(provider, threads, n, repeats, min_s, gpu)  # cuda offered by torch alone
    if onnx_available():
        return _ort_peak(provider, threads, n, repeats, min_s, gpu)
    if provider != "cpu":
        return Peak(None, "n/a (needs onnx to build the GEMM graph)")
    rng = np.random.default_rng(1)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    gflops = _best_gflops(lambda: a @ b, 2.0 * n**3, repeats, min_s)
    return Peak(gflops, f"numpy matmul {n}x{n}x{n} fp32, all cores (BLAS threads not set)", provider, threads)
