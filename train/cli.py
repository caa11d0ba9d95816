"""catdog-train: `catdog-train --data DIR --arch NAME --epochs N --out RUN_DIR` trains (the app's
default action, also reachable as `catdog-train train ...`); `prepare`, `stats` and `evaluate` are
subcommands. Every command goes through the one CLI boundary: errors print one line to stderr and
exit non-zero; --debug shows the traceback. Option defaults are read from TrainConfig (recipe.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from catdog.runtime.spine.boundary import cli_boundary, interrupt_exit
from catdog.runtime.spine.errors import CatdogError
from catdog.train.interrupt import remembered_ctrl_c
from catdog.train.outdir import removed_if_unused
from catdog.train.prepare import STATS_SHORT
from catdog.train.recipe import AMP_MODES, AUGMENTS, HEADS, OPTIMIZERS, SCHEDULERS, ConfigError, TrainConfig

app = typer.Typer(add_completion=False, no_args_is_help=False, pretty_exceptions_enable=False,
                  help="Train an image classifier; prepare and inspect datasets.")
err = Console(stderr=True, soft_wrap=True)
D = TrainConfig  # the options' defaults are its fields' defaults: each is written once, in recipe.py


def _parse_kw(items: list[str]) -> dict:
    """--arch-kw mode=frozen --arch-kw dropout=0.3 -> {"mode": "frozen", "dropout": 0.3}."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--arch-kw {item!r}: expected KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


