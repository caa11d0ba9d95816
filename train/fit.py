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

from catdog.runtime.errors import CheckpointError, DataError, OutputError
from catdog.runtime.files import atomic_write, check_writable_dir
from catdog.runtime.folders import LabelledFolder, scan
from catdog.runtime.spec import PreprocessSpec
from catdog.train import dist
from catdog.train.checkpoint import load_checkpoint, save_checkpoint
from catdog.train.data import ImageDataset, make_loader, split
from catdog.train.engine import EvalResult, evaluate, train_one_epoch
from catdog.train.models import get_entry, get_model
from catdog.train.progress import bar
from catdog.train.recipe import TrainConfig, amp_dtype, build_optimizer, build_scaler, build_scheduler

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


def _append_line(path: Path, record: dict) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _trim_metrics(path: Path, epochs_done: int) -> list[dict]:
    """Keep the lines of completed (checkpointed) epochs; rewrite the file atomically."""
    rows = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a crash
            if isinstance(row, dict) and row.get("epoch", 1 << 30) <= epochs_done:
                rows.append(row)
    atomic_write(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    return rows


def fit(cfg: TrainConfig | None, out: str | os.PathLike, *, device: str = "auto", resume: bool = False,
        console: Console | None = None, plots: bool = True) -> dict[str, Any]:
    """Train; return a summary. With resume=True the run's stored config is used; `cfg`, when given,
    only supplies `epochs` (to extend the run); None keeps the stored epoch count."""
    info = dist.setup(device)
    try:
        return _fit(cfg, Path(out), info, resume, console if info.main else None, plots)
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
    state: dict[str, Any] = field(default_factory=lambda: {
        "best_acc": -1.0, "best_loss": float("inf"), "best_epoch": 0, "stale": 0})
    history: list[dict] = field(default_factory=list)
    reported: set[str] = field(default_factory=set)


def _open_run(cfg: TrainConfig | None, out: Path, info: dist.DistInfo, resume: bool) -> tuple[dict | None, TrainConfig]:
    """-> (last.pth when resuming, the config to run). A new run refuses a folder holding one."""
    last = None
    if resume:
        last = load_checkpoint(out / LAST)
        stored = TrainConfig.from_dict(last["train_config"])
        cfg = stored.with_(epochs=max(cfg.epochs if cfg else stored.epochs, last["epoch"]))
    elif info.main and (out / LAST).exists():
        raise OutputError(f"{out} already holds a run ({LAST}); resume it with --resume {out} or choose a new --out")
    if info.main:
        check_writable_dir(out)
    return last, cfg


def _build_model(cfg: TrainConfig, classes: list[str], arch_kwargs: dict, last: dict | None,
                 out: Path) -> torch.nn.Module:
    fresh = last is None
    model = get_model(cfg.arch, len(classes), pretrained=cfg.pretrained and fresh,
                      weights=cfg.weights if fresh else None, **arch_kwargs)
    if last:
        try:
            model.load_state_dict(last["state_dict"])
        except RuntimeError:  # e.g. another run's last.pth copied in: one line, not a size-mismatch dump
            raise CheckpointError(f"{out / LAST}: weights do not match its arch {cfg.arch!r} with {len(classes)} "
                                  "classes; it is not a checkpoint of this run; start a new run with --out") from None
    return model


def _restore(run: _Run, last: dict) -> int:
    """Optimizer, scheduler, scaler and best-so-far from last.pth; -> the epoch it ended."""
    run.optimizer.load_state_dict(last["optimizer"])
    if run.scheduler is not None and last.get("scheduler"):
        run.scheduler.load_state_dict(last["scheduler"])
    if last.get("scaler"):
        run.scaler.load_state_dict(last["scaler"])
    run.state.update(last.get("run_state") or {})
    run.say(f"resuming {escape(str(run.out))} after epoch {last['epoch']} of {run.cfg.epochs}")
    return int(last["epoch"])


def _fit(cfg: TrainConfig | None, out: Path, info: dist.DistInfo, resume: bool, console: Console | None,
         plots: bool) -> dict:
    say = console.print if console else (lambda *a, **k: None)
    last, cfg = _open_run(cfg, out, info, resume)
    torch.manual_seed(cfg.seed)
    train_set, val_set = load_data(cfg, last["classes"] if last else None)
    classes = list(train_set.classes)
    if last and classes != last["classes"]:
        raise DataError(f"{cfg.data}: classes {classes} differ from the run's {last['classes']}")
    spec, arch_kwargs = resolve_arch(cfg)
    say(f"[bold]{cfg.arch}[/] on {info.device}{f' x{info.world}' if info.enabled else ''}: "
        f"{len(train_set.samples)} train / {len(val_set.samples)} val images, classes {escape(str(classes))} "
        f"({train_set.layout} layout), input {spec.size}px")
    model = _build_model(cfg, classes, arch_kwargs, last, out)
    if info.main:
        _check_free_space(out, model, cfg.arch)
    model.to(info.device)
    optimizer = build_optimizer(model, cfg)
    adtype = amp_dtype(cfg, info.device)
    base = {"arch": cfg.arch, "arch_kwargs": arch_kwargs, "classes": classes, "spec": spec,
            "train_config": cfg.to_dict()}
    run = _Run(cfg, out, info, say, model, optimizer, build_scheduler(optimizer, cfg),
               build_scaler(adtype, info.device), adtype, base)
    start = _restore(run, last) if last else 0
    if info.main:
        run.history = _trim_metrics(out / METRICS, start)
        atomic_write(out / CLASSES, json.dumps({c: i for i, c in enumerate(classes)}, indent=2) + "\n")
    train_ds = ImageDataset(train_set, get_entry(cfg.arch).train_spec(spec), train=True)
    val_result, best_val, epoch = _epochs(run, console, train_ds, ImageDataset(val_set, spec, train=False), start)
    state = run.state
    summary = {"epochs": epoch, "best_epoch": state["best_epoch"], "best_val_acc": state["best_acc"],
               "best_val_loss": state["best_loss"], "out": str(out), "skipped": sorted(run.reported)}
    if plots and info.main and (best_val or val_result) is not None:
        _plots(out, run.history, best_val or val_result, classes, say)
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
                                 run.adtype, cfg.accum_steps, tick)
        sums = dist.all_sum(info, [st.loss * st.images, st.acc * st.images, st.images, st.data_seconds,
                                   st.compute_seconds])
        bad = dist.gather_lists(info, st.bad)
        if run.scheduler is not None:
            run.scheduler.step()
        stop = False
        if info.main:
            vloader = loader(val_ds, shuffle=False, epoch=epoch)
            with bar(console, f"epoch {epoch}/{cfg.epochs} val  ", len(val_ds)) as tick:
                val_result = evaluate(model, vloader, info.device, run.adtype, tick)
            _report_bad(bad + val_result.bad, run.reported, run.say)
            if _record(run, epoch, lr, st, sums, val_result):
                best_val = val_result
            stop = cfg.patience > 0 and run.state["stale"] >= cfg.patience
            if stop:
                run.say(f"early stop: no improvement for {cfg.patience} epoch(s); best epoch {run.state['best_epoch']}")
        if dist.broadcast_object(info, stop):
            break
        dist.barrier(info)
    return val_result, best_val, epoch


