"""catdog-train, the entry module: it parses the command line and calls the library; nothing imports
it. `catdog-train --data DIR --arch NAME --epochs N --out RUN_DIR` trains (the app's default action,
also `catdog-train train ...`); probe, cv, presets, prepare, stats, evaluate and bench are subcommands.
`--preset NAME` starts train, probe and cv from a preset (train/presets.py); a flag given on the
command line (click's parameter source says which) wins over the preset.
Train, probe and cv share one set of options, declared once (_recipe_options) and parsed into
TrainOptions; every default is read from the options' dataclasses (options.py) and TrainConfig
(recipe.py). Every command goes through the one CLI boundary: errors print one line to stderr and
exit non-zero; --debug shows the traceback."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any, Callable, List, Optional

import typer
from click.core import ParameterSource
from rich.console import Console

from catdog.runtime.spine.boundary import cli_boundary, interrupt_exit
from catdog.runtime.spine.errors import ConfigError
from catdog.train import run
from catdog.train.options import BenchOptions, EvaluateOptions, PrepareOptions, StatsOptions, TrainOptions
from catdog.train.recipe import AMP_MODES, AUGMENTS, HEADS, OPTIMIZERS, SCHEDULERS, TrainConfig

app = typer.Typer(add_completion=False, no_args_is_help=False, pretty_exceptions_enable=False,
                  help="Train an image classifier; prepare and inspect datasets.")
err = Console(stderr=True, soft_wrap=True)
D, T = TrainConfig, TrainOptions  # every option's default is theirs
RENAMED = {"accum": "accum_steps", "arch_kw": "arch_kwargs"}  # CLI name -> TrainConfig field, where they differ
PATHS = ("val", "weights")  # paths on the command line, str in the recipe (it is stored as JSON)


def _recipe_options(
    ctx: typer.Context,
    preset: Optional[str] = typer.Option(None, help="Start from a preset (catdog-train presets lists them); "
                                                    "every flag given here overrides it."),
    data: Optional[str] = typer.Option(None, help="Training images: flat (cat.1.jpg) or one folder per class; or "
                                                  "cifar10:PATH, cifar100:PATH, cifar100-coarse:PATH (a CIFAR "
                                                  "archive or its folder, extracted once into a cache)."),
    val: Optional[Path] = typer.Option(None, help="Validation folder; default: a seeded --val-fraction of --data."),
    arch: str = typer.Option(D.arch, help="Model name (see --list-archs)."),
    pretrained: bool = typer.Option(D.pretrained, help="Start from ImageNet weights."),
    weights: Optional[Path] = typer.Option(None, help="Start from a local state_dict / checkpoint."),
    arch_kw: List[str] = typer.Option([], help="Model option KEY=VALUE (e.g. mode=frozen for resnet18)."),
    epochs: Optional[int] = typer.Option(None,
                                         help=f"Epochs to train (default {D.epochs}; with --resume: the run's own)."),
    out: Optional[Path] = typer.Option(T.out, help="Run folder (best.pth, last.pth, metrics.jsonl, plots)."),
    resume: Optional[Path] = typer.Option(T.resume,
                                          help="Continue the run in this folder after its last complete epoch."),
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
    folds: int = typer.Option(T.folds, min=2, help="cv only: number of stratified folds."),
    device: str = typer.Option(T.device, help="auto | cpu | cuda | cuda:N."),
    list_archs: bool = typer.Option(T.list_archs, help="List the model names and exit."),
    quiet: bool = typer.Option(T.quiet, help="No progress bars."),
    plots: bool = typer.Option(T.plots, help="Write curves/confusion/ROC PNGs at the end."),
) -> None:
    """The options train, probe and cv take (each --help lists them all); never called."""


RUN_FIELDS = ("out", "resume", "folds", "device", "list_archs", "quiet", "plots")  # TrainOptions' own
NOT_RECIPE = (*RUN_FIELDS, "preset")


def _recipe_command(fn: Callable[..., None]) -> Callable[..., None]:
    """`fn(ctx, **given)` with _recipe_options' signature (evaluated: typer reads the types) and the boundary."""
    fn.__signature__ = inspect.signature(_recipe_options, eval_str=True)  # type: ignore[attr-defined]
    return cli_boundary(fn)


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


