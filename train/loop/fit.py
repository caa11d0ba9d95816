"""The training run: data -> model -> epochs (epochs.py) -> run dir, new or resumed (resume.py).
Crash-safe by construction: every file is written atomically, metrics.jsonl gets its line before
last.pth, and --resume trusts only last.pth (a metrics line past its epoch is dropped), so kill -9
at any moment loses at most one epoch."""

from __future__ import annotations

import inspect
import json
import os
from pathlib import Path
from typing import Any, Collection

import torch
from rich.console import Console
from rich.markup import escape

from catdog.runtime.spine.errors import CheckpointError, DataError
from catdog.runtime.spine.fileio import atomic_write
from catdog.runtime.spine.folders import LabelledFolder, scan
from catdog.runtime.spine.spec import PreprocessSpec
from catdog.train.data.datasets import ImageDataset, check_classes_readable, split
from catdog.train.loop import dist
from catdog.train.loop.epochs import Run, probe_epoch, run_epochs
from catdog.train.loop.evaluate import accuracy_report, calibrate_checkpoint
from catdog.train.loop.probe import probe_bar
from catdog.train.loop.resume import open_run
from catdog.train.loop.rundir import (
    BEST,
    CLASSES,
    LAST,
    METRICS,
    check_free_space,
    trim_metrics,
    write_plots,
    write_report,
)
from catdog.train.models import get_entry, get_model
from catdog.train.models.checkpoint import Checkpoint
from catdog.train.recipe import TrainConfig, amp_dtype, build_optimizer, build_scaler, build_scheduler


def resolve_arch(cfg: TrainConfig) -> tuple[PreprocessSpec, dict[str, Any]]:
    """The run's PreprocessSpec and builder kwargs. --size rescales the arch's default spec; an arch
    whose layers depend on the input size (alexnet_cifar) also gets it as its `size` kwarg."""
    entry = get_entry(cfg.arch)
    entry.check_kwargs(cfg.arch_kwargs)
    spec, kwargs = entry.spec, dict(cfg.arch_kwargs)
    takes_size = "size" in inspect.signature(entry.builder).parameters
    size = cfg.size or (kwargs.get("size") if takes_size else None)
    if size and size != spec.size:
        spec = spec.at_size(int(size))
    if takes_size and size:
        kwargs["size"] = int(size)
    return spec, kwargs


def load_data(cfg: TrainConfig, classes: list[str] | None = None) -> tuple[LabelledFolder, LabelledFolder]:
    if cfg.val:
        train = scan(cfg.data, classes)
        return train, scan(cfg.val, train.classes)
    return split(scan(cfg.data, classes), cfg.val_fraction, cfg.seed)


def fit(cfg: TrainConfig | None, out: str | os.PathLike, *, device: str = "auto", resume: bool = False,
        console: Console | None = None, plots: bool = True,
        sets: tuple[LabelledFolder, LabelledFolder] | None = None,
        overrides: Collection[str] = ("epochs",)) -> dict[str, Any]:
    """Train; return a summary. With resume=True the run's stored config is used, but for the fields
    of `cfg` named in `overrides` (default: epochs, to extend the run), kept where the run can go on
    with them and refused otherwise (resume.py); cfg None keeps the stored config. `sets` (train,
    val) replaces reading cfg.data / cfg.val (cross-validation folds)."""
    info = dist.setup(device)
    try:
        return _fit(cfg, Path(out), info, resume, console if info.main else None, plots, sets, overrides)
    finally:
        dist.teardown(info)


def _build_model(cfg: TrainConfig, classes: list[str], arch_kwargs: dict, last: Checkpoint | None,
                 out: Path) -> torch.nn.Module:
    fresh = last is None
    model = get_model(cfg.arch, len(classes), pretrained=cfg.pretrained and fresh,
                      weights=cfg.weights if fresh else None, **arch_kwargs)
    if last:
        try:
            model.load_state_dict(last.state_dict)
        except RuntimeError:  # e.g. another run's last.pth copied in: one line, not a size-mismatch dump
            raise CheckpointError(f"{out / LAST}: weights do not match its arch {cfg.arch!r} with {len(classes)} "
                                  "classes; it is not a checkpoint of this run; start a new run with --out") from None
    return model


def _fit(cfg: TrainConfig | None, out: Path, info: dist.DistInfo, resume: bool, console: Console | None,
         plots: bool, sets: tuple[LabelledFolder, LabelledFolder] | None, overrides: Collection[str]) -> dict:
    say = console.print if console else (lambda *a, **k: None)
    last, cfg = open_run(cfg, out, info, resume, overrides)
    torch.manual_seed(cfg.seed)
    train_set, val_set = sets or load_data(cfg, list(last.classes) if last else None)
    classes = list(train_set.classes)
    if last and classes != list(last.classes):
        raise DataError(f"{cfg.data}: classes {classes} differ from the run's {list(last.classes)}")
    check_classes_readable(train_set)
    spec, arch_kwargs = resolve_arch(cfg)
    say(f"[bold]{cfg.arch}[/] on {info.device}{f' x{info.world}' if info.enabled else ''}: "
        f"{len(train_set.samples)} train / {len(val_set.samples)} val images, classes {escape(str(classes))} "
        f"({train_set.layout} layout), input {spec.size}px")
    model = _build_model(cfg, classes, arch_kwargs, last, out)
    if info.main:
        check_free_space(out, model, cfg.arch)
    model.to(info.device)
    probe = last.probe if last else probe_bar(cfg, model, train_set, val_set, spec, info, say)
    optimizer = build_optimizer(model, cfg)
    adtype = amp_dtype(cfg, info.device)
    base = {"arch": cfg.arch, "arch_kwargs": arch_kwargs, "classes": classes, "spec": spec,
            "train_config": cfg.to_dict(), "probe": probe}
    ema = None
    if cfg.ema:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True)
    run = Run(cfg, out, info, say, model, optimizer, build_scheduler(optimizer, cfg),
               build_scaler(adtype, info.device), adtype, base, ema)
    start = run.restore(last) if last else 0
    if info.main:
        run.history = trim_metrics(out / METRICS, start)
        atomic_write(out / CLASSES, json.dumps({c: i for i, c in enumerate(classes)}, indent=2) + "\n")
    train_ds = ImageDataset(train_set, get_entry(cfg.arch).train_spec(spec), train=True, augment=cfg.augment)
    val_ds = ImageDataset(val_set, spec, train=False)
    if cfg.epochs == 0:  # the linear probe itself: its head is in place, record it as epoch 0
        val_result = best_val = probe_epoch(run, val_ds)
        epoch = 0
    else:
        val_result, best_val, epoch = run_epochs(run, console, train_ds, val_ds, start)
    state = run.state
    summary = {"epochs": epoch, "best_epoch": state["best_epoch"], "best_val_acc": state["best_acc"],
               "best_val_loss": state["best_loss"], "probe_val_acc": run.probe_acc,
               "probe_val_loss": (run.base["probe"] or {}).get("val_loss"), "out": str(out),
               "skipped": sorted(run.reported)}
    if info.main and state["best_acc"] >= 0:
        summary["calibration"], best_val = calibrate_checkpoint(out / BEST, best_val, val_ds, info.device, say,
                                                                batch_size=cfg.batch_size, workers=cfg.workers)
        val = accuracy_report(best_val, classes, summary["calibration"]["temperature"])
        summary["per_class"] = val["per_class"]
        write_report(out, summary, val, classes, say)
    if plots and info.main and (best_val or val_result) is not None:
        write_plots(out, run.history, best_val or val_result, classes, say)
    return summary

