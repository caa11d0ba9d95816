"""Export's side of the artifact table. File names, kinds, precisions and input formats are the
runtime's table (catdog.runtime.spine.artifacts); here each row gains how it is built, the gates that
must pass before it is published, what it is for, and which artifact's graph it derives from
(`needs`: int8, int8-trt, fp16 and baked derive from the fp32 ONNX graph). Every artifact is looked
up by NAME; build.py builds each after what it needs, never by its position in this table."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import onnx
import torch

from catdog.export.int8.quantize import DEFAULT_TARGET
from catdog.runtime.spine.artifacts import ARTIFACTS, ArtifactFile
from catdog.runtime.spine.errors import InputError, ModelError
from catdog.runtime.spine.metadata import ModelMetadata
from catdog.runtime.spine.spec import PreprocessSpec


@dataclass(frozen=True)
class Gate:
    name: str  # "<artifact>.<figure>", the name --gate overrides use
    metric: str  # a figure of ArtifactParity
    op: str  # "<=" (the figure must not exceed limit) or ">="
    limit: float
    why: str

    def check(self, value: float | None) -> bool | None:
        if value is None:
            return None  # not measurable here (e.g. accuracy without labels)
        return value <= self.limit if self.op == "<=" else value >= self.limit


@dataclass
class BuildContext:
    """What the builders share (the graph a builder derives from is handed to it: see Builder)."""

    model: torch.nn.Module
    example: torch.Tensor  # one real preprocessed image (1,3,S,S)
    check_inputs: np.ndarray  # a few real preprocessed images, for the simplification check
    meta: ModelMetadata  # the fp32/float metadata; each artifact derives its own
    spec: PreprocessSpec
    opset: int
    calib: np.ndarray | None = None
    calib_method: str | None = None  # None: chosen on `held_out` (int8_choice)
    int8_target: str = DEFAULT_TARGET  # --int8-target (quantize.INT8_FORMATS or auto)
    int8_activations: str | None = None  # None: the target's
    held_out: np.ndarray | None = None  # held-out calibration images for INT8's choices
    held_out_why: str = ""  # why there are none, when there are none
    int8_sensitivity: Any = None  # sensitivity.SensitivityConfig; None: its defaults
    notes: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


# (ctx, staged path, the artifact's metadata, the built graph of the artifact it `needs` or None)
# -> the ONNX graph it wrote, for artifacts that derive from it (None: not an ONNX graph).
Builder = Callable[[BuildContext, Path, ModelMetadata, "onnx.ModelProto | None"], "onnx.ModelProto | None"]


@dataclass(frozen=True)
class ArtifactFormat:
    """A row of the runtime's artifact table (file name, kind, precision, input format) plus what
    export alone knows about it: how to build it, the gates it must pass, what it is for."""

    file: ArtifactFile
    builder: Builder
    gates: tuple[Gate, ...]
    description: str
    # An INT8 artifact's engine: whose integer arithmetic it is built for, and so what its gates
    # must measure ("cpu": ORT's CPU kernels; "tensorrt": int32 accumulation, simulated on a CPU).
    target: str | None = None
    needs: str | None = None  # the artifact whose built graph this one is made from

    @property
    def name(self) -> str:
        return self.file.name

    @property
    def filename(self) -> str:
        return self.file.filename

    @property
    def kind(self) -> str:  # "torchscript" | "onnx": how parity and latency run it
        return self.file.kind

    @property
    def precision(self) -> str:
        return self.file.precision

    @property
    def input_format(self) -> str:
        return self.file.input_format

    def metadata(self, base: ModelMetadata) -> ModelMetadata:
        return base.with_(precision=self.precision, input_format=self.input_format)


def _save_onnx(model: onnx.ModelProto, meta: ModelMetadata, path: Path) -> onnx.ModelProto:
    from catdog.export.builders.meta import set_onnx_metadata

    model = set_onnx_metadata(model, meta)
    path.write_bytes(model.SerializeToString())
    return model


def build_torchscript(ctx: BuildContext, path: Path, meta: ModelMetadata, source: None = None) -> None:
    from catdog.export.builders.torchscript import export_torchscript

    export_torchscript(ctx.model, ctx.example, meta, path)


def build_onnx(ctx: BuildContext, path: Path, meta: ModelMetadata, source: None = None) -> onnx.ModelProto:
    from catdog.export.builders.onnx_export import export_onnx
    from catdog.export.builders.simplify import simplify

    result = simplify(export_onnx(ctx.model, ctx.example, ctx.opset), ctx.check_inputs)
    ctx.notes["onnx"] = result.note
    ctx.details["simplified"] = result.simplified
    return _save_onnx(result.model, meta, path)


def _int8(ctx: BuildContext, fp32: onnx.ModelProto, activations: str, symmetric: bool,
          reduce_range: bool | None = None) -> tuple[onnx.ModelProto, Any]:
    from catdog.export.int8.int8_choice import choose_int8
    from catdog.export.int8.quantize import Int8Quantizer

    if ctx.calib is None:
        raise InputError("an INT8 artifact needs calibration images: pass --calib DIR")
    from catdog.runtime.spine.isa import SAFE_WEIGHT, int8_path, saturates

    with Int8Quantizer(fp32, ctx.calib, activations, symmetric=symmetric, reduce_range=reduce_range) as q:
        # Chosen on what the target computes, as its gates measure it (parity.simulated_target): the
        # symmetric model on TensorRT's int32 sums, a full-range CPU model (vnni, arm) on simulated
        # quantization where this CPU's kernels would saturate its weights.
        full_range = not q.reduce_range and saturates(int8_path(), SAFE_WEIGHT + 1)
        return choose_int8(q, fp32, ctx.held_out, ctx.calib_method, ctx.held_out_why,
                           simulate_qdq=symmetric or full_range, sensitivity=ctx.int8_sensitivity)


def _int8_record(ctx: BuildContext, name: str, model: onnx.ModelProto, choice: Any, activations: str) -> None:
    from catdog.export.int8.quantize import max_int8_weight, qdq_summary

    ctx.details[name] = {**qdq_summary(model), "calib_method": choice.method, "keep_fp32": choice.keep_fp32,
                         "calib_images": len(ctx.calib), "activations": activations,
                         "max_int8_weight": max_int8_weight(model)}
    ctx.details[f"{name}_choice"] = choice.to_dict()


def build_int8(ctx: BuildContext, path: Path, meta: ModelMetadata, fp32: onnx.ModelProto) -> onnx.ModelProto:
    from catdog.export.int8.quantize import INT8_FORMATS, resolve_target

    isa, chosen = resolve_target(ctx.int8_target)
    fmt = INT8_FORMATS[isa]
    activations = ctx.int8_activations or fmt.activations
    model, choice = _int8(ctx, fp32, activations, symmetric=False, reduce_range=fmt.reduce_range)
    _int8_record(ctx, "int8", model, choice, activations)
    ctx.details["int8"].update(target_isa=isa, reduce_range=fmt.reduce_range)
    weights = "7-bit int8 weights (reduce_range)" if fmt.reduce_range else "8-bit int8 weights"
    ctx.notes["int8"] = (f"--int8-target {isa} ({chosen}): {fmt.why}; QDQ, per-channel {weights}, {activations} "
                         f"activations, {choice.method} calibration on {len(ctx.calib)} images; kept fp32: "
                         f"{choice.keep_fp32}; {choice.how}")
    target = {"for": "cpu", "target_isa": isa, "activations": activations, "reduce_range": fmt.reduce_range,
              "symmetric": False, "max_int8_weight": ctx.details["int8"]["max_int8_weight"],
              "kept_fp32_layers": choice.kept_layers}
    return _save_onnx(model, meta.with_(extra={**meta.extra, "int8": target}), path)


def build_int8_trt(ctx: BuildContext, path: Path, meta: ModelMetadata, fp32: onnx.ModelProto) -> onnx.ModelProto:
    """The INT8 TensorRT takes: int8 activations and weights, zero points 0, weights per channel.
    Proved on the graph before it is stamped symmetric (the runtime's --trt-int8 reads the stamp)."""
    from catdog.export.int8.quantize import symmetric_qdq_problems

    model, choice = _int8(ctx, fp32, "int8", symmetric=True)
    problems = symmetric_qdq_problems(model)
    if problems:
        raise ModelError(f"the TensorRT INT8 model came out not symmetric: {'; '.join(problems)}")
    _int8_record(ctx, "int8-trt", model, choice, "int8")
    ctx.notes["int8-trt"] = (f"symmetric QDQ for TensorRT: int8 activations and per-channel int8 weights, zero points "
                             f"0 (checked); {choice.method} calibration on {len(ctx.calib)} images; kept fp32: "
                             f"{choice.keep_fp32}; {choice.how}")
    target = {"for": "tensorrt", "activations": "int8", "weights": "int8 per-channel", "symmetric": True,
              "max_int8_weight": ctx.details["int8-trt"]["max_int8_weight"]}
    return _save_onnx(model, meta.with_(extra={**meta.extra, "int8": target}), path)


def build_fp16(ctx: BuildContext, path: Path, meta: ModelMetadata, fp32: onnx.ModelProto) -> onnx.ModelProto:
    from catdog.export.builders.fp16 import convert_fp16

    ctx.notes["fp16"] = "fp16 weights and compute, fp32 input and output"
    return _save_onnx(convert_fp16(fp32), meta, path)


def build_baked(ctx: BuildContext, path: Path, meta: ModelMetadata, fp32: onnx.ModelProto) -> onnx.ModelProto:
    from catdog.export.builders.bake import bake_preprocess

    ctx.notes["baked"] = f"uint8 NHWC {ctx.spec.channel_order} input (resize_crop output); normalization in the graph"
    return _save_onnx(bake_preprocess(fp32, ctx.spec), meta, path)


FORMATS: dict[str, ArtifactFormat] = {
    f.name: f
    for f in (
        ArtifactFormat(
            file=ARTIFACTS["torchscript"], builder=build_torchscript,
            gates=(Gate("torchscript.logit", "max_abs_logit", "<=", 1e-5, "same kernels as eager: rounding only"),),
            description="TorchScript, traced and frozen, metadata in _extra_files",
        ),
        ArtifactFormat(
            file=ARTIFACTS["onnx"], builder=build_onnx,
            gates=(Gate("onnx.logit", "max_abs_logit", "<=", 1e-4, "fp32 graph: ORT kernels differ by rounding only"),),
            description="fp32 ONNX, dynamic batch, simplified with onnxsim when that is proved harmless",
        ),
        ArtifactFormat(
            file=ARTIFACTS["int8"], builder=build_int8,
            gates=(
                Gate("int8.agreement", "top1_agreement", ">=", 0.99, "quantization may move logits, not answers"),
                Gate("int8.acc_drop", "accuracy_drop", "<=", 0.005, "at most 0.5 pt accuracy lost (needs labels)"),
            ),
            description="static INT8, QDQ, per-channel weights, calibrated on real images", target="cpu", needs="onnx",
        ),
        ArtifactFormat(
            file=ARTIFACTS["int8-trt"], builder=build_int8_trt,
            gates=(  # the CPU INT8's gates: a TensorRT row is held to the same bar
                Gate("int8-trt.agreement", "top1_agreement", ">=", 0.99, "quantization may move logits, not answers"),
                Gate("int8-trt.acc_drop", "accuracy_drop", "<=", 0.005, "at most 0.5 pt accuracy lost (needs labels)"),
            ),
            description="static INT8 for TensorRT: symmetric QDQ (zero points 0), per-channel int8 weights",
            target="tensorrt", needs="onnx",
        ),
        ArtifactFormat(
            file=ARTIFACTS["fp16"], builder=build_fp16,
            gates=(Gate("fp16.prob", "max_abs_prob", "<=", 1e-2, "fp16 has ~3 significant digits"),),
            description="fp16 weights and compute for GPUs, fp32 input/output", needs="onnx",
        ),
        ArtifactFormat(
            file=ARTIFACTS["baked"], builder=build_baked,
            # The in-graph Cast/Mul/Sub is normalize()'s float32 arithmetic, op for op, so the
            # baked graph sees the same input tensor as model.onnx: it gets model.onnx's gate.
            gates=(Gate("baked.logit", "max_abs_logit", "<=", 1e-4, "same fp32 arithmetic as model.onnx"),),
            description="fp32 ONNX taking uint8 NHWC crops, preprocessing baked into the graph", needs="onnx",
        ),
    )
}
ALWAYS = ("torchscript", "onnx")  # built on every export; the others on request


def get_format(name: str, table: Mapping[str, ArtifactFormat] = FORMATS) -> ArtifactFormat:
    if name not in table:
        raise InputError(f"unknown artifact {name!r}; known: {', '.join(table)}")
    return table[name]


def all_gates() -> dict[str, Gate]:
    return {g.name: g for f in FORMATS.values() for g in f.gates}


def gate_overrides(items: list[str]) -> dict[str, float]:
    """--gate NAME=VALUE items -> {name: limit}; unknown names list the known ones."""
    known = all_gates()
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise InputError(f"--gate {item!r}: expected NAME=VALUE, e.g. int8.agreement=0.97")
        if name not in known:
            raise InputError(f"--gate {name!r}: unknown gate; known: {', '.join(known)}")
        try:
            out[name] = float(value)
        except ValueError:
            raise InputError(f"--gate {item!r}: {value!r} is not a number") from None
    return out
