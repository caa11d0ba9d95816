"""Per-layer INT8 sensitivity, on held-out calibration images only (never a parity image): how much
of the INT8 model's logit error against fp32 each quantized Conv/Gemm/MatMul layer causes. Measured
as what quantizing that layer ALONE costs: the fp32 graph with only that layer's input passed
through the chosen QDQ model's own QuantizeLinear -> DequantizeLinear pair and its weights and bias
replaced by that model's dequantized INT8 values (graph surgery, no re-quantization). Each variant
runs with fake quantization in float (ORT's QDQ fusions off: no integer kernel, so no CPU's integer
path enters the figures; float kernels differ between CPUs by rounding only).

Why alone, not "the INT8 model with that layer in fp32": the latter's figures are dominated by
chaos (a change anywhere re-rolls every later rounding: on efficientnet_lite2 keeping one layer fp32
moved the logit error by -100%..+40%, more than any one layer's share), while one layer's noise
through an otherwise fp32 graph is deterministic, and the shares add up (to 0.97 of the INT8
model's error power on efficientnet_lite2): keeping a layer fp32 recovers about its share.

Then (keep_sensitive) the 1, 2, ... max_keep most sensitive layers are kept in fp32 by a proper
Int8Quantizer.build and scored like int8_choice's candidates; the smallest k that reaches the best
top-1 agreement is kept, and nothing when no k agrees on more images than k = 0."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np
import onnx

from catdog.export.int8.qdq_surgery import OneLayer, fold_weights
from catdog.export.int8.quantize import WEIGHTED
from catdog.runtime.spine.errors import InputError

SWEEP_IMAGES = 16  # held-out images the per-layer sweep runs on (those INT8 gets most wrong; chunked)
MAX_KEEP = 4  # at most this many extra layers kept in fp32
CHUNK = 16
LATENCY_RUNS = 15  # batch-1 runs per model for the speed cost (median, after 3 warm-up runs)


@dataclass(frozen=True)
class SensitivityConfig:
    """The per-layer search's settings (ExportOptions: int8_sensitivity, sensitivity_images,
    sensitivity_keep; here read through getattr with these defaults)."""

    enabled: bool = True
    images: int = SWEEP_IMAGES
    max_keep: int = MAX_KEEP

    def __post_init__(self) -> None:
        if self.images < 1:
            raise InputError(f"--sensitivity-count must be at least 1, got {self.images}")
        if self.max_keep < 0:
            raise InputError(f"--sensitivity-keep must be at least 0, got {self.max_keep}")


@dataclass(frozen=True)
class LayerFigures:
    """One model's logits against fp32 ONNX's on the sweep images."""

    agree: int  # images whose top-1 class is fp32's
    n: int
    max_abs_logit: float
    mean_abs_logit: float
    sqnr_db: float | None  # 10 log10(sum ref^2 / sum (got - ref)^2); None: no error at all
    mse: float


@dataclass(frozen=True)
class LayerSensitivity:
    node: str
    op: str
    alone: LayerFigures  # the fp32 graph with only this layer quantized (OneLayer)
    share: float  # alone.mse / the INT8 model's mse: its share of INT8's logit error power
    quantized: str = "weights+input"  # what of it the INT8 model quantizes (a boundary layer: its input)
    kept: bool = False


@dataclass
class Sensitivity:
    images: int  # held-out calibration images of the sweep
    base: LayerFigures  # the chosen INT8 model (no extra fp32 layer) on the same images
    layers: list[LayerSensitivity]  # most sensitive first
    sweep_s: float
    tried: list[dict[str, Any]] = field(default_factory=list)  # k = 0, 1, ...: on every held-out image
    kept: list[str] = field(default_factory=list)  # node names kept in fp32 besides the boundary set
    how: str = ""
    total_s: float = 0.0
    latency: dict[str, Any] | None = None  # batch-1 ms of the chosen model vs the one without `kept`

    @property
    def k(self) -> int:
        return len(self.kept)


def figures(ref: np.ndarray, got: np.ndarray) -> LayerFigures:
    ref, got = ref.astype(np.float64), got.astype(np.float64)
    err = got - ref
    power, noise = float(np.sum(ref**2)), float(np.sum(err**2))
    sqnr = None if noise == 0 else float(10 * np.log10(max(power, 1e-30) / noise))
    return LayerFigures(int(np.sum(ref.argmax(1) == got.argmax(1))), len(ref), float(np.max(np.abs(err))),
                        float(np.mean(np.abs(err))), sqnr, float(np.mean(err**2)))


def quantized_layers(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """The Conv/Gemm/MatMul nodes of a QDQ model that read a DequantizeLinear output."""
    dq = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return [n for n in model.graph.node if n.op_type in WEIGHTED and n.name and any(i in dq for i in n.input)]


def fake_quant_run(model: onnx.ModelProto, x: np.ndarray, chunk: int = CHUNK) -> np.ndarray:
    """Run a QDQ graph with its QuantizeLinear/DequantizeLinear computed as written, in float (ORT's
    QDQ fusions off, every other optimization on: with weights folded to constants, convolutions
    get ORT's fast float layouts, ~2.5x ORT_DISABLE_ALL's speed on efficientnet_lite2)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.add_session_config_entry("session.disable_quant_qdq", "1")
    opts.log_severity_level = 3  # errors only: the CLI's stderr is its one line
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: x[i : i + chunk]})[0] for i in range(0, len(x), chunk)])