@cli_boundary
def train(
    ctx: typer.Context,
    data: Optional[Path] = typer.Option(None, help="Training images: flat (cat.1.jpg) or one folder per class."),
    val: Optional[Path] = typer.Option(None, help="Validation folder; default: a seeded --val-fraction of --data."),
    arch: str = typer.Option(D.arch, help="Model name (see --list-archs)."),
    pretrained: bool = typer.Option(D.pretrained, help="Start from ImageNet weights."),
    weights: Optional[Path] = typer.Option(None, help="Start from a local state_dict / checkpoint."),
    arch_kw: List[str] = typer.Option([], help="Model option KEY=VALUE (e.g. mode=frozen for resnet18)."),
    epochs: Optional[int] = typer.Option(None,
                                         help=f"Epochs to train (default {D.epochs}; with --resume: the run's own)."),
    out: Optional[Path] = typer.Option(None, help="Run folder (best.pth, last.pth, metrics.jsonl, plots)."),
    resume: Optional[Path] = typer.Option(None, help="Continue the run in this folder after its last complete epoch."),
    batch_size: int = typer.Option(D.batch_size),
    workers: Optional[int] = typer.Option(None, help="Data loader processes (default: CPU cores, at most 8)."),
    optimizer: str = typer.Option(D.optimizer, help=f"{' | '.join(OPTIMIZERS)} (sgd with --momentum)."),
    lr: float = typer.Option(D.lr),
    momentum: float = typer.Option(D.momentum),
    weight_decay: float = typer.Option(D.weight_decay),
    scheduler: str = typer.Option(D.scheduler, help=" | ".join(SCHEDULERS) + "."),
    step_size: int = typer.Option(D.step_size, help="StepLR period in epochs."),
    gamma: float = typer.Option(D.gamma, help="StepLR factor."),
    label_smoothing: float = typer.Option(D.label_smoothing),
    accum: int = typer.Option(D.accum_steps, help="Gradient accumulation steps."),
    amp: str = typer.Option(D.amp, help=f"{' | '.join(AMP_MODES)} (CUDA only; auto = bf16/fp16 on CUDA, off on CPU)."),
    patience: int = typer.Option(D.patience, help="Early stopping patience in epochs (0 = off)."),
    seed: int = typer.Option(D.seed),
    val_fraction: float = typer.Option(D.val_fraction),
    size: Optional[int] = typer.Option(D.size, help="Override the arch's input size."),
    head: str = typer.Option(D.head, help=f"{' | '.join(HEADS)}: a fresh head, or the linear probe's (LP-FT)."),
    probe: bool = typer.Option(D.probe, help="Fit the linear probe first and report it beside every epoch."),
    ema: float = typer.Option(D.ema, help="EMA decay of the weights, e.g. 0.99 (0 = off); the EMA is what is saved."),
    mixup: float = typer.Option(D.mixup, help="MixUp alpha, e.g. 0.2 (0 = off)."),
    cutmix: float = typer.Option(D.cutmix, help="CutMix alpha, e.g. 1.0 (0 = off)."),
    augment: str = typer.Option(D.augment, help=" | ".join(AUGMENTS) + "."),
    freeze_bn: bool = typer.Option(D.freeze_bn, help="BatchNorm keeps its pretrained statistics while training."),
    folds: int = typer.Option(5, min=2, help="cv only: number of stratified folds."),
    device: str = typer.Option("auto", help="auto | cpu | cuda | cuda:N."),
    list_archs: bool = typer.Option(False, help="List the model names and exit."),
    quiet: bool = typer.Option(False, help="No progress bars."),
    plots: bool = typer.Option(True, help="Write curves/confusion/ROC PNGs at the end."),
) -> None:
    """Train a classifier (the default command)."""
    if ctx.invoked_subcommand is not None:
        return
    command = ctx.info_name if ctx.info_name in ("probe", "cv") else "train"
    if command == "probe":  # the linear probe is LP-FT with no fine-tuning: the head, saved as epoch 0
        if resume is not None:
            raise ConfigError("probe has nothing to resume; continue a probe run with catdog-train --resume RUN")
        head, probe, epochs, pretrained = "probe", True, 0, pretrained or weights is None
    from catdog.train.models import list_models

    if list_archs:
        print("\n".join(list_models()))
        return
    from catdog.train.data import default_workers
    from catdog.train.fit import fit

    if resume is not None:
        if out is not None and out != resume:
            raise ConfigError("--resume RUN_DIR continues that folder; leave --out out")
        out = resume
        if ctx.get_parameter_source("arch").name == "COMMANDLINE":
            from catdog.train.checkpoint import load_checkpoint

            run_arch = load_checkpoint(resume / "last.pth").arch
            if arch != run_arch:
                raise ConfigError(f"{resume} is a {run_arch} run; --resume continues it as {run_arch}: "
                                  f"leave --arch out, or train {arch} in a new --out folder")
    elif data is None or out is None:
        raise ConfigError("catdog-train needs --data DIR and --out RUN_DIR (or --resume RUN_DIR); see --help")
    cfg = TrainConfig(
        arch=arch, arch_kwargs=_parse_kw(arch_kw), pretrained=pretrained, weights=str(weights) if weights else None,
        data=str(data or ""), val=str(val) if val else None, val_fraction=val_fraction,
        epochs=D.epochs if epochs is None else epochs,
        batch_size=batch_size, workers=default_workers() if workers is None else workers, optimizer=optimizer,
        lr=lr, momentum=momentum,
        weight_decay=weight_decay, scheduler=scheduler, step_size=step_size, gamma=gamma,
        label_smoothing=label_smoothing, accum_steps=accum, amp=amp, patience=patience, seed=seed, size=size,
        head=head, probe=probe, ema=ema, mixup=mixup, cutmix=cutmix, augment=augment, freeze_bn=freeze_bn,
    )
    if resume is None:
        from catdog.train.models import get_entry

        get_entry(arch)  # unknown arch: fail before scanning thousands of files
    console = None if quiet else Console(stderr=True, soft_wrap=True)
    if command == "cv":
        from catdog.train.cv import cross_validate

        if resume is not None:
            raise ConfigError("cv runs every fold from scratch; --resume a single fold's folder instead")
        with removed_if_unused(out), remembered_ctrl_c():
            report = cross_validate(cfg, folds, out, device=device, console=console)
        err.print(f"cv: val acc {report['val_acc_mean']:.4f} \u00b1 {report['val_acc_std']:.4f} over {folds} folds; "
                  f"pooled {report['pooled']}; {out / 'cv.json'}", markup=False, highlight=False)
        print(json.dumps({k: report[k] for k in ("folds", "val_acc_mean", "val_acc_std", "pooled",
                                                   "probe_val_acc_mean")}))
        return
    try:
        with removed_if_unused(out), remembered_ctrl_c():  # a run that fails before its first file leaves no folder
            summary = fit(None if resume is not None and epochs is None else cfg, out, device=device,
                          resume=resume is not None, console=console, plots=plots)
    except KeyboardInterrupt as e:  # more to say than the boundary's "interrupted": what was saved, how to go on
        err.print(_interrupted_summary(out), markup=False, highlight=False)
        raise typer.Exit(interrupt_exit(e)) from None
    if summary.get("best_epoch") is not None and int(os.environ.get("RANK", "0")) == 0:
        keys = ("epochs", "best_epoch", "best_val_acc", "best_val_loss", "probe_val_acc", "out")
        print(json.dumps({**{k: summary[k] for k in keys},
                          "temperature": (summary.get("calibration") or {}).get("temperature")}))


