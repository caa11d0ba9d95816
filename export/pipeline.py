"""One export, end to end: checks that can fail fast run before any long work; artifacts are
staged as temp files, proved against eager PyTorch, and published only if every gate passes."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from catdog.export.formats import ALWAYS, FORMATS, BuildContext, gate_overrides, get_format
from catdog.export.images import ImageSet, load_images
from catdog.export.meta import base_metadata
from catdog.export.onnx_export import EXPORTER
from catdog.export.options import ExportOptions
from catdog.export.parity import check_artifact, eager_logits
from catdog.export.quantize import activation_type, calibration_method
from catdog.export.report import ExportReport, write_report
from catdog.export.staging import Staging, remove_stale_temps
from catdog.runtime.errors import CheckpointError, GateError, InputError, OutputError
from catdog.runtime.files import check_writable_dir, file_sha256
from catdog.runtime.preprocess import preprocess_batch, resize_crop
from catdog.train.checkpoint import build_model, load_checkpoint

SIMPLIFY_CHECK_IMAGES = 8


def artifact_names(opts: ExportOptions) -> list[str]:
    """The artifacts this export builds, in the table's order (which is the build order)."""
    asked = set(ALWAYS) | set(opts.extra_formats)
    asked |= {n for n, on in (("int8", opts.int8), ("fp16", opts.fp16), ("baked", opts.bake)) if on}
    for name in asked:
        get_format(name)  # unknown names list the known ones
    return [n for n in FORMATS if n in asked]


def _validate(opts: ExportOptions) -> dict[str, float]:
    """Everything that can be checked without work, so mistakes fail in a second."""
    overrides = gate_overrides(list(opts.gates))
    if opts.int8 and opts.calib is None:
        raise InputError("--int8 needs calibration images: pass --calib DIR (real photos, e.g. your training folder)")
    if opts.parity is None and opts.calib is None:
        raise InputError("parity needs real images: pass --parity DIR (or --calib DIR, whose sample is then used)")
    calibration_method(opts.calib_method)
    activation_type(opts.int8_activations)
    for flag, value in (("--calib-count", opts.calib_count), ("--parity-count", opts.parity_count)):
        if value < 1:
            raise InputError(f"{flag} must be at least 1, got {value}")
    check_writable_dir(opts.out)
    return overrides


def _load(opts: ExportOptions) -> tuple[dict, torch.nn.Module]:
    ckpt = load_checkpoint(opts.ckpt)
    model = build_model(ckpt, str(opts.ckpt))
    with torch.no_grad():
        n_out = model(torch.zeros(1, 3, ckpt["spec"].size, ckpt["spec"].size)).shape[-1]
    if n_out != len(ckpt["classes"]):
        raise CheckpointError(
            f"{opts.ckpt}: model has {n_out} outputs but the checkpoint lists {len(ckpt['classes'])} classes"
        )
    return ckpt, model


def run_export(opts: ExportOptions, progress: Callable[[str], None] | None = None) -> ExportReport:
    """Raises GateError (after writing the report) when a gate fails and no override allows it."""
    overrides = _validate(opts)
    names = artifact_names(opts)
    step = progress or (lambda msg: None)
    step("loading checkpoint")
    ckpt, model = _load(opts)
    spec, classes = ckpt["spec"], tuple(ckpt["classes"])
    calib_set: ImageSet | None = None
    if opts.calib is not None:
        step("reading calibration images")
        calib_set = load_images(opts.calib, opts.calib_count)
    step("reading parity images")
    parity_dir = opts.parity or opts.calib
    skip = opts.calib_count if opts.parity is None else 0  # avoid proving on calibration images
    par = load_images(parity_dir, opts.parity_count, classes, from_names=opts.labels_from_names, skip=skip)
    x = preprocess_batch(list(par.images), spec)
    crops = np.stack([resize_crop(im, spec) for im in par.images])
    labels = None if par.labels is None else np.asarray(par.labels)

    sha = file_sha256(opts.ckpt)
    ctx = BuildContext(
        model=model,
        example=torch.from_numpy(x[:1].copy()),
        check_inputs=x[:SIMPLIFY_CHECK_IMAGES],
        meta=base_metadata(ckpt, sha, opts.opset),
        spec=spec,
        opset=opts.opset,
        calib=None if calib_set is None else preprocess_batch(list(calib_set.images), spec),
        calib_method=opts.calib_method,
        int8_activations=opts.int8_activations,
    )
    remove_stale_temps(opts.out, [FORMATS[n].filename for n in FORMATS])
    staging = Staging(opts.out)
    try:
        for name in names:
            fmt = FORMATS[name]
            step(f"building {fmt.filename}")
            fmt.builder(ctx, staging.path(fmt.filename), fmt.metadata(ctx.meta))
        step("eager PyTorch reference")
        ref = eager_logits(model, x)
        eager_acc = None if labels is None else float(np.mean(ref.argmax(1) == labels))
        report = ExportReport(
            checkpoint=str(opts.ckpt), checkpoint_sha256=sha, arch=str(ckpt["arch"]), classes=list(classes),
            opset=opts.opset, exporter=EXPORTER, parity_images=len(x), parity_source=str(parity_dir),
            labels=_labels_source(par), eager_accuracy=eager_acc,
            notes={**ctx.notes, **_overlap_note(par, calib_set)}, details=dict(ctx.details),
            skipped_images=list(par.skipped) + ([] if calib_set is None else list(calib_set.skipped)),
            gate_failure_allowed=opts.allow_gate_failure,
        )
        for name in names:
            fmt = FORMATS[name]
            step(f"parity + latency: {fmt.filename}")
            inputs = crops if fmt.input_format == "uint8" else x
            report.artifacts.append(
                check_artifact(fmt, staging.path(fmt.filename), ref, inputs, labels, overrides, opts.latency_runs)
            )
        if report.passed or opts.allow_gate_failure:
            staging.publish()
            report.published = True
        write_report(report, opts.out)
    except OSError as e:  # a library's own write failed (disk full, folder removed): one line, not a trace
        raise OutputError(f"cannot write to {opts.out}: {e.strerror or e}; nothing was published; "
                          "free some disk space or choose another --out") from None
    finally:
        staging.discard()  # whatever was not published (gate failure, error, Ctrl-C)
    if not report.passed and not opts.allow_gate_failure:
        first = report.failures[0]
        more = f" (+{len(report.failures) - 1} more)" if len(report.failures) > 1 else ""
        raise GateError(
            f"{first}{more}; nothing published, see {opts.out / 'export-report.md'}; "
            "override with --gate NAME=VALUE or --allow-gate-failure"
        )
    return report


def _overlap_note(par: ImageSet, calib: ImageSet | None) -> dict[str, str]:
    shared = set(par.paths) & set(calib.paths) if calib is not None else set()
    if not shared:
        return {}
    return {"parity": f"{len(shared)} of {len(par.paths)} parity images were also calibration images "
            "(the folder is too small for both); pass --parity DIR for an independent check"}


def _labels_source(par: ImageSet) -> str | None:
    if par.labels is None:
        return None
    return "class folders" if par.layout == "folders" else "file names (--labels-from-names)"
