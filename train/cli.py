"""catdog-train, the entry module: it parses the command line and calls the library; nothing imports
it. `catdog-train --data DIR --arch NAME --epochs N --out RUN_DIR` trains (the app's default action,
also `catdog-train train ...`); probe, cv, presets, prepare, stats, evaluate and bench are subcommands.
`--preset NAME` starts train, probe and cv from a preset (train/presets.py); a flag given on the
command line (click's parameter source says which) wins over the preset.
Train, probe and cv share one set of options, TrainFlags (options.py), whose fields carry each
flag, help, range and default: the three commands' signatures are generated from it, and the
command line is parsed into TrainOptions. Every command goes through the one CLI boundary: errors
print one line to stderr and exit non-zero; --debug shows the traceback."""

from __future__ import annotations

import inspect
import json
import typing
from dataclasses import fields
from pathlib import Path
from typing import Any, Callable, List, Optional

import typer
from click.core import ParameterSource
from rich.console import Console

from catdog.runtime.options import option_of
from catdog.runtime.spine.boundary import cli_boundary, interrupt_exit
from catdog.runtime.spine.errors import ConfigError
from catdog.train import run
from catdog.train.options import (
    RECIPE_FLAGS,
    RUN_FLAGS,
    BenchOptions,
    EvaluateOptions,
    PrepareOptions,
    StatsOptions,
    TrainFlags,
    TrainOptions,
)
from catdog.train.recipe import TrainConfig

app = typer.Typer(add_completion=False, no_args_is_help=False, pretty_exceptions_enable=False,
                  help="Train an image classifier; prepare and inspect datasets.")
err = Console(stderr=True, soft_wrap=True)


def _flag_signature() -> inspect.Signature:
    """typer's view of train, probe and cv: the context, then one option per TrainFlags field."""
    hints = typing.get_type_hints(TrainFlags)
    params = [inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)]
    for f in fields(TrainFlags):
        o, hint = option_of(f), hints[f.name]
        t = next((a for a in typing.get_args(hint) if a not in (type(None), Ellipsis)), hint)
        kind = list[t] if o.repeatable else t  # type: ignore[valid-type]
        params.append(inspect.Parameter(
            f.name, inspect.Parameter.KEYWORD_ONLY, annotation=t if t is bool else Optional[kind],
            default=typer.Option(f.default, *o.flags, help=o.help or None, min=o.min, max=o.max)))
    return inspect.Signature(params)


def _recipe_command(fn: Callable[..., None]) -> Callable[..., None]:
    """`fn(ctx, **given)` with TrainFlags' signature, and the boundary."""
    fn.__signature__ = _flag_signature()  # type: ignore[attr-defined]
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
    recipe = {k: str(v) if isinstance(v, Path) else v for k, v in given.items() if k in RECIPE_FLAGS}  # JSON
    if recipe["data"]:  # a folder as a path (as before), cifar10:PATH as typed (train/data/cifar_cache.py reads it)
        from catdog.train.data.cifar import parse_source

        recipe["data"] = recipe["data"] if parse_source(recipe["data"]) else str(Path(recipe["data"]))
    recipe["data"] = recipe["data"] or TrainConfig.data
    recipe["arch_kwargs"] = _parse_kw(recipe["arch_kwargs"])
    recipe["epochs"] = TrainConfig.epochs if recipe["epochs"] is None else recipe["epochs"]
    if recipe["workers"] is None:
        from catdog.train.data.datasets import default_workers

        recipe["workers"] = default_workers()
    typed = frozenset(k for k in RECIPE_FLAGS if ctx.get_parameter_source(k) is ParameterSource.COMMANDLINE)
    if given["preset"] is not None:
        if given["resume"] is not None:
            raise ConfigError("--preset starts a new run; --resume RUN_DIR continues that run's own recipe: "
                              "leave --preset out")
        from catdog.train.presets import apply_preset

        recipe = apply_preset(given["preset"], recipe, typed)
    recipe = adjust(recipe) if adjust else recipe
    return TrainOptions(TrainConfig(**recipe), typed, **{k: given[k] for k in RUN_FLAGS})


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
    arch: str = typer.Option(TrainConfig.arch),
    batch_size: int = typer.Option(TrainConfig.batch_size),
    workers: int = typer.Option(TrainConfig.workers),
    size: Optional[int] = typer.Option(TrainConfig.size),
    amp: str = typer.Option(TrainConfig.amp),
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