def sweep(qdq: onnx.ModelProto, fp32: onnx.ModelProto, x: np.ndarray
          ) -> tuple[LayerFigures, list[LayerSensitivity]]:
    """Every quantized layer of `qdq` alone quantized in `fp32` (OneLayer), against `fp32`, on
    `x`; most sensitive first: fewest images agreeing with fp32, then the largest logit error."""
    one = OneLayer(qdq, fp32)
    layers = [(n.name, n.op_type) for n in quantized_layers(qdq) if n.name in one.index]
    ref = fake_quant_run(fp32, x)
    base = figures(ref, fake_quant_run(fold_weights(qdq)[0], x))
    rows = []
    for name, op in layers:
        figs = figures(ref, fake_quant_run(one.only(name), x))
        rows.append(LayerSensitivity(name, op, figs, figs.mse / base.mse if base.mse > 0 else 0.0, one.quantized(name)))
    order = sorted(range(len(rows)), key=lambda i: (rows[i].alone.agree, -rows[i].alone.mse, i))
    return base, [rows[i] for i in order]


def keep_sensitive(ranked: list[str], build: Callable[[tuple[str, ...]], onnx.ModelProto],
                   score: Callable[[onnx.ModelProto], Any], base: onnx.ModelProto, base_score: Any,
                   max_keep: int) -> tuple[onnx.ModelProto, list[str], list[dict[str, Any]]]:
    """Keep the top 1, 2, ... `max_keep` of `ranked` in fp32 (each `build` from scratch, scored by
    `score`: an object with agree, n, max_abs_prob, max_abs_logit) -> (the model, the kept names,
    every try). The smallest k reaching the best agreement wins; k > 0 only if it agrees on more
    images than `base`; stops once every image agrees."""
    def row(k: int, s: Any) -> dict[str, Any]:
        return {"k": k, "agree": s.agree, "n": s.n, "max_abs_prob": s.max_abs_prob, "max_abs_logit": s.max_abs_logit}

    tried, best = [row(0, base_score)], (base_score.agree, base, 0)
    for k in range(1, min(max_keep, len(ranked)) + 1):
        if best[0] == base_score.n:
            break  # nothing left to close
        model = build(tuple(ranked[:k]))
        s = score(model)
        tried.append(row(k, s))
        if s.agree > best[0]:
            best = (s.agree, model, k)
    _, model, k = best
    return model, list(ranked[:k]), tried


