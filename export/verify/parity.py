"""Parity: every artifact against eager PyTorch on the same real images (float artifacts get the
spine's preprocess output, the baked one the resize_crop crops), then the gates, on each parity
set. With labels, accuracy (95% Wilson interval) and the expected calibration error of the
artifact's scores at T=1 and at the metadata's temperature. Latency: ORT CPU (torch for
TorchScript), batch 1, median after warm-up, once per artifact."""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from catdog.export.artifacts.formats import ArtifactFormat, Gate
from catdog.runtime.engine.session import open_session
from catdog.runtime.spine.errors import InputError, ProviderError
from catdog.runtime.spine.isa import SIMULATED, int8_path, kernels_label, saturates
from catdog.runtime.spine.metrics import accuracy_record, ece, softmax, softmax_t

CHUNK = 16  # images per forward pass: bounds memory for big archs at 224 px
ECE_BINS = 15


@dataclass(frozen=True)
class GateResult:
    name: str
    metric: str
    op: str
    limit: float
    value: float | None
    passed: bool | None  # None: not measurable (e.g. accuracy without labels)
    overridden: bool = False

    def line(self, artifact: str) -> str:
        return f"{artifact}: {self.metric} {_fmt(self.value)} fails {self.op} {self.limit:g} (gate {self.name})"


@dataclass
class ArtifactParity:
    """One artifact on one parity set."""

    name: str
    file: str
    parity_set: str
    n_images: int
    max_abs_logit: float
    max_abs_prob: float
    top1_agreement: float
    accuracy: dict[str, Any] | None = None  # runtime.metrics.accuracy_record: figure, 95% interval, n
    accuracy_drop: float | None = None  # eager accuracy - artifact accuracy (fraction)
    ece: float | None = None  # expected calibration error (ECE_BINS bins) of softmax(logits)
    ece_calibrated: float | None = None  # ... of softmax(logits / T), the runtime's scores
    gates: list[GateResult] = field(default_factory=list)
    measured_on: str = ""  # what computed the figures the gates read (ArtifactRun.measured_on)
    # When the gates read simulated quantization: the same figures on this CPU's integer kernels
    # (information, not a gate), with the integer path they ran on.
    cpu_kernels: dict[str, Any] | None = None

    @property
    def passed(self) -> bool:
        return all(g.passed is not False for g in self.gates)

    @property
    def reasons(self) -> list[str]:
        where = f" on {self.parity_set}" if self.parity_set else ""
        return [g.line(self.name) + where for g in self.gates if g.passed is False]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["passed"], d["reasons"] = self.passed, self.reasons
        return d


@dataclass(frozen=True)
class ArtifactInfo:
    """What does not depend on the parity set: the file's size and its batch-1 latency."""

    name: str
    file: str
    size_mb: float
    latency_ms: float
    latency_runtime: str


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3g}"