def _options(ctx: typer.Context, given: dict[str, Any],
             adjust: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> TrainOptions:
    """The command line as TrainOptions; `adjust` sets the recipe fields a command decides (probe's)."""
    recipe = {RENAMED.get(k, k): v for k, v in given.items() if k not in NOT_RECIPE}
    for k in PATHS:
        recipe[k] = None if recipe[k] is None else str(recipe[k])
    if recipe["data"]:  # a folder as a path (as before), cifar10:PATH as typed (train/data/cifar_cache.py reads it)
        from catdog.train.data.cifar import parse_source

        recipe["data"] = recipe["data"] if parse_source(recipe["data"]) else str(Path(recipe["data"]))
    recipe["data"] = recipe["data"] or D.data
    recipe["arch_kwargs"] = _parse_kw(recipe["arch_kwargs"])
    recipe["epochs"] = D.epochs if recipe["epochs"] is None else recipe["epochs"]
    if recipe["workers"] is None:
        from catdog.train.data.datasets import default_workers

        recipe["workers"] = default_workers()
    typed = frozenset(RENAMED.get(k, k) for k in given
                      if k not in NOT_RECIPE and ctx.get_parameter_source(k) is ParameterSource.COMMANDLINE)
    if given["preset"] is not None:
        if given["resume"] is not None:
            raise ConfigError("--preset starts a new run; --resume RUN_DIR continues that run's own recipe: "
                              "leave --preset out")
        from catdog.train.presets import apply_preset

        recipe = apply_preset(given["preset"], recipe, typed)
    return TrainOptions(TrainConfig(**(adjust(recipe) if adjust else recipe)), typed,
                        **{k: given[k] for k in RUN_FIELDS}, preset=given["preset"])


def _listed(given: dict[str, Any]) -> bool:
    """--list-archs: print the model names; -> whether it was asked (then nothing else runs)."""
    if given["list_archs"]:
        from catdog.train.models import list_models

        print("\n".join(list_models()))
    return given["list_archs"]


def _train_or_probe(command: Callable[[TrainOptions], dict[str, Any]], opts: TrainOptions) -> None:
    """Run train or probe; print its summary line, or on Ctrl-C/SIGTERM what was saved and how to go on."""
    try:
        summary = command(opts)
    except KeyboardInterrupt as e:  # more to say than the boundary's "interrupted"
        err.print(run.interrupted_summary(opts.run_dir), markup=False, highlight=False)
        raise typer.Exit(interrupt_exit(e)) from None
    line = run.summary_line(summary)
    if line is not None:
        print(line)


@_recipe_command
def default(ctx: typer.Context, **given: Any) -> None:
    """Train a classifier (the default command)."""
    if ctx.invoked_subcommand is None and not _listed(given):
        _train_or_probe(run.train, _options(ctx, given))


@_recipe_command
def train(ctx: typer.Context, **given: Any) -> None:
    """Train a classifier."""
    if not _listed(given):
        _train_or_probe(run.train, _options(ctx, given))


@_recipe_command
def probe(ctx: typer.Context, **given: Any) -> None:
    """The linear-probe baseline."""
    if not _listed(given):
        _train_or_probe(run.probe, _options(ctx, given, run.as_probe))


@_recipe_command
def cv(ctx: typer.Context, **given: Any) -> None:
    """k-fold cross-validation."""
    if not _listed(given):
        opts = _options(ctx, given)
        said, line = run.cv_lines(run.cv(opts), opts.out)
        err.print(said, markup=False, highlight=False)
        print(line)


app.callback(invoke_without_command=True)(default)
app.command("train", help="Train a classifier (same as calling catdog-train without a command).")(train)
app.command("probe", help="The linear-probe baseline: frozen pretrained backbone + logistic regression "
                          "(L-BFGS, L2 chosen on validation), saved as an ordinary checkpoint.")(probe)
app.command("cv", help="k-fold cross-validation of a recipe on --data (--folds K): mean \u00b1 std val "
                       "accuracy, OUT/cv.json.")(cv)


@app.command()
@cli_boundary
def presets(
    as_json: bool = typer.Option(False, "--json", help="One JSON list (every field and note) instead of the table."),
) -> None:
    """The presets --preset NAME starts from: the seeds' exercises and the shipped model's recipe, as data."""
    from catdog.train.presets import list_presets, listing, table

    print(json.dumps(listing(), indent=2) if as_json else table(list_presets()))


@app.command()
@cli_boundary
def prepare(
    src: Path = typer.Argument(..., help="Flat folder (cat.1.jpg, dog.1.jpg) or class folders; or cifar10:PATH, "
                                         "cifar100:PATH, cifar100-coarse:PATH (a CIFAR archive or its folder)."),
    dst: Path = typer.Argument(..., help="Output root: DST/<class>/<file> (CIFAR: DST/train/<class>/, DST/test/...)."),
    move: bool = typer.Option(PrepareOptions.move, help="Move the files instead of copying them."),
    resize: Optional[int] = typer.Option(PrepareOptions.resize,
                                         help="Write JPEG copies with this shorter side (e.g. 256)."),
) -> None:
    """Lay a dataset out as class folders (optionally a resized cache for fast training); SRC cifar10:PATH
    (cifar100:, cifar100-coarse:) writes a CIFAR archive or folder as PNGs in DST/train/<class>, DST/test/<class>."""
    from catdog.train.data.prepare import prepare as lay_out

    rep = lay_out(src, dst, move=move, resize=resize, console=err)
    print(f"{dst}: {rep.written} written, {rep.existing} already there, {len(rep.bad)} unreadable")
    for m in rep.bad:
        err.print(f"  skipped: {m}", markup=False, highlight=False)
    if rep.bad:
        raise typer.Exit(1)


@app.command()
@cli_boundary
def stats(
    root: Path = typer.Argument(..., help="Dataset folder (either layout)."),
    short: int = typer.Option(StatsOptions.short, help="Resize each image's shorter side to this first (speed)."),
) -> None:
    """Per-channel mean/std (RGB, 0-1) of a dataset, as JSON."""
    from catdog.train.data.prepare import channel_stats

    s = channel_stats(root, short, console=err)
    print(json.dumps({k: s[k] for k in ("mean", "std", "channel_order", "images")}))
    for m in s["skipped"]:
        err.print(f"  skipped: {m}", markup=False, highlight=False)


@app.command()
@cli_boundary
def evaluate(
    checkpoint: Path = typer.Argument(..., help="best.pth / last.pth."),
    data: List[Path] = typer.Argument(..., help="Labelled folders (either layout): held-out test sets, other sources."),
    batch_size: int = typer.Option(EvaluateOptions.batch_size),
    workers: int = typer.Option(EvaluateOptions.workers),
    device: str = typer.Option(EvaluateOptions.device),
) -> None:
    """Accuracy (95% Wilson interval, n) and calibration error of a checkpoint on each labelled folder."""
    from catdog.train.loop.evaluate import evaluate_checkpoint

    res = evaluate_checkpoint(checkpoint, data, batch_size=batch_size, workers=workers, device=device, console=err)
    for folder, r in res["sets"].items():
        ece = f", ECE {100 * r['ece']:.2f}%" if "ece" in r else ""
        err.print(f"{folder}: {r['accuracy_text']}{ece}", markup=False, highlight=False)
    print(json.dumps(res))


@app.command()
@cli_boundary
def bench(
    data: str = typer.Option(..., help="Image folder, ideally a prepare --resize 256 cache."),
    arch: str = typer.Option(D.arch),
    batch_size: int = typer.Option(D.batch_size),
    workers: int = typer.Option(D.workers),
    size: Optional[int] = typer.Option(D.size),
    amp: str = typer.Option(D.amp),
    device: str = typer.Option(BenchOptions.device),
    seconds: float = typer.Option(BenchOptions.seconds, help="Measuring time per phase."),
) -> None:
    """Images/s of the training data loader, the model step, and both together."""
    from catdog.train.studies.bench import bench as measure
    from catdog.train.studies.bench import bench_lines

    recipe = TrainConfig(arch=arch, data=data, batch_size=batch_size, workers=workers, size=size, amp=amp)
    for line in bench_lines(measure(BenchOptions(recipe, seconds, device))):
        print(line)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
