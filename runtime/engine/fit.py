"""Does a model fit what the spine feeds it? Input rank, size, channels and dtype against the
preprocessing spec, one score per class; and the spec of a third-party model (ImageNet defaults
at its own input size, then the user's flags). Every mismatch is one line naming the file."""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from catdog.runtime.engine.session import Session
from catdog.runtime.spine.errors import ModelError
from catdog.runtime.spine.metadata import ModelMetadata
from catdog.runtime.spine.spec import PreprocessSpec


def looks_like_probs(x: np.ndarray) -> bool:
    """Rows already in [0, 1] that sum to 1: the model ends in a softmax."""
    return bool(x.size) and x.min() >= 0.0 and x.max() <= 1.0 and np.allclose(x.sum(axis=1), 1.0, atol=1e-3)


def probs_problem(x: np.ndarray, tol: float = 1e-3) -> str | None:
    """What is wrong with outputs a model's metadata calls probabilities (`output: probs`), or None:
    every value in [0, 1] and every row summing to 1 (an fp16 softmax is off by ~1e-3 at most)."""
    if not x.size or not np.isfinite(x).all():
        return None  # NaN/inf is the Classifier's own error, per row
    lo, hi = float(x.min()), float(x.max())
    if lo < -tol or hi > 1.0 + tol:
        return f"values from {lo:.4g} to {hi:.4g}, outside [0, 1]"
    sums = x.sum(axis=1)
    worst = float(sums[np.argmax(np.abs(sums - 1.0))])
    if abs(worst - 1.0) > 10 * tol:
        return f"a row summing to {worst:.4g}, not 1"
    return None


def check_output_claim(session: Session, meta: ModelMetadata, out: np.ndarray) -> bool:
    """Refuse a model whose output contradicts its metadata's `output: probs`: scores taken as
    probabilities without a softmax would be reported as they are (a score of 5.51, a probability of
    -4.76). Logits need no check: any finite numbers are logits. True once checked."""
    if meta.output != "probs":
        return True
    problem = probs_problem(np.asarray(out, np.float32).reshape(len(out), -1))
    if problem:
        raise ModelError(f"{session.path}: its metadata says the output is probabilities (output: probs) but the "
                         f"model gives {problem}; fix the metadata (output: logits) or re-export the model")
    return True


def third_party_spec(session: Session, overrides: Mapping[str, Any]) -> PreprocessSpec:
    """ImageNet defaults at the model's own input size, then the user's flags."""
    shape = session.input_shape
    h = shape[1] if session.input_dtype == np.uint8 else shape[2] if len(shape) == 4 else None
    size = int(overrides.get("size") or (h if isinstance(h, int) and h > 0 else 224))
    return apply_overrides(PreprocessSpec().at_size(size), overrides)


def apply_overrides(spec: PreprocessSpec, overrides: Mapping[str, Any]) -> PreprocessSpec:
    changes = {k: v for k, v in overrides.items() if v is not None}
    if "size" in changes and "resize" not in changes:
        spec = spec.at_size(changes.pop("size"))
    return spec.with_(**changes) if changes else spec


def check_fit(session: Session, meta: ModelMetadata, labels_file: str | None = None) -> None:
    """Does the graph take what the spec produces and output one score per class? Say what differs."""
    path, shape, s = session.path, session.input_shape, meta.spec.size
    uint8 = meta.input_format == "uint8"
    want = f"(N, {s}, {s}, 3) uint8" if uint8 else f"(N, 3, {s}, {s}) float"
    if len(shape) != 4:
        raise ModelError(f"{path}: input {session.input_name!r} has rank {len(shape)} {list(shape)}; "
                         f"an image classifier here takes a 4-D {want} input")
    if uint8 and session.input_dtype != np.uint8:
        raise ModelError(f"{path}: metadata says uint8 (baked) input but the graph takes {session.input_type}; "
                         "re-export")
    if not uint8 and session.input_dtype == np.uint8:
        raise ModelError(f"{path}: the graph takes uint8 but the metadata says float input; re-export")
    chan, hw = (shape[3], shape[1:3]) if uint8 else (shape[1], shape[2:4])
    if isinstance(chan, int) and chan != 3:
        raise ModelError(f"{path}: the model expects {chan} channels per pixel; only 3-channel (colour) "
                         "classifiers are supported")
    fixed = [d for d in hw if isinstance(d, int) and d > 0]
    if any(d != s for d in fixed):
        how = "pass --size " + str(fixed[0]) if meta.arch == "third-party" else "re-export the model"
        raise ModelError(f"{path}: the model input is {'x'.join(map(str, hw))} but the preprocessing "
                         f"size is {s}; {how}")
    out = session.warmup_output_shape
    n_out = int(np.prod(out[1:])) if len(out) >= 2 else (out[0] if out else 0)
    if n_out != len(meta.classes):
        where = f"--labels {labels_file}" if labels_file else "the metadata"
        raise ModelError(f"{path}: the model outputs {n_out} scores per image but {where} names "
                         f"{len(meta.classes)} classes; use a labels file with {n_out} names")


def warn_if_saturating(session: Session, meta: ModelMetadata, log: Callable[[str], None] | None) -> None:
    """An INT8 model whose weights can saturate this CPU's integer kernels says so, once (isa.py)."""
    if session.provider == "cpu" and meta.precision == "int8" and log:
        from catdog.runtime.spine.isa import saturation_warning

        warning = saturation_warning(meta.extra.get("int8"), str(session.path))
        if warning:
            log(warning)
