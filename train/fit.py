"""The training run: data -> model -> epochs -> run dir. Crash-safe by construction: every file is
written atomically, metrics.jsonl gets its line before last.pth, and --resume trusts only last.pth
(a metrics line past its epoch is dropped), so kill -9 at any moment loses at most one epoch."""

from __future__ import annotations

import functools
import inspect
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from rich.console import Console
from rich.markup import escape

from catdog.runtime.spine.errors import CheckpointError, DataError, OutputError
from catdog.runtime.spine.fileio import atomic_write, check_writable_dir
from catdog.runtime.spine.folders import LabelledFolder, scan
from catdog.runtime.spine.spec import PreprocessSpec
from catdog.train import dist
from catdog.train.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from catdog.train.data import ImageDataset, batch_mixer, make_loader, split
from catdog.train.engine import EvalResult, evaluate, train_one_epoch
from catdog.train.evaluate import calibrate_checkpoint
from catdog.train.models import get_entry, get_model
from catdog.train.probe import probe_bar
from catdog.train.progress import bar
from catdog.train.recipe import TrainConfig, amp_dtype, build_optimizer, build_scaler, build_scheduler
from catdog.train.rundir import append_line, check_free_space, report_bad, trim_metrics, write_plots

BEST, LAST, METRICS, CLASSES = "best.pth", "last.pth", "metrics.jsonl", "class_indices.json"


def resolve_arch(cfg: TrainConfig) -> tuple[PreprocessSpec, dict[str, Any]]:
    """The run's PreprocessSpec and builder kwargs. --size rescales the arch's default spec; an arch
    whose layers depend on the input size (alexnet_cifar) also gets it as its `size` kwarg."""
    entry = get_entry(cfg.arch)
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


def _state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def fit(cfg: TrainConfig | None, out: str | os.PathLike, *, device: str = "auto", resume: bool = False,
        console: Console | None = None, plots: bool = True,
        sets: tuple[LabelledFolder, LabelledFolder] | None = None) -> dict[str, Any]:
    """Train; return a summary. With resume=True the run's stored config is used; `cfg`, when given,
    only supplies `epochs` (to extend the run); None keeps the stored epoch count. `sets` (train,
    val) replaces reading cfg.data / cfg.val (cross-validation folds)."""
    info = dist.setup(device)
    try:
        return _fit(cfg, Path(out), info, resume, console if info.main else None, plots, sets)
    finally:
        dist.teardown(info)


@dataclass
class _Run:
    """What the epochs of one run share."""

    cfg: TrainConfig
    out: Path
    info: dist.DistInfo
    say: Callable[..., None]
    model: torch.nn.Module
    optimizer: Any
    scheduler: Any
    scaler: Any
    adtype: Any
    base: dict[str, Any]  # the fields every checkpoint repeats
    ema: Any = None  # AveragedModel: what is evaluated and saved as best.pth when --ema is on

    @property
    def probe_acc(self) -> float | None:
        """The bar: the frozen backbone's linear probe on this run's split (None: no probe)."""
        return (self.base["probe"] or {}).get("val_acc")
    state: dict[str, Any] = field(default_factory=lambda: {
        "best_acc": -1.0, "best_loss": float("inf"), "best_epoch": 0, "stale": 0})
    history: list[dict] = field(default_factory=list)
    reported: set[str] = field(default_factory=set)


def _open_run(cfg: TrainConfig | None, out: Path, info: dist.DistInfo, resume: bool
              ) -> tuple[Checkpoint | None, TrainConfig]:
    """-> (last.pth when resuming, the config to run). A new run refuses a folder holding one."""
    last = None
    if resume:
        last = load_checkpoint(out / LAST)
        stored = TrainConfig.from_dict(last.train_config)
        cfg = stored.with_(epochs=max(cfg.epochs if cfg else stored.epochs, last.epoch))
    elif info.main and (out / LAST).exists():
        raise OutputError(f"{out} already holds a run ({LAST}); resume it with --resume {out} or choose a new --out")
    if info.main:
        check_writable_dir(out)
    return last, cfg


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


def _restore(run: _Run, last: Checkpoint) -> int:
    """Optimizer, scheduler, scaler and best-so-far from last.pth; -> the epoch it ended."""
    run.optimizer.load_state_dict(last.optimizer)
    if run.scheduler is not None and last.scheduler:
        run.scheduler.load_state_dict(last.scheduler)
    if last.scaler:
        run.scaler.load_state_dict(last.scaler)
    if run.ema is not None and last.ema:
        run.ema.load_state_dict(last.ema)
    run.state.update(last.run_state or {})
    run.say(f"resuming {escape(str(run.out))} after epoch {last.epoch} of {run.cfg.epochs}")
    return int(last.epoch)


