"""`catdog-train cv`: k-fold cross-validation of one recipe on the training folder, so recipes are
compared on photos the choice never saw, and the test folder stays untouched until the end.

Folds are stratified (every class split evenly) and disjoint; fold i validates on its own images
and trains on the rest, with the recipe's own code path (fit), so what is compared is what ships."""

from __future__ import annotations

import json
import os
import random
import statistics
from pathlib import Path
from typing import Any

from catdog.runtime.errors import DataError
from catdog.runtime.files import atomic_write
from catdog.runtime.folders import LabelledFolder, scan
from catdog.runtime.metrics import format_accuracy
from catdog.train.fit import fit
from catdog.train.recipe import TrainConfig


def stratified_folds(data: LabelledFolder, k: int, seed: int = 0) -> list[tuple[LabelledFolder, LabelledFolder]]:
    """k (train, val) pairs: the vals are disjoint, cover every image once, and each holds ~1/k of
    every class. The same folder, k and seed always give the same folds."""
    if k < 2:
        raise DataError(f"cross-validation needs at least 2 folds, got {k}")
    per_fold: list[list[tuple[str, int]]] = [[] for _ in range(k)]
    rng = random.Random(seed)
    for y in range(len(data.classes)):
        items = sorted(s for s in data.samples if s[1] == y)
        if len(items) < k:
            raise DataError(f"{data.root}: class {data.classes[y]!r} has {len(items)} images, fewer than {k} folds")
        rng.shuffle(items)
        for i, item in enumerate(items):
            per_fold[i % k].append(item)
    return [(data.subset(s for j, f in enumerate(per_fold) if j != i for s in f), data.subset(per_fold[i]))
            for i in range(k)]


def cross_validate(cfg: TrainConfig, k: int, out: str | os.PathLike, *, device: str = "auto",
                   console: Any = None) -> dict[str, Any]:
    """Run the recipe once per fold into OUT/fold-<i>; write OUT/cv.json; return it."""
    out = Path(out)
    if cfg.val:
        raise DataError("cv makes its own validation folds from --data; leave --val out")
    folds = stratified_folds(scan(cfg.data), k, cfg.seed)
    rows = []
    for i, (train, val) in enumerate(folds, 1):
        if console:
            console.print(f"[bold]fold {i}/{k}[/]: {len(train.samples)} train / {len(val.samples)} val")
        s = fit(cfg, out / f"fold-{i}", device=device, console=console, plots=False, sets=(train, val))
        n = len(val.samples) - len(s["skipped"])
        rows.append({"fold": i, "val_acc": s["best_val_acc"], "val_images": n, "best_epoch": s["best_epoch"],
                     "probe_val_acc": s["probe_val_acc"],
                     "ece_after": (s.get("calibration") or {}).get("ece_after")})
    accs = [r["val_acc"] for r in rows]
    correct = sum(round(r["val_acc"] * r["val_images"]) for r in rows)
    total = sum(r["val_images"] for r in rows)
    probes = [r["probe_val_acc"] for r in rows if r["probe_val_acc"] is not None]
    report = {"folds": k, "recipe": cfg.to_dict(), "val_acc_mean": statistics.fmean(accs),
              "val_acc_std": statistics.stdev(accs), "pooled": format_accuracy(correct, total),
              "probe_val_acc_mean": statistics.fmean(probes) if len(probes) == k else None, "per_fold": rows}
    atomic_write(out / "cv.json", json.dumps(report, indent=2) + "\n")
    return report