def run_chunked(run: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> np.ndarray:
    return np.concatenate([run(x[i : i + CHUNK]) for i in range(0, len(x), CHUNK)])


def eager_logits(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return run_chunked(lambda b: model(torch.from_numpy(b)).numpy(), x)


def check_parity_provider(provider: str) -> None:
    """Before any work: the provider export measures ONNX parity on must exist in this onnxruntime."""
    from catdog.runtime.engine.session import INSTALL_HINTS, PROVIDERS, available_providers

    if provider not in PROVIDERS:
        raise InputError(f"--parity-provider {provider!r}: unknown; known: {', '.join(PROVIDERS)}")
    if provider not in available_providers():
        raise ProviderError(f"--parity-provider {provider}: not available in this onnxruntime build; install: "
                            f"{INSTALL_HINTS.get(provider, '')}")


@dataclass(frozen=True)
class ArtifactRun:
    """How an artifact is run for its gates. An INT8 artifact built for another engine's integer
    arithmetic (int8-trt: TensorRT, which accumulates in int32) is gated on ORT CPU by simulated
    quantization, never by this CPU's integer kernels, whose AVX2 path saturates where TensorRT
    does not (runtime/spine/isa.py); `kernels` then runs it on those kernels too, for the report."""

    run: Callable[[np.ndarray], np.ndarray]
    measured_on: str
    kernels: Callable[[np.ndarray], np.ndarray] | None = None


def measured_on(fmt: ArtifactFormat, provider: str, simulated: str | None) -> str:
    """How an artifact's figures were measured; `simulated`: the target a simulated run stands for."""
    if fmt.kind == "torchscript":
        return "torch CPU"
    if provider != "cpu":
        return f"ORT {provider}"
    if simulated:
        return f"ORT CPU, {SIMULATED}, for {simulated}"
    return kernels_label(int8_path()) if fmt.precision == "int8" else "ORT CPU"


def simulated_target(fmt: ArtifactFormat, path: Path, here: str | None = None) -> str | None:
    """The engine an INT8 artifact must be gated for by simulation rather than on this CPU's
    kernels (`here`: their integer path): another engine's (TensorRT), or a CPU INT8 built for
    CPUs that add in int32 (--int8-target vnni|arm) whose weights this CPU's kernels can saturate:
    gating those on AVX2 would measure this machine's saturation, not what the target computes."""
    if fmt.target not in (None, "cpu"):
        return fmt.target
    if fmt.precision != "int8":
        return None
    from catdog.export.builders.meta import read_onnx_metadata

    rec = read_onnx_metadata(path).extra.get("int8") or {}
    top = int(rec.get("max_int8_weight") or 0)
    return f"--int8-target {rec.get('target_isa', '?')}" if saturates(here or int8_path(), top) else None


def artifact_runs(fmt: ArtifactFormat, path: Path, provider: str = "cpu") -> ArtifactRun:
    simulated = simulated_target(fmt, path) if provider == "cpu" else None
    run = artifact_runner(fmt, path, provider, simulate_qdq=simulated is not None)
    kernels = artifact_runner(fmt, path, provider) if simulated else None
    return ArtifactRun(run, measured_on(fmt, provider, simulated), kernels)


def kernel_figures(ref: np.ndarray, got: np.ndarray) -> dict[str, Any]:
    figs = figures(ref, got, None)
    return {"int8_path": int8_path(), "top1_agreement": figs["top1_agreement"],
            "max_abs_prob": figs["max_abs_prob"], "max_abs_logit": figs["max_abs_logit"]}


def artifact_runner(fmt: ArtifactFormat, path: Path, provider: str = "cpu",
                    simulate_qdq: bool = False) -> Callable[[np.ndarray], np.ndarray]:
    if fmt.kind == "torchscript":
        from catdog.export.builders.torchscript import load_torchscript

        module, _ = load_torchscript(path)

        def run_ts(b: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return module(torch.from_numpy(b)).numpy()

        return run_ts
    # Parity and latency on the provider the report names (ORT CPU unless --parity-provider): fp16
    # only computes in fp16 on a GPU; chunks of up to CHUNK images, latency at batch 1.
    return open_session(path, provider=provider, log=None, batches=(1, CHUNK), simulate_qdq=simulate_qdq,
                        trt_fp16=provider == "tensorrt" and fmt.precision == "fp16").run


def figures(ref: np.ndarray, got: np.ndarray, labels: np.ndarray | None) -> dict[str, float | None]:
    got = got.astype(np.float32)
    agree = float(np.mean(ref.argmax(1) == got.argmax(1)))
    out = {
        "max_abs_logit": float(np.max(np.abs(ref - got))),
        # float64: a probability difference near 1e-7 must not be float32 rounding
        "max_abs_prob": float(np.max(np.abs(softmax(ref.astype(np.float64)) - softmax(got.astype(np.float64))))),
        "top1_agreement": agree,
        "accuracy": None,
        "accuracy_drop": None,
    }
    if labels is not None:
        acc, ref_acc = float(np.mean(got.argmax(1) == labels)), float(np.mean(ref.argmax(1) == labels))
        out["accuracy"], out["accuracy_drop"] = acc, ref_acc - acc
    return out


def check_gates(fmt: ArtifactFormat, figs: dict[str, Any], overrides: dict[str, float]) -> list[GateResult]:
    results = []
    for g in fmt.gates:
        limit = overrides.get(g.name, g.limit)
        gate = Gate(g.name, g.metric, g.op, limit, g.why)
        value = figs.get(g.metric)
        results.append(GateResult(g.name, g.metric, g.op, limit, value, passed=gate.check(value),
                                  overridden=g.name in overrides))
    return results


def measure_latency(run: Callable[[np.ndarray], np.ndarray], x1: np.ndarray, runs: int, warmup: int = 3) -> float:
    """Median wall time (ms) of `runs` batch-1 calls after `warmup` untimed ones."""
    for _ in range(warmup):
        run(x1)
    times = []
    for _ in range(max(1, runs)):
        t = time.perf_counter()
        run(x1)
        times.append((time.perf_counter() - t) * 1000.0)
    return statistics.median(times)


def calibration_figures(logits: np.ndarray, labels: np.ndarray | None, temperature: float) -> dict[str, Any]:
    """Accuracy (record with its Wilson interval) and ECE at T=1 and at `temperature`; None without labels."""
    if labels is None:
        return {"accuracy": None, "ece": None, "ece_calibrated": None}
    correct = int(np.sum(logits.argmax(1) == labels))
    return {"accuracy": accuracy_record(correct, len(labels)),
            "ece": ece(softmax_t(logits, 1.0), labels, ECE_BINS),
            "ece_calibrated": ece(softmax_t(logits, temperature), labels, ECE_BINS)}


def parity_of(fmt: ArtifactFormat, got: np.ndarray, ref: np.ndarray, labels: np.ndarray | None,
              overrides: dict[str, float], temperature: float = 1.0, parity_set: str = "") -> ArtifactParity:
    figs = figures(ref, got, labels)
    result = ArtifactParity(fmt.name, fmt.filename, parity_set, len(got), figs["max_abs_logit"], figs["max_abs_prob"],
                            figs["top1_agreement"], accuracy_drop=figs["accuracy_drop"],
                            **calibration_figures(got.astype(np.float32), labels, temperature))
    result.gates = check_gates(fmt, figs, overrides)
    return result


def run_parity(fmt: ArtifactFormat, runs: ArtifactRun, inputs: np.ndarray, ref: np.ndarray,
               labels: np.ndarray | None, overrides: dict[str, float], temperature: float = 1.0,
               parity_set: str = "") -> ArtifactParity:
    """One artifact's gates on one set, run as `runs` says, saying what measured them."""
    return parity_outputs(fmt, runs, inputs, ref, labels, overrides, temperature, parity_set)[0]


def parity_outputs(fmt: ArtifactFormat, runs: ArtifactRun, inputs: np.ndarray, ref: np.ndarray,
                   labels: np.ndarray | None, overrides: dict[str, float], temperature: float = 1.0,
                   parity_set: str = "") -> tuple[ArtifactParity, np.ndarray]:
    """run_parity, and the logits its gates read (for the report's per-class and INT8 tables)."""
    got = run_chunked(runs.run, inputs)
    result = parity_of(fmt, got, ref, labels, overrides, temperature, parity_set)
    result.measured_on = runs.measured_on
    if runs.kernels is not None:
        result.cpu_kernels = kernel_figures(ref, run_chunked(runs.kernels, inputs))
    return result, got


def artifact_info(fmt: ArtifactFormat, path: Path, runs: ArtifactRun, x1: np.ndarray,
                  latency_runs: int, provider: str = "cpu") -> ArtifactInfo:
    """Latency on what a user of this provider gets: an INT8 model on this CPU's integer kernels
    (the simulated run is a reference, not a speed)."""
    run = runs.kernels or runs.run
    return ArtifactInfo(fmt.name, fmt.filename, path.stat().st_size / 1e6, measure_latency(run, x1, latency_runs),
                        measured_on(fmt, provider, simulated=None))
