"""What each catdog-train command is told, one frozen dataclass per command. The CLI reads its
defaults from these (and the recipe's from TrainConfig), and so do the library functions behind
each command, so every default is written once. Imports neither torch nor typer: `catdog-train
--help` reads them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from catdog.train.recipe import TrainConfig

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
