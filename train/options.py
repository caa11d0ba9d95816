"""What each catdog-train command is told, one frozen dataclass per command. The CLI reads its
defaults from these (and the recipe's from TrainConfig), and so do the library functions behind
each command, so every default is written once. TrainFlags is the command line train, probe and cv
share: each field carries its flag, help and range in its metadata (the runtime's opt()) and the
three typer commands are generated from it (train/cli.py). Imports neither torch nor typer:
`catdog-train --help` reads them."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from catdog.runtime.options import opt
from catdog.train.recipe import AMP_MODES, AUGMENTS, HEADS, OPTIMIZERS, SCHEDULERS, TrainConfig

DEVICE = "auto"  # CUDA when present, else the CPU (recipe.resolve_device)


@dataclass(frozen=True)
class TrainOptions:
    """catdog-train [train], probe and cv: the recipe (TrainConfig, stored in every checkpoint) and
    how this one command runs it (not stored). One set for the three: their --help lists the same."""

    recipe: TrainConfig = field(default_factory=TrainConfig)
    given: frozenset[str] = frozenset()  # recipe fields the command line set: --resume keeps or refuses each
    out: Path | None = None
    resume: Path | None = None
    folds: int = 5  # cv only
    device: str = DEVICE
    list_archs: bool = False
    quiet: bool = False
    plots: bool = True
    preset: str | None = None  # the preset (train/presets.py) the recipe started from; flags given override it

    @property
    def run_dir(self) -> Path | None:
        """The folder the run writes: --resume's, else --out."""
        return self.resume if self.resume is not None else self.out


@dataclass(frozen=True)
class EvaluateOptions:
    """catdog-train evaluate: how the checkpoint is run over each folder."""

    batch_size: int = TrainConfig.batch_size
    workers: int = TrainConfig.workers
    device: str = DEVICE


@dataclass(frozen=True)
class PrepareOptions:
    """catdog-train prepare: copy (or move) the files, or write a resized JPEG cache."""

    move: bool = False
    resize: int | None = None  # shorter side of the cache's JPEGs; None: the files as they are


@dataclass(frozen=True)
class StatsOptions:
    """catdog-train stats."""

    short: int = 128  # shorter side the images are shrunk to before channel statistics (speed)


@dataclass(frozen=True)
class BenchOptions:
    """catdog-train bench: the recipe's data, arch, batch size, workers, size and AMP, timed per phase."""

    recipe: TrainConfig = field(default_factory=TrainConfig)
    seconds: float = 20.0  # measuring time per phase
    device: str = DEVICE


D, T = TrainConfig, TrainOptions  # every flag's default is theirs (None: decided once the run knows more)


