"""onnxsim, trusted only after it is shown to give the same answers on real preprocessed images.
If it fails or changes the logits, the unsimplified graph is kept and the reason is recorded."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from catdog.runtime.spine.errors import error_line

# Simplification folds constants (e.g. BatchNorm into Conv); that moves logits by float rounding
# only (~1e-6). Anything above this is a change of answers, not rounding.
SIMPLIFY_TOL = 1e-5


@dataclass(frozen=True)
class SimplifyResult:
    model: onnx.ModelProto
    simplified: bool
    note: str
    max_abs_diff: float | None = None


def run_onnx(model: onnx.ModelProto, x: np.ndarray, chunk: int = 16, simulate_qdq: bool = False) -> np.ndarray:
    """An in-memory graph (not yet a file, so not for runtime.open_session) on the CPU, `chunk`
    images per run: export's one way to score a candidate graph. `simulate_qdq`: as in
    runtime.session.open_session (graph optimization off: fake quantization on fp32 kernels)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if simulate_qdq:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: x[i : i + chunk]})[0] for i in range(0, len(x), chunk)])


def _kept(model: onnx.ModelProto, why: str, diff: float | None = None) -> SimplifyResult:
    return SimplifyResult(model=model, simplified=False, note=f"{why}; kept the unsimplified graph", max_abs_diff=diff)


def simplify(model: onnx.ModelProto, check_inputs: np.ndarray) -> SimplifyResult:
    """`check_inputs`: a real preprocessed batch (N,3,S,S) to compare both graphs on."""
    import onnxsim

    try:
        simple, ok = onnxsim.simplify(model)
    except Exception as e:  # onnxsim raises whatever its passes raise
        return _kept(model, f"onnxsim failed ({type(e).__name__}: {error_line(e, limit=120)})")
    if not ok:
        return _kept(model, "onnxsim's own check failed")
    names = [[v.name for v in g.input] + [v.name for v in g.output] for g in (simple.graph, model.graph)]
    if names[0] != names[1]:
        return _kept(model, "onnxsim renamed inputs/outputs")
    diff = float(np.max(np.abs(run_onnx(simple, check_inputs) - run_onnx(model, check_inputs))))
    if not diff <= SIMPLIFY_TOL:
        return _kept(model, f"onnxsim changed logits by {diff:.2e} (> {SIMPLIFY_TOL:g})", diff)
    before, after = len(model.graph.node), len(simple.graph.node)
    note = f"simplified with onnxsim: {before} -> {after} nodes, max |dlogit| {diff:.1e}"
    return SimplifyResult(model=simple, simplified=True, note=note, max_abs_diff=diff)
