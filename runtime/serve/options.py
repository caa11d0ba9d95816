"""What --serve is told: ServeOptions, the few of a run's options the server reads. No defaults
here: run.py fills every field from RunOptions (runtime/options.py), where each default is written
once. Imports nothing of the project."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ServeOptions:
    address: str  # --serve [HOST:]PORT, as given
    token: str | None
    token_file: Path | None
    no_auth: bool
    allow_host: tuple[str, ...]  # --allow-host NAME, repeatable
    max_viewers: int
    stream_fps: float
    max_body_mb: float
    request_timeout: float
    idle_timeout: float
    batch_wait_ms: float
    cors: str | None
