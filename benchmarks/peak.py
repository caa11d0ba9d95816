"""This machine's measured float32 peak: the best GFLOP/s of a large GEMM. With onnx installed the
GEMM is an onnxruntime MatMul (the MLAS kernels the convolutions use) on the same provider and
thread count as the artifacts; without onnx it is a numpy matmul on all cores (said in the report).
'% of peak' = achieved GFLOP/s (model GFLOPs × images/s) / this peak."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from catdog.benchmarks.flops import onnx_available


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


def _best_gflops(fn: Any, flops: float, repeats: int, min_s: float) -> float:
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


def measure_peak(provider: str = "cpu", threads: int | None = None, n: int = 1024,
                 repeats: int = 5, min_s: float = 0.3) -> dict[str, Any]:
    """Best-of-`repeats` GFLOP/s of an n × n × n float32 GEMM (2n³ FLOPs)."""
    flops = 2.0 * n**3
    from catdog.benchmarks.backends import ort_has

    gpu_without_ort = provider != "cpu" and not ort_has("cuda" if provider == "tensorrt" else provider)
    if gpu_without_ort:  # cuda offered by torch alone: its GEMM is the GPU's fp32 peak
        import torch

        a = torch.randn(n * 4, n * 4, device="cuda")
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 peak, not TF32

        def mm() -> None:
            a @ a
            torch.cuda.synchronize()

        gflops = _best_gflops(mm, 2.0 * (4 * n) ** 3, repeats, min_s)
        return {"gflops": gflops, "method": f"torch matmul {4 * n}^3 fp32 on CUDA (no TF32)", "provider": provider,
                "threads": threads}
    if onnx_available():
        import onnxruntime as ort

        from catdog.benchmarks.backends import PROVIDERS, ort_provider_list

        so = ort.SessionOptions()
        if threads:
            so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        # TensorRT would rebuild an engine for a one-op graph; its peak is the CUDA GEMM peak.
        p = "cuda" if provider == "tensorrt" else provider
        sess = ort.InferenceSession(matmul_model(n), so, providers=ort_provider_list(p))
        if sess.get_providers()[0] != PROVIDERS[p].ort:
            raise RuntimeError(f"peak GEMM did not get {PROVIDERS[p].ort}")
        x = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
        gflops = _best_gflops(lambda: sess.run(None, {"X": x}), flops, repeats, min_s)
        how = f"onnxruntime MatMul {n}x{n}x{n} fp32 on {p}, {threads or 'default'} threads"
    else:
        if provider != "cpu":
            return {"gflops": None, "method": "n/a (needs onnx to build the GEMM graph)"}
        rng = np.random.default_rng(1)
        a = rng.standard_normal((n, n), dtype=np.float32)
        b = rng.standard_normal((n, n), dtype=np.float32)
        gflops = _best_gflops(lambda: a @ b, flops, repeats, min_s)
        how = f"numpy matmul {n}x{n}x{n} fp32, all cores (BLAS threads not set)"
    return {"gflops": gflops, "method": how, "provider": provider, "threads": threads}
