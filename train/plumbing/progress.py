"""Rich progress bars for long work (epochs, prepare, stats). No console -> no bar (other DDP ranks,
quiet runs); the work is the same either way."""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


@contextlib.contextmanager
def bar(console: Console | None, description: str, total: int) -> Iterator[Callable[[int, dict], None]]:
    """Yield tick(done, stats): sets the bar to `done` of `total` and shows the stats (loss, acc, img/s)."""
    if console is None:
        yield lambda done, stats=None: None
        return
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn(), TextColumn("{task.fields[stats]}")]
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(description, total=total, stats="")

        def tick(done: int, stats: dict | None = None) -> None:
            text = "  ".join(f"{k} {v:.3f}" if isinstance(v, float) and k != "img/s" else f"{k} {v:.1f}"
                             for k, v in (stats or {}).items())
            progress.update(task, completed=done, stats=text)

        yield tick
