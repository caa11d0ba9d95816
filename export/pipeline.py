"""One export, end to end: checks that can fail fast run before any long work; artifacts are
staged as temp files, proved against eager PyTorch on every parity set, and published only if
every gate passes on every set."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from catdog.export.artifacts.build import build_all, build_order
from catdog.export.artifacts.formats import ALWAYS, FORMATS, BuildContext, gate_overrides
from catdog.export.builders.meta import base_metadata
from catdog.export.builders.onnx_export import EXPORTER
from catdog.export.builders.tta import TTA_NAME, with_tta
from catdog.export.int8.quantize import activation_type, calibration_method, resolve_target
from catdog.export.int8.sensitivity import SensitivityConfig
from catdog.export.options import ExportOptions
from catdog.export.output.gallery import attach, write_galleries
from catdog.export.output.publish import gate_error, publish, report_stem
from catdog.export.output.report import (
    FAILED_JSON,
    FAILED_MD,
    REPORT_JSON,
    REPORT_MD,
    ExportReport,
    ParitySet,
    write_report,
)
from catdog.export.output.staging import Staging, remove_stale_temps
from catdog.export.verify.images import ImageSet, held_out, load_images
from catdog.export.verify.parity import (
    artifact_info,
    artifact_runs,
    calibration_figures,
    check_parity_provider,
    eager_logits,
    parity_outputs,
)
from catdog.runtime.options import option_of
from catdog.runtime.spine.errors import CheckpointError, InputError, OutputError
from catdog.runtime.spine.fileio import check_output_file, check_writable_dir
from catdog.runtime.spine.preprocess import preprocess_batch, resize_crop
from catdog.runtime.spine.spec import PreprocessSpec
from catdog.train.models.checkpoint import Checkpoint, build_model, load_checkpoint
from catdog.train.plumbing.outdir import removed_if_unused

SIMPLIFY_CHECK_IMAGES = 8
INT8_TARGETS = {"cpu": "int8", "tensorrt": "int8-trt"}  # --int8-for TARGET -> the artifact it builds


@dataclass(frozen=True)
class _Parity:
    """One parity set, read and preprocessed: what each kind of artifact takes, and the labels."""

    name: str
    images: ImageSet
    x: np.ndarray  # float NCHW, the spine's preprocess
    crops: np.ndarray | None  # uint8 NHWC resize_crop output, for the baked artifact
    labels: np.ndarray | None

    def inputs(self, input_format: str) -> np.ndarray:
        return self.crops if input_format == "uint8" else self.x


def artifact_names(opts: ExportOptions) -> list[str]:
    """The artifacts this export builds, in build order (build.build_order: each after what it needs)."""
    asked = set(ALWAYS) | {INT8_TARGETS[t] for t in opts.int8_for}
    asked |= {n for n, on in (("fp16", opts.fp16), ("baked", opts.bake)) if on}
    return build_order(asked)


def parity_folders(opts: ExportOptions) -> tuple[Path, ...]:
    return tuple(opts.parity) if opts.parity else (opts.calib,) if opts.calib is not None else ()


def _validate(opts: ExportOptions) -> dict[str, float]:
    """Everything that can be checked without work, so mistakes fail in a second."""
    overrides = gate_overrides(list(opts.gates))
    unknown = [t for t in opts.int8_for if t not in INT8_TARGETS]
    if unknown:
        raise InputError(f"--int8-for {unknown[0]!r}: unknown target; known: {', '.join(INT8_TARGETS)}")
    if opts.int8_for and opts.calib is None:
        first = opts.int8_for[0]  # the CLI puts --int8's cpu first
        flag = "--int8" if first == "cpu" else f"--int8-for {first}"
        raise InputError(f"{flag} needs calibration images: pass --calib DIR (real photos, e.g. your training folder)")
    check_parity_provider(opts.parity_provider)
    if not parity_folders(opts):
        raise InputError("parity needs real images: pass --parity DIR (or --calib DIR, whose sample is then used)")
    seen = [str(p) for p in opts.parity]
    for p in seen:
        if seen.count(p) > 1:
            raise InputError(f"--parity {p} is given twice; each parity set is a different folder")
    if opts.calib_method is not None:
        calibration_method(opts.calib_method)
    if opts.int8_activations is not None:
        activation_type(opts.int8_activations)
    resolve_target(opts.int8_target)
    _sensitivity(opts)  # its counts, checked before any work
    for f in fields(opts):  # the ranges the fields' metadata gives (catdog-export leaves them to this check)
        o, value = option_of(f), getattr(opts, f.name)
        if o.min is not None and value < o.min:
            raise InputError(f"{o.flags[0]} must be at least {o.min:g}, got {value}")
        if o.max is not None and value > o.max:
            raise InputError(f"{o.flags[0]} must be at most {o.max:g}, got {value}")
    check_writable_dir(opts.out)
    check_outputs(opts)
    return overrides


def check_outputs(opts: ExportOptions) -> None:
    """Every file this export may publish into --out (its artifacts, its reports), checked as the
    runtime and training check theirs (spine.fileio.check_output_file): not read-only, not a folder,
    not the checkpoint it reads. Before any work, so nothing is built only to be refused."""
    names = [FORMATS[n].filename for n in artifact_names(opts)] + [REPORT_JSON, REPORT_MD, FAILED_JSON, FAILED_MD]
    for name in names:
        check_output_file(Path(opts.out) / name, (opts.ckpt,), "--out")


def _load(opts: ExportOptions) -> tuple[Checkpoint, torch.nn.Module]:
    """Read once, before any image: a bad checkpoint (its temperature too) fails in a second."""
    ckpt = load_checkpoint(opts.ckpt)
    model = build_model(ckpt, str(opts.ckpt))
    with torch.no_grad():
        n_out = model(torch.zeros(1, 3, ckpt.spec.size, ckpt.spec.size)).shape[-1]
    if n_out != len(ckpt.classes):
        raise CheckpointError(f"{opts.ckpt}: model has {n_out} outputs but the checkpoint lists {len(ckpt.classes)} "
                              "classes")
    return ckpt, model


def _sensitivity(opts: ExportOptions) -> SensitivityConfig:
    return SensitivityConfig(opts.int8_sensitivity, opts.sensitivity_count, opts.sensitivity_keep)


def decode_spec(opts: ExportOptions, spec: PreprocessSpec) -> PreprocessSpec | None:
    """The spec the spine's decoder gets: the model's (reduced JPEG decode, as the runtime does by
    default), or None with --full-decode."""
    return None if opts.full_decode else spec


def _same_folder(a: Path, b: Path | None) -> bool:
    return b is not None and Path(a).resolve() == Path(b).resolve()


def _read_parity(opts: ExportOptions, ckpt: Checkpoint, baked: bool) -> list[_Parity]:
    spec, classes = ckpt.spec, ckpt.classes
    sets = []
    for folder in parity_folders(opts):
        skip = opts.calib_count if _same_folder(folder, opts.calib) else 0  # avoid proving on calibration images
        par = load_images(folder, opts.parity_count, classes, from_names=opts.labels_from_names, skip=skip,
                          spec=decode_spec(opts, spec))
        crops = np.stack([resize_crop(im, spec) for im in par.images]) if baked else None
        labels = None if par.labels is None else np.asarray(par.labels)
        sets.append(_Parity(str(folder), par, preprocess_batch(list(par.images), spec), crops, labels))
    return sets


def _held_out(opts: ExportOptions, calib: ImageSet | None, sets: list[_Parity], spec: PreprocessSpec
              ) -> tuple[ImageSet | None, str]:
    """Calibration-folder images for INT8's choices: neither calibration nor parity images."""
    if calib is None or opts.calib is None:
        return None, "no --calib folder"
    if not opts.int8_select:
        return None, "--no-int8-select"
    used = list(calib.paths) + [p for s in sets for p in s.images.paths]
    held = held_out(opts.calib, opts.select_count, used, decode_spec(opts, spec))
    if not held.images:
        return held, (f"every image of {opts.calib} is a calibration or parity image (or unreadable); a bigger "
                      "--calib folder or a lower --calib-count leaves some to choose on")
    return held, ""


