"""What a benchmark run gives: the Report and its rows (what it is asked is config.py's).

The records are typed; `to_dict()` is report.json's layout (schema catdog-bench/1), keys in field
order, so a report written today reads like one written before the records existed. Everything that
reads a report (report.md, the charts, the summary lines, `catdog-bench compare`) reads that JSON
form, which is also what old report.json files load as."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

SCHEMA = "catdog-bench/1"


def _plain(v: Any) -> Any:
    if isinstance(v, Record):
        return v.to_dict()
    if isinstance(v, (tuple, list)):
        return [_plain(x) for x in v]
    return v


class Record:
    """Base of the report's rows: to_dict() in field order; fields named in OPTIONAL are left out
    when None (they were absent from the dict layout, not null)."""

    OPTIONAL: ClassVar[frozenset[str]] = frozenset()

    def to_dict(self) -> dict[str, Any]:
        out = {}
        for f in fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            if not (v is None and f.name in self.OPTIONAL):
                out[f.name] = _plain(v)
        return out


@dataclass(frozen=True)
class ArtifactRow(Record):
    name: str
    path: str
    kind: str
    precision: str
    input_format: str
    input_size: int
    arch: str | None
    classes: tuple[str, ...] | None
    size_bytes: int
    size_mb: float
    sha256: str
    params: int | None
    gflops: float | None


@dataclass(frozen=True)
class LatencyStats(Record):
    n: int
    batch: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    std_ms: float
    min_ms: float
    max_ms: float
    throughput_ips: float
    throughput_p50_ips: float


@dataclass(frozen=True)
class LatencyRow(Record):
    """One (artifact, provider, threads, batch) cell: measured ("ok", with stats) or not, with a note."""

    provider: str
    threads: int | None
    artifact: str
    batch: int
    status: str  # ok | missing | n/a | skipped
    note: str | None = None
    create_s: float | None = None
    first_run_ms: float | None = None
    stats: LatencyStats | None = None
    achieved_gflops: float | None = None
    pct_peak: float | None = None

    def to_dict(self) -> dict[str, Any]:
        base = {"provider": self.provider, "threads": self.threads, "artifact": self.artifact, "batch": self.batch,
                "status": self.status}
        if self.stats is None:
            return {**base, "note": self.note}
        stats = {k: v for k, v in self.stats.to_dict().items() if k != "batch"}
        return {**base, "create_s": self.create_s, "first_run_ms": self.first_run_ms, **stats,
                "achieved_gflops": self.achieved_gflops, "pct_peak": self.pct_peak}


@dataclass(frozen=True)
class Peak(Record):
    gflops: float | None
    method: str
    provider: str | None = None  # None: not measured (then threads is left out too)
    threads: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {"gflops": self.gflops, "method": self.method}
        return d if self.provider is None else {**d, "provider": self.provider, "threads": self.threads}


@dataclass(frozen=True)
class Ratio(Record):
    what: str
    provider: str
    threads: int | None
    batch: int
    candidate: str
    reference: str
    speedup: float


@dataclass(frozen=True)
class RunSettings(Record):
    """The report's "config" block: what was measured and how."""

    providers: tuple[str, ...]
    batches: tuple[int, ...]
    threads: tuple[int | None, ...]
    warmup: int
    iters: int | None
    seconds: float | None
    block: int
    input: str
    spec: dict[str, Any]


@dataclass(frozen=True)
class AccuracyRow(Record):
    OPTIONAL = frozenset({"top1_agreement", "max_abs_logit", "max_abs_prob", "accuracy_drop"})

    artifact: str
    n: int
    accuracy: float
    top1_agreement: float | None = None  # these four: from export's parity code, when importable
    max_abs_logit: float | None = None
    max_abs_prob: float | None = None
    accuracy_drop: float | None = None
    accuracy_ci95: str | None = None  # "99.25% (97.8–99.7, n=400)": the figure with its Wilson interval


@dataclass(frozen=True)
class ColdstartRow(Record):
    pipeline: str
    runs: int
    first_label_s: float
    first_label_min_s: float
    first_label_max_s: float
    exit_s: float
    peak_rss_mb: float | None
    output: str
    vs_bare_time: float | None = None  # time to the first label
    vs_bare_rss: float | None = None
    vs_bare_exit: float | None = None  # wall time to exit


@dataclass(frozen=True)
class OverheadRow(Record):
    path: str
    p50_ms: float
    overhead_ms: float
    ratio_vs_bare: float


@dataclass(frozen=True)
class FolderRow(Record):
    pipeline: str
    images: int
    median_s: float
    images_per_s: float
    vs_bare: float
    vs_torch: float | None
    label_agreement_vs_bare: float | None


@dataclass(frozen=True)
class PipelineRow(Record):
    mode: str
    frames: int
    decode_ms: float
    preprocess_ms: float
    infer_ms: float
    post_ms: float
    fps: float
    wall_s: float
    speedup_vs_sync: float | None = None


@dataclass(frozen=True)
class ScaleRow(Record):
    """catdog-bench scale: one way to run the same inputs (single process, or Ray with N actors)."""

    pipeline: str
    actors: int | None
    threads: int | None  # onnxruntime threads per actor
    images: int
    rounds: int
    startup_s: float | None
    first_result_s: float | None
    steady_ips: float | None
    overall_ips: float | None
    vs_single: float | None
    efficiency: float | None


@dataclass(frozen=True)
class Section(Record):
    """An optional section: its rows and what they mean, or the one-line error that stopped it."""

    about: str = ""
    rows: tuple[Record, ...] = ()
    reference: str | None = None  # accuracy: the artifact agreement is measured against
    image: str | None = None  # cold start: the photo every process classified
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.error is not None:
            return {"error": self.error, "rows": []}
        d: dict[str, Any] = {"about": self.about}
        for key in ("reference", "image"):
            if getattr(self, key) is not None:
                d[key] = getattr(self, key)
        return {**d, "rows": [r.to_dict() for r in self.rows]}


@dataclass
class Report:
    """A run's results. Mutable while the run fills it (sections, notes, charts), then written."""

    name: str
    created: str
    command: str
    env: dict[str, Any]  # facts read from the system (env.REQUIRED_KEYS), None where unknown
    config: RunSettings
    artifacts: list[ArtifactRow]
    latency: list[LatencyRow]
    peak: list[Peak]
    load_average: tuple[float | None, float | None]  # (before, after) the measurements
    ratios: list[Ratio]
    notes: list[str] = field(default_factory=list)
    sections: dict[str, Section] = field(default_factory=dict)  # in the order they ran
    charts: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        before, after = self.load_average
        return {
            "schema": SCHEMA, "name": self.name, "created": self.created, "command": self.command, "env": self.env,
            "config": self.config.to_dict(), "artifacts": _plain(self.artifacts), "latency": _plain(self.latency),
            "peak": _plain(self.peak), "load_average": {"before": before, "after": after},
            "ratios": _plain(self.ratios), "notes": list(self.notes),
            **{k: s.to_dict() for k, s in self.sections.items()}, "charts": list(self.charts),
        }
