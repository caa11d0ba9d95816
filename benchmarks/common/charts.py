"""The PNG charts beside report.md: latency by artifact and provider, latency per image against
batch size, accuracy against latency. They read report.json's form (dicts), like report.md does;
matplotlib is imported when a chart is drawn (Agg backend: no display needed), and each file is
written atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from catdog.runtime.spine.fileio import atomic_path


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _text(name: str) -> str:
    """A file-derived name as chart text: a '$' would start matplotlib mathtext."""
    return name.replace("$", r"\$")


def _save(fig: Any, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    _plt().close(fig)
    return path


def _best_threads(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each (artifact, provider, batch): the row with the fastest p50 over thread counts."""
    best: dict[tuple, dict[str, Any]] = {}
    for r in rows:
        if r.get("status") != "ok":
            continue
        k = (r["artifact"], r["provider"], r["batch"])
        if k not in best or r["p50_ms"] < best[k]["p50_ms"]:
            best[k] = r
    return list(best.values())


def latency_bars(rows: list[dict[str, Any]], path: Path) -> Path | None:
    import numpy as np

    plt = _plt()
    rows = _best_threads(rows)
    if not rows:
        return None
    batch = min(r["batch"] for r in rows)
    rows = [r for r in rows if r["batch"] == batch]
    arts = list(dict.fromkeys(r["artifact"] for r in rows))
    provs = list(dict.fromkeys(r["provider"] for r in rows))
    p50 = {(r["artifact"], r["provider"]): r for r in rows}
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(arts) * len(provs)), 4))
    w = 0.8 / len(provs)
    x = np.arange(len(arts))
    for i, prov in enumerate(provs):
        vals = [p50[(a, prov)]["p50_ms"] if (a, prov) in p50 else 0 for a in arts]
        err = [[p50[(a, prov)]["p50_ms"] - p50[(a, prov)]["min_ms"] if (a, prov) in p50 else 0 for a in arts],
               [p50[(a, prov)]["p90_ms"] - p50[(a, prov)]["p50_ms"] if (a, prov) in p50 else 0 for a in arts]]
        ax.bar(x + i * w, vals, w, yerr=err, capsize=3, label=prov)
    ax.set_xticks(x + w * (len(provs) - 1) / 2, [_text(a) for a in arts], rotation=20)
    ax.set_ylabel(f"p50 latency, ms (batch {batch}; bars min..p90)")
    ax.set_title("Latency by artifact and provider (best thread count)")
    ax.legend()
    return _save(fig, path)


def latency_vs_batch(rows: list[dict[str, Any]], path: Path) -> Path | None:
    plt = _plt()
    rows = _best_threads(rows)
    series: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for r in rows:
        series.setdefault((r["artifact"], r["provider"]), []).append((r["batch"], r["p50_ms"] / r["batch"]))
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    for (art, prov), pts in sorted(series.items()):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=_text(f"{art} / {prov}"))
    ax.set_xscale("log", base=2)
    batches = sorted({b for pts in series.values() for b, _ in pts})
    ax.set_xticks(batches, [str(b) for b in batches])
    ax.minorticks_off()
    ax.set_xlabel("batch size")
    ax.set_ylabel("p50 ms per image")
    ax.set_title("Latency per image vs batch size")
    ax.legend(fontsize=8)
    return _save(fig, path)


def accuracy_vs_latency(rows: list[dict[str, Any]], accuracy: list[dict[str, Any]], path: Path) -> Path | None:
    plt = _plt()
    acc = {a["artifact"]: a["accuracy"] for a in accuracy if a.get("accuracy") is not None}
    pts = [(r, acc[r["artifact"]]) for r in _best_threads(rows) if r["batch"] == 1 and r["artifact"] in acc]
    if not pts:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for r, a in pts:
        ax.scatter(r["p50_ms"], 100 * a)
        ax.annotate(_text(f"{r['artifact']}/{r['provider']}"), (r["p50_ms"], 100 * a), fontsize=8,
                    xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel("p50 latency, ms (batch 1)")
    ax.set_ylabel("accuracy, %")
    ax.set_title("Accuracy vs latency")
    return _save(fig, path)


def make_charts(report: dict[str, Any], out_dir: Path) -> list[str]:
    made = [
        latency_bars(report["latency"], out_dir / "latency_by_artifact.png"),
        latency_vs_batch(report["latency"], out_dir / "latency_vs_batch.png"),
        accuracy_vs_latency(report["latency"], (report.get("accuracy") or {}).get("rows", []),
                            out_dir / "accuracy_vs_latency.png"),
    ]
    return [str(p) for p in made if p is not None]
