"""catdog-train's train, probe and cv commands as the library runs them: the CLI parses the command
line into TrainOptions and calls these. They pick the run folder (--resume's, else --out), check
what can be checked before thousands of files are scanned, remove a folder they created when the
command fails before writing into it, remember a Ctrl-C or SIGTERM through the data loader's forks,
and word what the command prints when it is done or stopped. Light to import: torch loads with
the run, not with `catdog-train --help`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from rich.console import Console

from catdog.runtime.spine.errors import CatdogError, ConfigError
from catdog.train.options import TrainOptions
from catdog.train.plumbing.interrupt import remembered_ctrl_c
from catdog.train.plumbing.outdir import removed_if_unused

SUMMARY_KEYS = ("epochs", "best_epoch", "best_val_acc", "best_val_loss", "probe_val_acc", "out")
CV_KEYS = ("folds", "val_acc_mean", "val_acc_std", "pooled", "probe_val_acc_mean")


def check_arch(name: str, kwargs: dict[str, Any]) -> None:
    """An --arch the registry lacks, or an --arch-kw its builder does not take, is the command line's
    mistake (ConfigError), found before any scan."""
    from catdog.train.models import get_entry

    get_entry(name, error=ConfigError).check_kwargs(kwargs)


def as_probe(recipe: dict[str, Any]) -> dict[str, Any]:
    """catdog-train probe's recipe fields: the linear probe is LP-FT with no fine-tuning (the probe's
    head, saved as epoch 0), on ImageNet weights unless --weights gives others."""
    return {**recipe, "head": "probe", "probe": True, "epochs": 0,
            "pretrained": recipe["pretrained"] or recipe["weights"] is None}


def _prepared(opts: TrainOptions, *, val: bool = True) -> TrainOptions:
    """Say the preset the recipe started from; a cifar10:PATH --data as its cached class folders."""
    from catdog.train.data.cifar_cache import with_cifar

    console = _console(opts)
    say = (lambda line: console.print(line, markup=False, highlight=False)) if console else (lambda line: None)
    if opts.preset is not None:
        given = ", ".join(sorted(opts.given)) or "none"
        say(f"preset {opts.preset}: {opts.recipe.arch}, {opts.recipe.epochs} epochs; flags given over it: {given}")
    return with_cifar(opts, say, val=val)


def train(opts: TrainOptions) -> dict[str, Any]:
    """A new run into --out, or --resume's run going on; -> fit's summary."""
    if opts.resume is not None:
        if opts.out is not None and opts.out != opts.resume:
            raise ConfigError("--resume RUN_DIR continues that folder; leave --out out")
    else:
        _new_run(opts)  # checked before a CIFAR archive is written out
    opts = _prepared(opts)
    from catdog.train.loop.fit import fit

    with removed_if_unused(opts.run_dir), remembered_ctrl_c():  # a run failing before its first file leaves no folder
        return fit(opts.recipe, opts.run_dir, device=opts.device, resume=opts.resume is not None,
                   console=_console(opts), plots=opts.plots, overrides=opts.given)


def probe(opts: TrainOptions) -> dict[str, Any]:
    """The linear-probe baseline as a run of its own (its recipe from as_probe)."""
    if opts.resume is not None:
        raise ConfigError("probe has nothing to resume; continue a probe run with catdog-train --resume RUN")
    return train(opts)


def cv(opts: TrainOptions) -> dict[str, Any]:
    """k-fold cross-validation of the recipe on --data into --out; -> cv.json's report."""
    if opts.resume is not None:
        raise ConfigError("cv runs every fold from scratch; --resume a single fold's folder instead")
    _new_run(opts)
    opts = _prepared(opts, val=False)
    from catdog.train.studies.cv import cross_validate

    with removed_if_unused(opts.out), remembered_ctrl_c():
        return cross_validate(opts.recipe, opts.folds, opts.out, device=opts.device, console=_console(opts))


def _new_run(opts: TrainOptions) -> None:
    if not opts.recipe.data or opts.out is None:
        raise ConfigError("catdog-train needs --data DIR and --out RUN_DIR (or --resume RUN_DIR); see --help")
    check_arch(opts.recipe.arch, opts.recipe.arch_kwargs)


def _console(opts: TrainOptions) -> Console | None:
    return None if opts.quiet else Console(stderr=True, soft_wrap=True)


def summary_line(summary: dict[str, Any]) -> str | None:
    """What a run prints on stdout: one JSON line, from the main rank only, once an epoch is recorded."""
    if summary.get("best_epoch") is None or int(os.environ.get("RANK", "0")) != 0:
        return None
    temperature = (summary.get("calibration") or {}).get("temperature")
    return json.dumps({**{k: summary[k] for k in SUMMARY_KEYS}, "temperature": temperature})


def cv_lines(report: dict[str, Any], out: Path) -> tuple[str, str]:
    """(the stderr line, the stdout JSON line) of catdog-train cv."""
    said = (f"cv: val acc {report['val_acc_mean']:.4f} \u00b1 {report['val_acc_std']:.4f} over {report['folds']} "
            f"folds; pooled {report['pooled']}; {out / 'cv.json'}")
    return said, json.dumps({k: report[k] for k in CV_KEYS})


def interrupted_summary(out: Path) -> str:
    """What a Ctrl-C leaves: the last complete epoch (last.pth) and the best one (metrics.jsonl)."""
    from catdog.train.loop.rundir import LAST, METRICS
    from catdog.train.models.checkpoint import load_checkpoint

    rows = []
    try:
        for line in (out / METRICS).read_text(encoding="utf-8").splitlines():
            rows.append(json.loads(line))
    except (OSError, ValueError):
        pass
    try:
        done = int(load_checkpoint(out / LAST).epoch)
    except CatdogError:
        done = 0
    rows = [r for r in rows if r.get("epoch", 1 << 30) <= done]  # a line past last.pth is redone on resume
    if not rows:
        return f"interrupted before the first epoch completed; nothing to resume in {out}"
    best = max(rows, key=lambda r: (r.get("val_acc", 0), -r.get("val_loss", 0)))
    return (f"interrupted; epoch {done} was the last complete one (best val acc "
            f"{best['val_acc']:.4f} at epoch {best['epoch']}), saved in {out}; continue with --resume {out}")