def _fit(cfg: TrainConfig | None, out: Path, info: dist.DistInfo, resume: bool, console: Console | None,
         plots: bool, sets: tuple[LabelledFolder, LabelledFolder] | None) -> dict:
    say = console.print if console else (lambda *a, **k: None)
    last, cfg = _open_run(cfg, out, info, resume)
    torch.manual_seed(cfg.seed)
    train_set, val_set = sets or load_data(cfg, list(last.classes) if last else None)
    classes = list(train_set.classes)
    if last and classes != list(last.classes):
        raise DataError(f"{cfg.data}: classes {classes} differ from the run's {list(last.classes)}")
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
    run = _Run(cfg, out, info, say, model, optimizer, build_scheduler(optimizer, cfg),
               build_scaler(adtype, info.device), adtype, base, ema)
    start = _restore(run, last) if last else 0
    if info.main:
        run.history = trim_metrics(out / METRICS, start)
        atomic_write(out / CLASSES, json.dumps({c: i for i, c in enumerate(classes)}, indent=2) + "\n")
    train_ds = ImageDataset(train_set, get_entry(cfg.arch).train_spec(spec), train=True, augment=cfg.augment)
    val_ds = ImageDataset(val_set, spec, train=False)
    if cfg.epochs == 0:  # the linear probe itself: its head is in place, record it as epoch 0
        val_result = best_val = _probe_epoch(run, val_ds)
        epoch = 0
    else:
        val_result, best_val, epoch = _epochs(run, console, train_ds, val_ds, start)
    state = run.state
    summary = {"epochs": epoch, "best_epoch": state["best_epoch"], "best_val_acc": state["best_acc"],
               "best_val_loss": state["best_loss"], "probe_val_acc": run.probe_acc,
               "probe_val_loss": (run.base["probe"] or {}).get("val_loss"), "out": str(out),
               "skipped": sorted(run.reported)}
    if info.main and state["best_acc"] >= 0:
        summary["calibration"] = calibrate_checkpoint(out / BEST, best_val, val_ds, info.device, say,
                                                      batch_size=cfg.batch_size, workers=cfg.workers)
    if plots and info.main and (best_val or val_result) is not None:
        write_plots(out, run.history, best_val or val_result, classes, say)
    return summary


