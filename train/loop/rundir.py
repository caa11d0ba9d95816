"""The run folder's files beside the checkpoints: metrics.jsonl (appended and fsynced per epoch,
trimmed to the checkpointed epochs on --resume), report.json (the run's summary and best.pth's
accuracy on validation, overall and per class), the free-space check before epoch 1, the report of
unreadable images, and the plots."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from rich.markup import escape

from catdog.runtime.spine.errors import OutputError
from catdog.runtime.spine.fileio import atomic_write
from catdog.train.loop.engine import EvalResult

BEST, LAST, METRICS, CLASSES = "best.pth", "last.pth", "metrics.jsonl", "class_indices.json"  # a run's files
REPORT = "report.json"


def append_line(path: Path, record: dict) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def trim_metrics(path: Path, epochs_done: int) -> list[dict]:
    """Keep the lines of completed (checkpointed) epochs; rewrite the file atomically."""
    rows = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a crash
            if isinstance(row, dict) and row.get("epoch", 1 << 30) <= epochs_done:
                rows.append(row)
    atomic_write(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    return rows


def check_free_space(out: Path, model: torch.nn.Module, arch: str) -> None:
    """Fail before the first epoch if best.pth + last.pth cannot fit: last.pth holds the weights and
    up to two optimizer moments, and an atomic save briefly needs the old and the new file."""
    import shutil

    need = 8 * sum(t.numel() * t.element_size() for t in model.state_dict().values())
    free = shutil.disk_usage(out).free
    if free < need:
        raise OutputError(f"{out}: only {free / 1e6:.1f} MB free, {arch} checkpoints need about {need / 1e6:.0f} MB; "
                          "free some disk space or choose another --out")


def report_bad(messages: list[str], reported: set[str], say) -> None:
    new = sorted(set(messages) - reported)
    if new:
        reported.update(new)
        say(f"[yellow]skipped {len(new)} unreadable image(s):[/]")
        for m in new:
            say(f"  {m}", markup=False, highlight=False)


def write_report(out: Path, summary: dict, val: dict, classes: list[str], say) -> Path:
    """report.json: the summary, and the best model's validation accuracy overall and per class
    (each with its 95% Wilson interval and n), loss and ECE at the calibrated temperature."""
    keys = ("epochs", "best_epoch", "best_val_acc", "best_val_loss", "probe_val_acc", "calibration")
    body = {**{k: summary.get(k) for k in keys}, "classes": list(classes),
            "validation": {k: v for k, v in val.items() if k != "skipped"}, "skipped": summary.get("skipped", [])}
    atomic_write(out / REPORT, json.dumps(body, indent=2) + "\n")
    worst = sorted(val["per_class"].items(), key=lambda kv: kv[1]["accuracy"])[:3]
    lowest = ", ".join(f"{escape(c)} {100 * r['accuracy']:.1f}% (n={r['n']})" for c, r in worst)
    say(f"per-class val accuracy (best epoch), lowest: {lowest}; all in {escape(str(out / REPORT))}")
    return out / REPORT


def write_plots(out: Path, history: list[dict], val: EvalResult, classes: list[str], say) -> None:
    try:
        from catdog.train.loop import plots
    except ImportError:  # matplotlib is an optional part of [train]
        say("matplotlib not installed: no plots")
        return
    for path in plots.save_all(out, history, val.probs, val.labels, classes):
        say(f"wrote {escape(str(path))}")
