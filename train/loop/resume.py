"""Opening a run folder: a new run refuses one that holds a run; --resume reads last.pth once and
goes on with the run's own recipe (stored in every checkpoint), so the rest of the run trains as
the interrupted one would have.

The command line may set a recipe option again. Giving the run's own value changes nothing (the
same command line plus --resume works). A different value is kept where the run stays the same run
on another machine or for longer: where the photos are now (--data, --val: the classes are checked
against the run's), how long it goes on (--epochs, --patience), how each step is cut to fit this
machine (--workers, --amp; --batch-size with --accum when their product, the images per optimizer
step, stays the run's). Every other option would make the rest of the run another recipe than its
first epochs, while the checkpoints record one: it is refused with one line."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Collection

from catdog.runtime.spine.errors import ConfigError, OutputError
from catdog.runtime.spine.fileio import check_output_file, check_writable_dir
from catdog.train.loop.dist import DistInfo
from catdog.train.loop.rundir import BEST, CLASSES, LAST, METRICS, REPORT
from catdog.train.models.checkpoint import Checkpoint, load_checkpoint
from catdog.train.recipe import TrainConfig

KEPT = frozenset({"data", "val", "epochs", "patience", "workers", "amp", "batch_size", "accum_steps"})
FLAGS = {"accum_steps": "--accum", "arch_kwargs": "--arch-kw"}  # where the flag is not the field's name
WHY = {  # why an option cannot change mid-run; the rest: the checkpoints record one recipe per run
    "arch_kwargs": "last.pth holds that model's weights",
    "pretrained": "the run's weights come from its last.pth",
    "weights": "the run's weights come from its last.pth",
    "seed": "the seed draws the validation split and every epoch's order",
    "val_fraction": "another split would train on the run's validation photos",
    "size": "the model and its preprocessing are made for the run's input size",
    "optimizer": "last.pth's optimizer state is that optimizer's",
    "lr": "last.pth's optimizer state carries the run's learning rate",
    "momentum": "last.pth's optimizer state carries the run's momentum",
    "weight_decay": "last.pth's optimizer state carries the run's weight decay",
    "scheduler": "last.pth's scheduler state is that scheduler's",
    "step_size": "last.pth's scheduler state carries the run's period",
    "gamma": "last.pth's scheduler state carries the run's factor",
    "head": "the head is chosen when a run starts",
    "probe": "the linear probe is fitted when a run starts",
    "ema": "best.pth has held the run's own kind of weights (EMA or not) from its first epoch",
}


def open_run(cfg: TrainConfig | None, out: Path, info: DistInfo, resume: bool,
             overrides: Collection[str]) -> tuple[Checkpoint | None, TrainConfig]:
    """-> (last.pth when resuming, the config to run). A new run refuses a folder holding one."""
    last = None
    if resume:
        last = load_checkpoint(out / LAST)
        stored = TrainConfig.from_dict(last.train_config)
        cfg = resumed_config(stored, cfg, () if cfg is None else overrides, int(last.epoch), out)
    elif info.main and (out / LAST).exists():
        raise OutputError(f"{out} already holds a run ({LAST}); resume it with --resume {out} or choose a new --out")
    if info.main:
        check_writable_dir(out)
        for name in (LAST, BEST, METRICS, CLASSES, REPORT):  # what every run rewrites: refused now, not epochs later
            check_output_file(out / name, (), "--out")
    return last, cfg


def resumed_config(stored: TrainConfig, cfg: TrainConfig | None, overrides: Collection[str], done: int,
                   run: Path) -> TrainConfig:
    """The run's config with the fields of `cfg` named in `overrides` that it may go on with; a
    ConfigError names the first it may not. Never fewer epochs than `done`."""
    changes = {name: getattr(cfg, name) for name in sorted(overrides)
               if getattr(cfg, name) != getattr(stored, name)}
    for name, value in changes.items():
        if name not in KEPT or (name == "val" and (value is None) != (stored.val is None)):
            raise ConfigError(_refusal(name, getattr(stored, name), value, run))
    new = stored.with_(**changes)
    if new.batch_size * new.accum_steps != stored.batch_size * stored.accum_steps:
        was = f"{_spelled('batch_size', stored.batch_size)} {_spelled('accum_steps', stored.accum_steps)}"
        raise ConfigError(f"{run} trains {stored.batch_size * stored.accum_steps} images per optimizer step ({was}) "
                          "and --resume goes on with that: give --batch-size and --accum whose product it is, "
                          "or train with another in a new --out folder")
    return new.with_(epochs=max(new.epochs, done))


def _refusal(name: str, was: Any, value: Any, run: Path) -> str:
    if name == "arch":  # the message catdog-train has always given
        return (f"{run} is a {was} run; --resume continues it as {was}: leave --arch out, "
                f"or train {value} in a new --out folder")
    if name == "val":
        why = "a split of --data and a --val folder are different validation sets"
    else:
        why = WHY.get(name, "its checkpoints record one recipe for the whole run")
    leave = _spelled(name, value) if isinstance(value, bool) else _flag(name)
    return (f"{run} was trained with {_spelled(name, was)} and --resume goes on with it ({why}): "
            f"leave {leave} out, or train with {_spelled(name, value)} in a new --out folder")


def _flag(name: str) -> str:
    return FLAGS.get(name, "--" + name.replace("_", "-"))


def _spelled(name: str, value: Any) -> str:
    """A value as the command line gives it: --lr 0.001, --no-probe, --arch-kw mode=frozen, no --size."""
    flag = _flag(name)
    if isinstance(value, bool):
        return flag if value else "--no-" + flag[2:]
    if value is None or value == {}:
        return f"no {flag}"
    if isinstance(value, dict):
        return " ".join(f"{flag} {k}={v}" for k, v in value.items())
    return f"{flag} {value}"