def _epochs(run: _Run, console: Console | None, train_ds: ImageDataset, val_ds: ImageDataset,
            start: int) -> tuple[EvalResult | None, EvalResult | None, int]:
    """Epochs start+1 .. cfg.epochs (or an early stop) -> (last val result, best val result, last epoch)."""
    cfg, info, model = run.cfg, run.info, run.model
    loader = functools.partial(make_loader, batch_size=cfg.batch_size, workers=cfg.workers, seed=cfg.seed,
                               pin_memory=info.device.type == "cuda")
    sampler = None
    if info.enabled:
        from torch.utils.data.distributed import DistributedSampler

        sampler = DistributedSampler(train_ds, info.world, info.rank, shuffle=True, seed=cfg.seed)
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    mix = batch_mixer(len(run.base["classes"]), mixup=cfg.mixup, cutmix=cfg.cutmix)
    judged = run.ema.module if run.ema is not None else model  # what validation sees and best.pth holds
    ddp_model, trainable = None, None
    val_result: EvalResult | None = None
    best_val: EvalResult | None = None  # the best epoch's predictions, for the confusion matrix/ROC
    epoch = start
    for epoch in range(start + 1, cfg.epochs + 1):
        if hasattr(model, "set_epoch"):
            model.set_epoch(epoch)  # progressive unfreezing decides what trains this epoch
        now = tuple(p.requires_grad for p in model.parameters())
        if info.enabled and now != trainable:  # DDP must be rebuilt when the trainable set changes
            from torch.nn.parallel import DistributedDataParallel as DDP

            ddp_model = DDP(model, device_ids=[info.device] if info.device.type == "cuda" else None)
        trainable = now
        torch.manual_seed(cfg.seed * 1000 + epoch)
        if sampler is not None:
            sampler.set_epoch(epoch)
        batches = loader(train_ds, shuffle=True, epoch=epoch, sampler=sampler)
        lr = run.optimizer.param_groups[0]["lr"]
        with bar(console, f"epoch {epoch}/{cfg.epochs} train", len(train_ds) // info.world) as tick:
            st = train_one_epoch(ddp_model or model, batches, run.optimizer, criterion, info.device, run.scaler,
                                 run.adtype, cfg.accum_steps, tick, mix=mix, ema=run.ema, freeze_bn=cfg.freeze_bn)
        sums = dist.all_sum(info, [st.loss * st.images, st.acc * st.images, st.images, st.data_seconds,
                                   st.compute_seconds])
        bad = dist.gather_lists(info, st.bad)
        if run.scheduler is not None:
            run.scheduler.step()
        stop = False
        if info.main:
            vloader = loader(val_ds, shuffle=False, epoch=epoch)
            with bar(console, f"epoch {epoch}/{cfg.epochs} val  ", len(val_ds)) as tick:
                val_result = evaluate(judged, vloader, info.device, run.adtype, tick)
            report_bad(bad + val_result.bad, run.reported, run.say)
            if _record(run, epoch, lr, st, sums, val_result):
                best_val = val_result
            stop = cfg.patience > 0 and run.state["stale"] >= cfg.patience
            if stop:
                run.say(f"early stop: no improvement for {cfg.patience} epoch(s); best epoch {run.state['best_epoch']}")
        if dist.broadcast_object(info, stop):
            break
        dist.barrier(info)
    return val_result, best_val, epoch


def _probe_epoch(run: _Run, val_ds: ImageDataset) -> EvalResult:
    """--epochs 0 --head probe: score the probe through the same validation path as any epoch and
    save it like one (best.pth and last.pth, so --resume --epochs N fine-tunes it: LP then FT)."""
    vloader = make_loader(val_ds, run.cfg.batch_size, run.cfg.workers, shuffle=False, seed=run.cfg.seed)
    val = evaluate(run.model, vloader, run.info.device, run.adtype)
    if run.info.main:
        _record(run, 0, 0.0, None, [0.0, 0.0, 0, 0.0, 0.0], val)
    return val


def _record(run: _Run, epoch: int, lr: float, st: Any, sums: list[float], val: EvalResult) -> bool:
    """Main rank, end of an epoch: best.pth if improved, then the metrics line, then last.pth (the
    order --resume relies on). -> whether the epoch improved."""
    loss_sum, correct, images, data_s, comp_s = sums
    world, state = run.info.world, run.state
    row = {
        "epoch": epoch, "lr": lr, "train_loss": loss_sum / max(images, 1), "train_acc": correct / max(images, 1),
        "val_loss": val.loss, "val_acc": val.acc, "train_images": int(images),
        "val_images": val.images, "images_per_s": images / max(st.seconds, 1e-9) if st else 0.0,
        "data_s": data_s / world, "compute_s": comp_s / world, "epoch_s": st.seconds if st else 0.0,
        "val_s": val.seconds, "skipped": len(run.reported), "time": time.time(),
        "probe_val_acc": run.probe_acc,  # the bar: the frozen backbone's linear probe, same split
    }
    improved = (val.acc, -val.loss) > (state["best_acc"], -state["best_loss"])
    if improved:
        state.update(best_acc=val.acc, best_loss=val.loss, best_epoch=epoch, stale=0)
    else:
        state["stale"] += 1
    metrics = {k: row[k] for k in ("val_acc", "val_loss", "train_loss", "train_acc", "epoch")}
    sd = _state_dict(run.model)
    if improved:  # with --ema the averaged weights are the ones validated, so the ones kept
        best_sd = _state_dict(run.ema.module) if run.ema is not None else sd
        save_checkpoint(run.out / BEST, **run.base, state_dict=best_sd, metrics=metrics, epoch=epoch)
    append_line(run.out / METRICS, row)
    run.history.append(row)
    save_checkpoint(
        run.out / LAST, **run.base, state_dict=sd, metrics=metrics, epoch=epoch,
        optimizer=run.optimizer.state_dict(), scheduler=run.scheduler.state_dict() if run.scheduler else None,
        scaler=run.scaler.state_dict() if run.scaler.is_enabled() else None, run_state=dict(state),
        ema=_state_dict(run.ema) if run.ema is not None else None,
    )
    if st is None:  # --epochs 0: the probe itself, no training to speak of
        run.say(f"epoch 0 (the linear probe): val loss {row['val_loss']:.4f} acc {row['val_acc']:.4f}")
        return improved
    bar_text = f" (probe {run.probe_acc:.4f})" if run.probe_acc is not None else ""
    run.say(f"epoch {epoch}: train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f} | "
            f"val loss {row['val_loss']:.4f} acc {row['val_acc']:.4f}{bar_text} | {row['images_per_s']:.1f} img/s "
            f"(data {row['data_s']:.1f}s, compute {row['compute_s']:.1f}s)" + (" [green]best[/]" if improved else ""))
    return improved
