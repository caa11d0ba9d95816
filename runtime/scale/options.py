"""What a --ray run is told: ScaleOptions, the few of a run's options the driver reads, checked
(run.scale_options refuses the flags that do not apply to a --ray run). No defaults here: run.py
fills every field from RunOptions (runtime/options.py), where each default is written once.
Imports the spine."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from catdog.runtime.spine.spec import SpecFlags


@dataclass(frozen=True)
class ScaleOptions:
    address: str  # --ray's value (scale.LOCAL: a new local Ray)
    source: str  # a folder, a glob, a list file (.txt) or a URI
    out: Path  # the folder of Parquet part files
    resume: bool
    recursive: bool
    model: Path | None
    provider: str  # as given: "auto" is cpu for the actors (driver.actor_provider)
    labels: Path | None
    spec: SpecFlags  # --size/--mean/--std/--bgr/--scale as given: read when the model loads
    batch: int
    threads: int | None  # per actor
    workers: int  # decode threads per actor
    actors: int | None  # None: as many as fit (driver.make_plan)
    gpus_per_actor: float
    device_id: int
    unsure_below: float | None
    full_decode: bool