@dataclass(frozen=True)
class TrainFlags:
    """The command line of catdog-train [train], probe and cv, in --help order. A field named as a
    TrainConfig field is that recipe field (a path becomes the recipe's str); the rest are
    TrainOptions' (cli.train_options builds both). No help: typer shows the default alone."""

    preset: str | None = field(default=T.preset, metadata=opt(
        ("--preset",), "Start from a preset (catdog-train presets lists them); every flag given here overrides it."))
    data: str | None = field(default=None, metadata=opt(  # None: TrainConfig.data
        ("--data",), "Training images: flat (cat.1.jpg) or one folder per class; or cifar10:PATH, cifar100:PATH, "
        "cifar100-coarse:PATH (a CIFAR archive or its folder, extracted once into a cache)."))
    val: Path | None = field(default=None, metadata=opt(
        ("--val",), "Validation folder; default: a seeded --val-fraction of --data."))
    arch: str = field(default=D.arch, metadata=opt(("--arch",), "Model name (see --list-archs)."))
    pretrained: bool = field(default=D.pretrained, metadata=opt(
        ("--pretrained/--no-pretrained",), "Start from ImageNet weights."))
    weights: Path | None = field(default=None, metadata=opt(
        ("--weights",), "Start from a local state_dict / checkpoint."))
    arch_kwargs: tuple[str, ...] = field(default=(), metadata=opt(  # KEY=VALUE each, parsed into a dict
        ("--arch-kw",), "Model option KEY=VALUE (e.g. mode=frozen for resnet18).", repeatable=True))
    epochs: int | None = field(default=None, metadata=opt(  # None: TrainConfig's, or a resumed run's own
        ("--epochs",), f"Epochs to train (default {D.epochs}; with --resume: the run's own)."))
    out: Path | None = field(default=T.out, metadata=opt(
        ("--out",), "Run folder (best.pth, last.pth, metrics.jsonl, plots)."))
    resume: Path | None = field(default=T.resume, metadata=opt(
        ("--resume",), "Continue the run in this folder after its last complete epoch."))
    batch_size: int = field(default=D.batch_size, metadata=opt(("--batch-size",), ""))
    workers: int | None = field(default=None, metadata=opt(  # None: datasets.default_workers()
        ("--workers",), "Data loader processes (default: CPU cores, at most 8)."))
    optimizer: str = field(default=D.optimizer, metadata=opt(
        ("--optimizer",), f"{' | '.join(OPTIMIZERS)} (sgd with --momentum)."))
    lr: float = field(default=D.lr, metadata=opt(("--lr",), ""))
    momentum: float = field(default=D.momentum, metadata=opt(("--momentum",), ""))
    weight_decay: float = field(default=D.weight_decay, metadata=opt(("--weight-decay",), ""))
    scheduler: str = field(default=D.scheduler, metadata=opt(("--scheduler",), " | ".join(SCHEDULERS) + "."))
    step_size: int = field(default=D.step_size, metadata=opt(("--step-size",), "StepLR period in epochs."))
    gamma: float = field(default=D.gamma, metadata=opt(("--gamma",), "StepLR factor."))
    label_smoothing: float = field(default=D.label_smoothing, metadata=opt(("--label-smoothing",), ""))
    accum_steps: int = field(default=D.accum_steps, metadata=opt(("--accum",), "Gradient accumulation steps."))
    amp: str = field(default=D.amp, metadata=opt(
        ("--amp",), f"{' | '.join(AMP_MODES)} (CUDA only; auto = bf16/fp16 on CUDA, off on CPU)."))
    patience: int = field(default=D.patience, metadata=opt(
        ("--patience",), "Early stopping patience in epochs (0 = off)."))
    seed: int = field(default=D.seed, metadata=opt(("--seed",), ""))
    val_fraction: float = field(default=D.val_fraction, metadata=opt(("--val-fraction",), ""))
    size: int | None = field(default=D.size, metadata=opt(("--size",), "Override the arch's input size."))
    head: str = field(default=D.head, metadata=opt(
        ("--head",), f"{' | '.join(HEADS)}: a fresh head, or the linear probe's (LP-FT)."))
    probe: bool = field(default=D.probe, metadata=opt(
        ("--probe/--no-probe",), "Fit the linear probe first and report it beside every epoch."))
    ema: float = field(default=D.ema, metadata=opt(
        ("--ema",), "EMA decay of the weights, e.g. 0.99 (0 = off); the EMA is what is saved."))
    mixup: float = field(default=D.mixup, metadata=opt(("--mixup",), "MixUp alpha, e.g. 0.2 (0 = off)."))
    cutmix: float = field(default=D.cutmix, metadata=opt(("--cutmix",), "CutMix alpha, e.g. 1.0 (0 = off)."))
    augment: str = field(default=D.augment, metadata=opt(("--augment",), " | ".join(AUGMENTS) + "."))
    freeze_bn: bool = field(default=D.freeze_bn, metadata=opt(
        ("--freeze-bn/--no-freeze-bn",), "BatchNorm keeps its pretrained statistics while training."))
    folds: int = field(default=T.folds, metadata=opt(("--folds",), "cv only: number of stratified folds.", min=2))
    device: str = field(default=T.device, metadata=opt(("--device",), "auto | cpu | cuda | cuda:N."))
    list_archs: bool = field(default=T.list_archs, metadata=opt(
        ("--list-archs/--no-list-archs",), "List the model names and exit."))
    quiet: bool = field(default=T.quiet, metadata=opt(("--quiet/--no-quiet",), "No progress bars."))
    plots: bool = field(default=T.plots, metadata=opt(
        ("--plots/--no-plots",), "Write curves/confusion/ROC PNGs at the end."))


RECIPE_FLAGS = frozenset(f.name for f in fields(TrainFlags)) & frozenset(f.name for f in fields(TrainConfig))
RUN_FLAGS = tuple(f.name for f in fields(TrainFlags) if f.name not in RECIPE_FLAGS)  # TrainOptions' own