def _interrupted_summary(out: Path) -> str:
    """What a Ctrl-C leaves: the last complete epoch (last.pth) and the best one (metrics.jsonl)."""
    rows = []
    try:
        for line in (out / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
            rows.append(json.loads(line))
    except (OSError, ValueError):
        pass
    try:
        from catdog.train.checkpoint import load_checkpoint

        done = int(load_checkpoint(out / "last.pth").epoch)
    except CatdogError:
        done = 0
    rows = [r for r in rows if r.get("epoch", 1 << 30) <= done]  # a line past last.pth is redone on resume
    if not rows:
        return f"interrupted before the first epoch completed; nothing to resume in {out}"
    best = max(rows, key=lambda r: (r.get("val_acc", 0), -r.get("val_loss", 0)))
    return (f"interrupted; epoch {done} was the last complete one (best val acc "
            f"{best['val_acc']:.4f} at epoch {best['epoch']}), saved in {out}; continue with --resume {out}")


app.callback(invoke_without_command=True)(train)
app.command("train", help="Train a classifier (same as calling catdog-train without a command).")(train)
app.command("probe", help="The linear-probe baseline: frozen pretrained backbone + logistic regression "
                          "(L-BFGS, L2 chosen on validation), saved as an ordinary checkpoint.")(train)
app.command("cv", help="k-fold cross-validation of a recipe on --data (--folds K): mean \u00b1 std val "
                       "accuracy, OUT/cv.json.")(train)


@app.command()
@cli_boundary
def prepare(
    src: Path = typer.Argument(..., help="Flat folder (cat.1.jpg, dog.1.jpg) or class folders."),
    dst: Path = typer.Argument(..., help="Output root: DST/<class>/<file>."),
    move: bool = typer.Option(False, help="Move the files instead of copying them."),
    resize: Optional[int] = typer.Option(None, help="Write JPEG copies with this shorter side (e.g. 256)."),
) -> None:
    """Lay a dataset out as class folders (optionally a resized cache for fast training)."""
    from catdog.train.prepare import prepare as run

    rep = run(src, dst, move=move, resize=resize, console=err)
    print(f"{dst}: {rep.written} written, {rep.existing} already there, {len(rep.bad)} unreadable")
    for m in rep.bad:
        err.print(f"  skipped: {m}", markup=False, highlight=False)
    if rep.bad:
        raise typer.Exit(1)


@app.command()
@cli_boundary
def stats(
    root: Path = typer.Argument(..., help="Dataset folder (either layout)."),
    short: int = typer.Option(STATS_SHORT, help="Resize each image's shorter side to this first (speed)."),
) -> None:
    """Per-channel mean/std (RGB, 0-1) of a dataset, as JSON."""
    from catdog.train.prepare import channel_stats

    s = channel_stats(root, short, console=err)
    print(json.dumps({k: s[k] for k in ("mean", "std", "channel_order", "images")}))
    for m in s["skipped"]:
        err.print(f"  skipped: {m}", markup=False, highlight=False)


@app.command()
@cli_boundary
def evaluate(
    checkpoint: Path = typer.Argument(..., help="best.pth / last.pth."),
    data: List[Path] = typer.Argument(..., help="Labelled folders (either layout): held-out test sets, other sources."),
    batch_size: int = typer.Option(D.batch_size),
    workers: int = typer.Option(D.workers),
    device: str = typer.Option("auto"),
) -> None:
    """Accuracy (95% Wilson interval, n) and calibration error of a checkpoint on each labelled folder."""
    from catdog.train.evaluate import evaluate_checkpoint

    res = evaluate_checkpoint(checkpoint, data, batch_size=batch_size, workers=workers, device=device, console=err)
    for folder, r in res["sets"].items():
        ece = f", ECE {100 * r['ece']:.2f}%" if "ece" in r else ""
        err.print(f"{folder}: {r['accuracy_text']}{ece}", markup=False, highlight=False)
    print(json.dumps(res))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
