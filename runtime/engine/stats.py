"""Per-stage timing for the summary and the overlay: totals per stage plus a short recent window
(for a live per-stage ms readout that follows the present, not the whole run).

For live sources (cameras, streams, pipelines) the stages mean: `capture wait` the classifier
waiting for the camera's next frame; `decode` the capture thread's CPU time per frame (FFmpeg
decodes there; GStreamer in its own threads, not counted); `inference` the session run; `frame
age` from the frame's arrival in the capture thread to its label. `notes` says so in the summary."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

STAGES = ("capture wait", "decode", "preprocess", "inference", "postprocess")


@dataclass
class StageTimes:
    totals: dict[str, float] = field(default_factory=dict)  # seconds per stage
    counts: dict[str, int] = field(default_factory=dict)  # items per stage
    recent: dict[str, deque] = field(default_factory=dict)  # last per-item ms
    frame_ages: deque = field(default_factory=lambda: deque(maxlen=1000))
    started: float = field(default_factory=time.perf_counter)
    items: int = 0  # items that got a result
    failed: int = 0
    dropped: int = 0
    captured: int | None = None  # live sources: frames the capture thread read
    notes: dict[str, str] = field(default_factory=dict)  # stage -> what it measures, in the summary
    window: int = 30

    def add(self, stage: str, seconds: float, n: int = 1) -> None:
        """`seconds` spent on `n` items (a batch counts once in time, n times in items)."""
        self.totals[stage] = self.totals.get(stage, 0.0) + seconds
        self.counts[stage] = self.counts.get(stage, 0) + n
        r = self.recent.get(stage)
        if r is None:
            r = self.recent[stage] = deque(maxlen=self.window)
        r.append(1000.0 * seconds / max(n, 1))

    def mean_ms(self, stage: str) -> float:
        n = self.counts.get(stage, 0)
        return 1000.0 * self.totals.get(stage, 0.0) / n if n else 0.0

    def recent_ms(self, stage: str) -> float:
        r = self.recent.get(stage)
        return sum(r) / len(r) if r else 0.0

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def throughput(self) -> float:
        return self.items / self.elapsed if self.elapsed > 0 else 0.0

    def age_percentile_ms(self, q: float) -> float:
        """The q-quantile (0..1) of the recent frame ages, in ms (nearest rank); 0 without frames."""
        ages = sorted(self.frame_ages)
        return 1000.0 * ages[min(len(ages) - 1, int(q * len(ages)))] if ages else 0.0

    def summary_rows(self) -> list[tuple[str, str]]:
        rows = [(s, f"{self.mean_ms(s):.2f} ms/item" + (f" ({self.notes[s]})" if s in self.notes else ""))
                for s in STAGES if s in self.counts]
        if self.frame_ages:
            ages = sorted(self.frame_ages)
            note = f" ({self.notes['frame age']})" if "frame age" in self.notes else ""
            rows.append(("frame age", f"mean {1000 * sum(ages) / len(ages):.1f} ms, "
                                      f"p50 {self.age_percentile_ms(0.5):.1f} ms, "
                                      f"p99 {self.age_percentile_ms(0.99):.1f} ms, max {1000 * ages[-1]:.1f} ms{note}"))
        if self.captured is not None:
            rows.append(("frames", f"{self.captured} captured, {self.items} classified, {self.dropped} dropped"))
        rows += [
            ("items", f"{self.items} ok, {self.failed} failed" + (f", {self.dropped} dropped" if self.dropped else "")),
            ("throughput", f"{self.throughput():.1f} items/s over {self.elapsed:.2f} s"),
        ]
        return rows


class Timer:
    """`with Timer() as t: ...; t.s` - seconds, perf_counter based."""

    def __enter__(self) -> "Timer":
        self.t0 = time.perf_counter()
        self.s = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.s = time.perf_counter() - self.t0


def model_line(clf: Any) -> str:
    """The summary's `model` row: file, precision and the calibration temperature."""
    model = f"{clf.session.path.name} ({clf.metadata.precision})"
    if clf.temperature != 1.0:
        model += f", scores calibrated with temperature {clf.temperature:.3f}"
    return model


def summary_text(title: str, rows: list[tuple[str, str]]) -> str:
    """Plain aligned lines (importing rich only for this would cost ~0.1 s of cold start)."""
    width = max(len(k) for k, _ in rows)
    return "\n".join([f"-- {title}"] + [f"  {k:<{width}}  {v}" for k, v in rows])
