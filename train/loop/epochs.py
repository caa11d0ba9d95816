"""The epochs of one training run: train, validate, then record (best.pth if improved, the metrics
line, last.pth: the order --resume relies on), stopping early when asked; and what last.pth gives
back to a resumed run. fit.py sets the run up and summarises it."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from rich.console import Console
from rich.markup import escape

from catdog.train.data.datasets import ImageDataset, batch_mixer, make_loader
from catdog.train.loop import dist
from catdog.train.loop.engine import EvalResult, evaluate, train_one_epoch
from catdog.train.loop.rundir import BEST, LAST, METRICS, append_line, report_bad
from catdog.train.models.checkpoint import Checkpoint, save_checkpoint
from catdog.train.plumbing.progress import bar
from catdog.train.recipe import TrainConfig


@dataclass
class Run:
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
    state: dict[str, Any] = field(default_factory=lambda: {
        "best_acc": -1.0, "best_loss": float("inf"), "best_epoch": 0, "stale": 0})
    history: list[dict] = field(default_factory=list)
    reported: set[str] = field(default_factory=set)

    @property
    def probe_acc(self) -> float | None:
        """The bar: the frozen backbone's linear probe on this run's split (None: no probe)."""
        return (self.base["probe"] or {}).get("val_acc")

    def restore(self, last: Checkpoint) -> int:
        """Optimizer, scheduler, scaler and best-so-far from last.pth; -> the epoch it ended."""
        self.optimizer.load_state_dict(last.optimizer)
        if self.scheduler is not None and last.scheduler:
            self.scheduler.load_state_dict(last.scheduler)
        if last.scaler:
            self.scaler.load_state_dict(last.scaler)
        if self.ema is not None and last.ema:
            self.ema.load_state_dict(last.ema)
        self.state.update(last.run_state or {})
        self.say(f"resuming {escape(str(self.out))} after epoch {last.epoch} of {self.cfg.epochs}")
        return int(last.epoch)


def state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def run_epochs(run: Run, console: Console | None, train_ds: ImageDataset, val_ds: ImageDataset,
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


def probe_epoch(run: Run, val_ds: ImageDataset) -> EvalResult:
    """--epochs 0 --head probe: score the probe through the same validation path as any epoch and
    save it like one (best.pth and last.pth, so --resume --epochs N fine-tunes it: LP then FT)."""
    vloader = make_loader(val_ds, run.cfg.batch_size, run.cfg.workers, shuffle=False, seed=run.cfg.seed)
    val = evaluate(run.model, vloader, run.info.device, run.adtype)
    if run.info.main:
        _record(run, 0, 0.0, None, [0.0, 0.0, 0, 0.0, 0.0], val)
    return val


def _record(run: Run, epoch: int, lr: float, st: Any, sums: list[float], val: EvalResult) -> bool:
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
    sd = state_dict(run.model)
    if improved:  # with --ema the averaged weights are the ones validated, so the ones kept
        best_sd = state_dict(run.ema.module) if run.ema is not None else sd
        save_checkpoint(run.out / BEST, **run.base, state_dict=best_sd, metrics=metrics, epoch=epoch)
    append_line(run.out / METRICS, row)
    run.history.append(row)
    save_checkpoint(
        run.out / LAST, **run.base, state_dict=sd, metrics=metrics, epoch=epoch,
        optimizer=run.optimizer.state_dict(), scheduler=run.scheduler.state_dict() if run.scheduler else None,
        scaler=run.scaler.state_dict() if run.scaler.is_enabled() else None, run_state=dict(state),
        ema=state_dict(run.ema) if run.ema is not None else None,
    )
    if st is None:  # --epochs 0: the probe itself, no training to speak of
        run.say(f"epoch 0 (the linear probe): val loss {row['val_loss']:.4f} acc {row['val_acc']:.4f}")
        return improved
    bar_text = f" (probe {run.probe_acc:.4f})" if run.probe_acc is not None else ""
    run.say(f"epoch {epoch}: train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f} | "
            f"val loss {row['val_loss']:.4f} acc {row['val_acc']:.4f}{bar_text} | {row['images_per_s']:.1f} img/s "
            f"(data {row['data_s']:.1f}s, compute {row['compute_s']:.1f}s)" + (" [green]best[/]" if improved else ""))
    return improved