def run_export(opts: ExportOptions, progress: Callable[[str], None] | None = None) -> ExportReport:
    """Raises GateError (after writing the report) when a gate fails and no override allows it. An
    --out folder this call creates is removed again when it fails before writing anything there."""
    with removed_if_unused(opts.out):
        return _run_export(opts, progress or (lambda msg: None))


def _run_export(opts: ExportOptions, step: Callable[[str], None]) -> ExportReport:
    overrides = _validate(opts)
    names = artifact_names(opts)
    step("loading checkpoint")
    ckpt, plain = _load(opts)
    model = with_tta(plain, opts.tta_flip)  # every artifact and the parity reference: the same wrapped model
    spec = ckpt.spec
    calib_set: ImageSet | None = None
    if opts.calib is not None:
        step("reading calibration images")
        calib_set = load_images(opts.calib, opts.calib_count, spec=decode_spec(opts, spec))
    step("reading parity images")
    sets = _read_parity(opts, ckpt, baked="baked" in names)
    held, why_not = _held_out(opts, calib_set, sets, spec) if {"int8", "int8-trt"} & set(names) else (None, "")
    first = sets[0].x

    meta = base_metadata(ckpt, opts.opset, TTA_NAME if opts.tta_flip else None)
    ctx = BuildContext(
        model=model,
        example=torch.from_numpy(first[:1].copy()),
        check_inputs=first[:SIMPLIFY_CHECK_IMAGES],
        meta=meta,
        spec=spec,
        opset=opts.opset,
        calib=None if calib_set is None else preprocess_batch(list(calib_set.images), spec),
        calib_method=opts.calib_method,
        int8_target=opts.int8_target,
        int8_activations=opts.int8_activations,
        held_out=preprocess_batch(list(held.images), spec) if held is not None and held.images else None,
        held_out_why=why_not,
        int8_sensitivity=_sensitivity(opts),
    )
    remove_stale_temps(opts.out, [FORMATS[n].filename for n in FORMATS])
    staging = Staging(opts.out)
    try:
        build_all(names, ctx, staging.path, step)
        report = ExportReport(
            checkpoint=str(opts.ckpt), checkpoint_sha256=ckpt.sha256, arch=str(ckpt.arch), classes=list(meta.classes),
            opset=opts.opset, exporter=EXPORTER, temperature=meta.temperature,
            calibration=meta.extra.get("calibration"), tta=meta.extra.get("tta"),
            notes={**ctx.notes, **_notes(sets, calib_set, opts.tta_flip, meta.temperature)}, details=dict(ctx.details),
            skipped_images=([] if calib_set is None else list(calib_set.skipped))
            + ([] if held is None else list(held.skipped)),
            gate_failure_allowed=opts.allow_gate_failure,
        )
        refs = []
        for s in sets:
            step(f"eager PyTorch reference: {s.name}")
            refs.append(eager_logits(model, s.x))
            figs = calibration_figures(refs[-1], s.labels, meta.temperature)
            report.parity_sets.append(ParitySet(
                s.name, len(s.x), _labels_source(s.images), figs["accuracy"], figs["ece"], figs["ece_calibrated"],
                skipped_images=list(s.images.skipped)))
        outputs: list[dict[str, np.ndarray]] = [{} for _ in sets]  # per set: artifact -> the logits gated
        for name in names:
            fmt, path = FORMATS[name], staging.path(FORMATS[name].filename)
            step(f"parity + latency: {fmt.filename}")
            runs = artifact_runs(fmt, path, opts.parity_provider)
            for s, ref, out, got in zip(sets, refs, report.parity_sets, outputs, strict=True):
                parity, got[name] = parity_outputs(fmt, runs, s.inputs(fmt.input_format), ref, s.labels, overrides,
                                                   meta.temperature, s.name)
                out.artifacts.append(parity)
            report.artifacts.append(artifact_info(fmt, path, runs, sets[0].inputs(fmt.input_format)[:1],
                                                  opts.latency_runs, opts.parity_provider))
        for s, ref, out, got in zip(sets, refs, report.parity_sets, outputs, strict=True):
            attach(out, s.images.paths, s.labels, ref, got, meta.classes, meta.temperature)
        if report.passed or opts.allow_gate_failure:
            report.stale = publish(staging, opts.out)  # and an older export's other files moved aside
            report.published = True
        stem = report_stem(opts.out, report.published)
        write_galleries(report, [s.images.images for s in sets], opts.out, stem)
        _, md = write_report(report, opts.out, stem)
    except OSError as e:  # a library's own write failed (disk full, folder removed): one line, not a trace
        raise OutputError(f"cannot write to {opts.out}: {e.strerror or e}; nothing was published; "
                          "free some disk space or choose another --out") from None
    finally:
        staging.discard()  # whatever was not published (gate failure, error, Ctrl-C)
    if not report.published:
        raise gate_error(report, md)
    return report


def _notes(sets: list[_Parity], calib: ImageSet | None, tta: bool, temperature: float) -> dict[str, str]:
    notes = {}
    shared = [(s, set(s.images.paths) & set(calib.paths)) for s in sets] if calib is not None else []
    overlaps = [f"{len(both)} of {len(s.images.paths)} parity images were also calibration images in `{s.name}`"
                for s, both in shared if both]
    if overlaps:
        notes["parity"] = "; ".join(overlaps) + (" (the folder is too small for both); pass --parity DIR for an "
                                                 "independent check")
    if tta and temperature != 1.0:
        notes["temperature"] = ("fitted on single-pass logits at training time; the artifacts return flip-averaged "
                                "logits, whose calibration each set's ECE columns measure")
    return notes


def _labels_source(par: ImageSet) -> str | None:
    if par.labels is None:
        return None
    return "class folders" if par.layout == "folders" else "file names (--labels-from-names)"
