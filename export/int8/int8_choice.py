"""INT8's choices, made on photos no gate looks at: the calibration method (unless --calib-method
fixes it) and which boundary layers stay fp32 are picked among a few candidates by top-1 agreement
with the fp32 ONNX graph, then the smallest max |dprob|, on held-out calibration-folder images
that were neither calibration nor parity images; then the per-layer sensitivity (sensitivity.py)
may keep a few more layers in fp32, on the same held-out images. The parity sets only measure the
result."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import onnx

from catdog.export.builders.simplify import run_onnx
from catdog.export.int8.quantize import CALIB_CANDIDATES, DEFAULT_CALIB_METHOD, DEFAULT_KEEP, KEEP_FP32, Int8Quantizer
from catdog.export.int8.sensitivity import Sensitivity, SensitivityConfig, refine
from catdog.runtime.spine.isa import SIMULATED, int8_path, kernels_label
from catdog.runtime.spine.metrics import softmax


@dataclass(frozen=True)
class Candidate:
    method: str
    keep_fp32: str  # a key of quantize.KEEP_FP32
    agree: int  # held-out images whose top-1 class is fp32's
    n: int
    max_abs_prob: float
    max_abs_logit: float

    @property
    def agreement(self) -> float:
        return self.agree / self.n


@dataclass
class Int8Choice:
    method: str
    keep_fp32: str
    held_out: int  # images the choice was made on; 0: no choice was made (see `how`)
    how: str
    candidates: list[Candidate] = field(default_factory=list)
    sensitivity: Sensitivity | None = None  # None: not measured (`sensitivity_why`)
    sensitivity_why: str = ""

    @property
    def kept_layers(self) -> list[str]:
        """Node names kept in fp32 besides the KEEP_FP32[keep_fp32] set."""
        return list(self.sensitivity.kept) if self.sensitivity is not None else []

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for c, obj in zip(d["candidates"], self.candidates, strict=True):
            c["agreement"] = obj.agreement
        d["kept_layers"] = self.kept_layers
        if self.sensitivity is not None:
            d["sensitivity"]["k"] = self.sensitivity.k
            d["sensitivity"]["share_sum"] = sum(r.share for r in self.sensitivity.layers)
        return d


def _measure(method: str, keep: str, ref: np.ndarray, got: np.ndarray) -> Candidate:
    ref, got = ref.astype(np.float64), got.astype(np.float64)  # a 1e-7 dprob must not be float32 rounding
    return Candidate(method, keep, int(np.sum(ref.argmax(1) == got.argmax(1))), len(ref),
                     float(np.max(np.abs(softmax(ref) - softmax(got)))), float(np.max(np.abs(ref - got))))


def _measured_on(simulate_qdq: bool) -> str:
    return SIMULATED if simulate_qdq else kernels_label(int8_path())


def choose_int8(q: Int8Quantizer, fp32: onnx.ModelProto, held: np.ndarray | None, method: str | None,
                why_not: str | None = None, simulate_qdq: bool = False,
                sensitivity: SensitivityConfig | None = None) -> tuple[onnx.ModelProto, Int8Choice]:
    """The INT8 model of the best candidate, with the layers the per-layer sensitivity keeps in
    fp32. `held`: preprocessed held-out calibration images, or None with `why_not` saying why there
    are none (the defaults are then used, and said so). `simulate_qdq`: score candidates by
    simulated quantization, not this CPU's integer kernels (for a model that another engine will
    run). `sensitivity`: its settings (None: the defaults)."""
    if held is None or len(held) == 0:
        chosen = method or DEFAULT_CALIB_METHOD
        how = f"nothing chosen ({why_not}): {'the given' if method else 'the default'} method, default fp32 layers"
        return q.build(chosen, DEFAULT_KEEP), Int8Choice(chosen, DEFAULT_KEEP, 0, how,
                                                         sensitivity_why=f"not measured: nothing chosen ({why_not})")
    ref = run_onnx(fp32, held)
    methods = (method,) if method else CALIB_CANDIDATES
    best: tuple[tuple, onnx.ModelProto, Candidate] | None = None
    results = []
    for i, (m, keep) in enumerate((m, k) for m in methods for k in KEEP_FP32):
        model = q.build(m, keep)
        cand = _measure(m, keep, ref, run_onnx(model, held, simulate_qdq=simulate_qdq))
        results.append(cand)
        key = (-cand.agree, cand.max_abs_prob, i)  # ties: the earlier candidate (the old default first)
        if best is None or key < best[0]:
            best = (key, model, cand)
    assert best is not None
    _, model, cand = best
    fixed = f"--calib-method {method} given; " if method else ""
    how = (f"{fixed}chosen on {len(held)} held-out calibration images, not on the parity sets: "
           f"top-1 agreement with fp32 ONNX, then max |dprob|, measured on {_measured_on(simulate_qdq)}")
    choice = Int8Choice(cand.method, cand.keep_fp32, len(held), how, results)
    cfg = sensitivity or SensitivityConfig()
    if not cfg.enabled:
        choice.sensitivity_why = "not measured: per-layer sensitivity switched off (--no-int8-sensitivity)"
        return model, choice
    def score(m: onnx.ModelProto) -> Candidate:
        return _measure(cand.method, cand.keep_fp32, ref, run_onnx(m, held, simulate_qdq=simulate_qdq))

    model, choice.sensitivity = refine(q, cand.method, cand.keep_fp32, model, cand, score, held, cfg)
    if choice.kept_layers:
        choice.how += (f"; per-layer sensitivity also kept {len(choice.kept_layers)} layer(s) in fp32: "
                       + ", ".join(choice.kept_layers))
    return model, choice
