"""onnxsim, trusted only after it is shown to give the same answers on real preprocessed images.
If it fails or changes the logits, the unsimplified graph is kept and the reason is recorded."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

# Simplification folds constants (e.g. BatchNorm into Conv); that moves logits by float rounding
# only (~1e-6). Anything above this is a change of answers, not rounding.
SIMPLIFY_TOL = 1e-5


@dataclass(frozen=True)
class SimplifyResult:
    model: onnx.ModelProto
    simplified: bool
    note: str
    max_abs_diff: float | None = None


def run_onnx(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def simplify(model: onnx.ModelProto, check_inputs: np.ndarray) -> SimplifyResult:
    """`check_inputs`: a real preprocessed batch (N,3,S,S) to compare both graphs on."""
    import onnxsim

    try:
        simple, ok = onnxsim.simplify(model)
    except Exception as e:  # onnxsim raises whatever its passes raise
        return SimplifyResult(model, False, f"onnxsim failed ({type(e).__name__}: {str(e)[:120]}); kept the unsimplified graph")
    if not ok:
        return SimplifyResult(model, False, "onnxsim's own check failed; kept the unsimplified graph")
    if [i.name for i in simple.graph.input] != [i.name for i in model.graph.input] or [
        o.name for o in simple.graph.output
    ] != [o.name for o in model.graph.output]:
        return SimplifyResult(model, False, "onnxsim renamed inputs/outputs; kept the unsimplified graph")
    diff = float(np.max(np.abs(run_onnx(simple, check_inputs) - run_onnx(model, check_inputs))))
    if not diff <= SIMPLIFY_TOL:
        return SimplifyResult(
            model, False, f"onnxsim changed logits by {diff:.2e} (> {SIMPLIFY_TOL:g}); kept the unsimplified graph", diff
        )
    before, after = len(model.graph.node), len(simple.graph.node)
    return SimplifyResult(simple, True, f"simplified with onnxsim: {before} -> {after} nodes, max |dlogit| {diff:.1e}", diff)