def _record(run: _Run, epoch: int, lr: float, st: Any, sums: list[float], val: EvalResult) -> bool:
    """Main rank, end of an epoch: best.pth if improved, then the metrics line, then last.pth (the
    order --resume relies on). -> whether the epoch improved."""
    loss_sum, correct, images, data_s, comp_s = sums
    world, state = run.info.world, run.state
    row = {
        "epoch": epoch, "lr": lr, "train_loss": loss_sum / max(images, 1), "train_acc": correct / max(images, 1),
        "val_loss": val.loss, "val_acc": val.acc, "train_images": int(images),
        "val_images": val.images, "images_per_s": images / max(st.seconds, 1e-9),
        "data_s": data_s / world, "compute_s": comp_s / world, "epoch_s": st.seconds,
        "val_s": val.seconds, "skipped": len(run.reported), "time": time.time(),
    }
    improved = (val.acc, -val.loss) > (state["best_acc"], -state["best_loss"])
    if improved:
        state.update(best_acc=val.acc, best_loss=val.loss, best_epoch=epoch, stale=0)
    else:
        state["stale"] += 1
    metrics = {k: row[k] for k in ("val_acc", "val_loss", "train_loss", "train_acc", "epoch")}
    sd = _state_dict(run.model)
    if improved:
        save_checkpoint(run.out / BEST, **run.base, state_dict=sd, metrics=metrics, epoch=epoch)
    _append_line(run.out / METRICS, row)
    run.history.append(row)
    save_checkpoint(
        run.out / LAST, **run.base, state_dict=sd, metrics=metrics, epoch=epoch,
        optimizer=run.optimizer.state_dict(), scheduler=run.scheduler.state_dict() if run.scheduler else None,
        scaler=run.scaler.state_dict() if run.scaler.is_enabled() else None, run_state=dict(state),
    )
    run.say(f"epoch {epoch}: train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f} | "
            f"val loss {row['val_loss']:.4f} acc {row['val_acc']:.4f} | {row['images_per_s']:.1f} img/s "
            f"(data {row['data_s']:.1f}s, compute {row['compute_s']:.1f}s)" + (" [green]best[/]" if improved else ""))
    return improved


def _check_free_space(out: Path, model: torch.nn.Module, arch: str) -> None:
    """Fail before the first epoch if best.pth + last.pth cannot fit: last.pth holds the weights and
    up to two optimizer moments, and an atomic save briefly needs the old and the new file."""
    import shutil

    need = 8 * sum(t.numel() * t.element_size() for t in model.state_dict().values())
    free = shutil.disk_usage(out).free
    if free < need:
        raise OutputError(f"{out}: only {free / 1e6:.1f} MB free, {arch} checkpoints need about {need / 1e6:.0f} MB; "
                          "free some disk space or choose another --out")


def _report_bad(messages: list[str], reported: set[str], say) -> None:
    new = sorted(set(messages) - reported)
    if new:
        reported.update(new)
        say(f"[yellow]skipped {len(new)} unreadable image(s):[/]")
        for m in new:
            say(f"  {m}", markup=False, highlight=False)


def _plots(out: Path, history: list[dict], val: EvalResult, classes: list[str], say) -> None:
    try:
        from catdog.train import plots
    except ImportError:  # matplotlib is an optional part of [train]
        say("matplotlib not installed: no plots")
        return
    for path in plots.save_all(out, history, val.probs, val.labels, classes):
        say(f"wrote {escape(str(path))}")
