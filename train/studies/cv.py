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

from catdog.runtime.spine.errors import DataError
from catdog.runtime.spine.fileio import atomic_write
from catdog.runtime.spine.folders import LabelledFolder, scan
from catdog.runtime.spine.metrics import format_accuracy
from catdog.train.loop.fit import fit
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


def _probe_folds(cfg: TrainConfig, data: LabelledFolder, folds: list, device: str, console: Any) -> list[dict]:
    """The probe recipe (--epochs 0 --head probe): the backbone is frozen and sees no augmentation, so
    every fold's features are the same numbers. Extract them once for the whole folder, then fit and
    score one probe per fold on them: what fit() would do k times, at 1/k of the cost."""
    import numpy as np

    from catdog.train.data.datasets import ImageDataset
    from catdog.train.loop.fit import resolve_arch
    from catdog.train.loop.probe import extract, fit_probe
    from catdog.train.models import get_model
    from catdog.train.recipe import resolve_device

    spec, kwargs = resolve_arch(cfg)
    dev = resolve_device(device)
    model = get_model(cfg.arch, len(data.classes), pretrained=cfg.pretrained and not cfg.weights,
                      weights=cfg.weights, **kwargs).to(dev)
    ds = ImageDataset(data, spec, train=False)
    feats, labels, bad = extract(model, cfg.arch, ds, dev, batch_size=cfg.batch_size, workers=cfg.workers,
                                 console=console, title="cv: features of every image")
    if bad:
        raise DataError(f"{data.root}: {len(bad)} unreadable image(s), e.g. {bad[0]}; remove them for cv")
    row_of = {s: i for i, s in enumerate(data.samples)}
    rows = []
    for i, (train, val) in enumerate(folds, 1):
        it = np.array([row_of[s] for s in train.samples])
        iv = np.array([row_of[s] for s in val.samples])
        p = fit_probe((feats[it], labels[it]), (feats[iv], labels[iv]), len(data.classes))
        rows.append({"fold": i, "val_acc": p.val_acc, "val_loss": p.val_loss, "val_images": len(iv),
                     "best_epoch": 0, "probe_val_acc": p.val_acc, "probe_val_loss": p.val_loss, "l2": p.l2})
    return rows


def cross_validate(cfg: TrainConfig, k: int, out: str | os.PathLike, *, device: str = "auto",
                   console: Any = None) -> dict[str, Any]:
    """Run the recipe once per fold into OUT/fold-<i>; write OUT/cv.json; return it."""
    out = Path(out)
    if cfg.val:
        raise DataError("cv makes its own validation folds from --data; leave --val out")
    data = scan(cfg.data)
    folds = stratified_folds(data, k, cfg.seed)
    rows = _probe_folds(cfg, data, folds, device, console) if cfg.epochs == 0 else []
    for i, (train, val) in enumerate([] if rows else folds, 1):
        if console:
            console.print(f"[bold]fold {i}/{k}[/]: {len(train.samples)} train / {len(val.samples)} val")
        s = fit(cfg, out / f"fold-{i}", device=device, console=console, plots=False, sets=(train, val))
        n = len(val.samples) - len(s["skipped"])
        rows.append({"fold": i, "val_acc": s["best_val_acc"], "val_loss": s["best_val_loss"], "val_images": n,
                     "best_epoch": s["best_epoch"], "probe_val_acc": s["probe_val_acc"],
                     "probe_val_loss": s["probe_val_loss"],
                     "ece_after": (s.get("calibration") or {}).get("ece_after")})
    accs = [r["val_acc"] for r in rows]
    correct = sum(round(r["val_acc"] * r["val_images"]) for r in rows)
    total = sum(r["val_images"] for r in rows)
    probes = [r["probe_val_acc"] for r in rows if r["probe_val_acc"] is not None]
    probe_correct = sum(round(r["probe_val_acc"] * r["val_images"]) for r in rows if r["probe_val_acc"] is not None)
    report = {"folds": k, "recipe": cfg.to_dict(), "val_acc_mean": statistics.fmean(accs),
              "val_acc_std": statistics.stdev(accs), "pooled": format_accuracy(correct, total),
              "val_loss_mean": statistics.fmean(r["val_loss"] for r in rows),
              "probe_val_acc_mean": statistics.fmean(probes) if len(probes) == k else None,
              "probe_pooled": format_accuracy(probe_correct, total) if len(probes) == k else None,
              "probe_val_loss_mean": (statistics.fmean(r["probe_val_loss"] for r in rows)
                                      if len(probes) == k else None), "per_fold": rows}
    atomic_write(out / "cv.json", json.dumps(report, indent=2) + "\n")
    return report