def latency_cost(base: onnx.ModelProto, chosen: onnx.ModelProto, x1: np.ndarray, runs: int = LATENCY_RUNS
                 ) -> dict[str, Any]:
    """Batch-1 median ms of both models on ORT CPU with its default optimizations (this CPU's INT8
    kernels), timed alternately so that both see the same machine load."""
    import statistics
    import time

    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sessions = [ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])
                for m in (base, chosen)]
    feeds = [{s.get_inputs()[0].name: x1} for s in sessions]
    times: list[list[float]] = [[], []]
    for i in range(3 + runs):
        for j, (s, f) in enumerate(zip(sessions, feeds, strict=True)):
            t = time.perf_counter()
            s.run(None, f)
            if i >= 3:
                times[j].append((time.perf_counter() - t) * 1000.0)
    without, chosen_ms = (statistics.median(t) for t in times)
    return {"without_kept_ms": without, "chosen_ms": chosen_ms, "cost_ms": chosen_ms - without, "runs": runs,
            "measured_on": "ORT CPU (default optimizations), batch 1, median of alternating runs, one export's "
                           "measurement"}


def worst_images(qdq: onnx.ModelProto, fp32: onnx.ModelProto, held: np.ndarray, count: int) -> np.ndarray:
    """Indices of the `count` held-out images where the INT8 model is furthest from fp32: those it
    classifies differently first, then by max |dlogit|. A layer's share of the error is measured
    where the error is: on a random few, most of them agree by a wide margin and rank nothing."""
    if len(held) <= count:
        return np.arange(len(held))
    ref, got = fake_quant_run(fp32, held), fake_quant_run(fold_weights(qdq)[0], held)
    flipped = ref.argmax(1) != got.argmax(1)
    err = np.max(np.abs(got.astype(np.float64) - ref), axis=1)
    return np.lexsort((-err, ~flipped))[:count]


def refine(q: Any, method: str, keep: str, model: onnx.ModelProto, base_score: Any,
           score: Callable[[onnx.ModelProto], Any], held: np.ndarray, cfg: SensitivityConfig
           ) -> tuple[onnx.ModelProto, Sensitivity]:
    """The sweep on the cfg.images held-out images INT8 gets most wrong (worst_images), then
    keep_sensitive scored on all of `held` (`q`: the Int8Quantizer that built `model` with `method`
    and the `keep` set)."""
    import time

    t0 = time.perf_counter()
    x = held[worst_images(model, q.layers, held, cfg.images)]
    base, layers = sweep(model, q.layers, x)
    sweep_s = time.perf_counter() - t0
    chosen, kept, tried = keep_sensitive([r.node for r in layers], lambda names: q.build(method, keep, names),
                                         score, model, base_score, cfg.max_keep)
    layers = [replace(r, kept=r.node in kept) for r in layers]
    latency = latency_cost(model, chosen, held[:1]) if kept else None
    n = base_score.n
    if kept:
        last = tried[len(kept)]
        how = (f"kept the {len(kept)} most sensitive layer(s) in fp32: top-1 agreement with fp32 "
               f"{base_score.agree}/{n} -> {last['agree']}/{n} on the held-out calibration images")
    elif len(tried) == 1:
        how = (f"nothing kept: the INT8 model already agrees with fp32 on all {n} held-out calibration images"
               if base_score.agree == n else "nothing kept: no quantized layer to keep" if not layers
               else "nothing kept: max_keep is 0")
    else:
        how = (f"nothing kept: keeping the top 1..{len(tried) - 1} in fp32 agreed with fp32 on no more than "
               f"{base_score.agree}/{n} held-out calibration images")
    return chosen, Sensitivity(len(x), base, layers, sweep_s, tried, kept, how, time.perf_counter() - t0, latency)
