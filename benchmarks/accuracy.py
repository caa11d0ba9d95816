"""Accuracy and agreement per artifact on a labeled folder (Kaggle names or class folders).

Every artifact sees the same photos through THE preprocess() (baked ones the same uint8 crops).
Agreement with the reference (torch eager when given, else the fp32 ONNX) and logit/probability
differences come from catdog.export.parity.figures, the export gates' own code, when it can be
imported (it needs torch); without it the section reports accuracy only and says so."""

from __future__ import annotations

from typing import Any

import numpy as np

from catdog.runtime.errors import DataError
from catdog.runtime.files import read_image
from catdog.runtime.spec import PreprocessSpec

from catdog.benchmarks.artifacts import Artifact, make_batch
from catdog.benchmarks.backends import make_runner
from catdog.benchmarks.labels import labeled_images

CHUNK = 16


def parity_figures() -> Any:
    """export's figures(ref, got, labels) or None when export (or torch under it) is not importable."""
    try:
        from catdog.export.parity import figures
    except ImportError:
        return None
    return figures


def logits_of(art: Artifact, images: list[np.ndarray], spec: PreprocessSpec, threads: int | None) -> np.ndarray:
    runner = make_runner(art, "cpu", threads)
    step = 1 if art.fixed_batch == 1 else CHUNK
    out = [runner.run(make_batch(art, images[i : i + step], spec)) for i in range(0, len(images), step)]
    return np.concatenate(out).astype(np.float32)


def _label_index(labels: list[str], classes: tuple[str, ...]) -> np.ndarray:
    unknown = sorted(set(labels) - set(classes))
    if unknown:
        shown = ", ".join(classes[:8]) + (f", ... ({len(classes)} in all)" if len(classes) > 8 else "")
        raise DataError(f"labels {unknown[:8]} are not among the model's classes ({shown}); "
                        "give a folder labeled with the model's class names")
    return np.asarray([classes.index(x) for x in labels])


def accuracy_section(arts: list[Artifact], cfg: Any, spec: PreprocessSpec) -> dict[str, Any]:
    pairs = labeled_images(cfg.data, limit=cfg.accuracy_limit)
    images = [read_image(p) for p, _ in pairs]
    threads = next((t for t in cfg.threads if t), None)
    classes = next((a.meta.classes for a in arts if a.meta is not None), None)
    if classes is None:
        raise DataError("no artifact carries class names (catdog metadata); cannot score accuracy")
    labels = _label_index([lab for _, lab in pairs], classes)
    logits = {a.name: logits_of(a, images, spec, threads) for a in arts}
    ref_name = next((n for n in ("torch-eager", "onnx-fp32") if n in logits), next(iter(logits)))
    figures = parity_figures()
    rows = []
    for a in arts:
        got = logits[a.name]
        row: dict[str, Any] = {"artifact": a.name, "n": len(images),
                               "accuracy": float(np.mean(got.argmax(1) == labels))}
        if figures is not None:
            f = figures(logits[ref_name], got, labels)
            row.update(top1_agreement=f["top1_agreement"], max_abs_logit=f["max_abs_logit"],
                       max_abs_prob=f["max_abs_prob"], accuracy_drop=f["accuracy_drop"])
        rows.append(row)
    about = f"{len(images)} photos from {cfg.data}; reference for agreement: {ref_name}."
    if figures is None:
        about += " Agreement/differences n/a: catdog.export.parity (needs torch) is not importable here."
    return {"about": about, "reference": ref_name, "rows": rows}
