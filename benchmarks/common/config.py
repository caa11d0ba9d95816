"""What a benchmark run is asked: BenchConfig (catdog-bench run), LoopConfig (how each artifact is
timed) and ScaleConfig (catdog-bench scale). Their defaults are the CLI's: benchmarks/cli.py reads
them from here, so each is written once. What a run gives (the report and its rows) is schema.py's.
Imports nothing heavy: `catdog-bench --help` reads it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

SECTION_NAMES = ("accuracy", "coldstart", "overhead", "folder", "large", "pipeline")  # in report order
REPORTS = Path("reports")  # the folder that holds the report folders
EVERY_PROVIDER = "all"  # --providers' default: every available one (artifacts.resolve_providers)

Log = Callable[[str], None]
Progress = Callable[[str, int, int | None], None]  # (description, advance, new total or None)


@dataclass(frozen=True)
class LoopConfig:
    warmup: int = 5
    iters: int | None = 50  # timed runs per runner; None -> run for `seconds`
    seconds: float | None = None  # timed seconds per runner
    block: int = 5  # runs per runner before switching to the next one

    def __post_init__(self) -> None:
        if (self.iters is None) == (self.seconds is None):
            raise ValueError("give exactly one of iters or seconds")
        if self.warmup < 0 or self.block < 1 or (self.iters is not None and self.iters < 1):
            raise ValueError("warmup >= 0, block >= 1, iters >= 1")
        if self.seconds is not None and self.seconds <= 0:
            raise ValueError("seconds must be > 0")


@dataclass(frozen=True)
class BenchConfig:
    models: tuple[Path, ...]
    out_dir: Path
    name: str
    providers: tuple[str, ...]
    batches: tuple[int, ...] = (1, 8, 32)
    threads: tuple[int | None, ...] = (None,)
    loop: LoopConfig = LoopConfig(warmup=10)  # catdog-bench run: 10 warm-up runs per artifact before timing
    data: Path | None = None
    video: Path | None = None
    torch_ckpt: Path | None = None
    accuracy_limit: int | None = 200  # images for accuracy/agreement (None: all)
    coldstart_runs: int = 5
    large_photos: int = 0  # ~12 MP copies of --data photos for the reduced-vs-full decode section (0: none)
    peak: bool = True
    command: str = "catdog-bench run"
    sections: tuple[str, ...] = SECTION_NAMES  # which optional sections may run (each also needs its input)
    device_id: int = 0  # the GPU every CUDA / TensorRT / torch CUDA row runs on
    tf32: bool = True  # TF32 for fp32 math on every GPU row alike (TensorRT's fp32 uses it, with no switch)

    @property
    def first_threads(self) -> int | None:
        """The thread count of the single-stream sections: the first one asked for (None: default)."""
        return next((t for t in self.threads if t), None)


@dataclass(frozen=True)
class ScaleConfig:
    inputs: str  # what catdog-runtime takes as SOURCE with --ray: folder, glob, list file, URI
    out_dir: Path
    name: str
    model: Path | None = None  # None: the shipped CPU model, as catdog-runtime picks it
    actors: tuple[int, ...] = (1, 2)
    threads: int | None = None  # onnxruntime threads per actor (None: the --ray default)
    rounds: int = 2
    command: str = "catdog-bench scale"
