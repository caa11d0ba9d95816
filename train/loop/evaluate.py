"""Accuracy of a saved checkpoint on labelled folders (held-out test sets, other sources), through
the same Dataset/preprocess path as training validation, with 95% Wilson intervals; and the
temperature that calibrates a run's best checkpoint on its validation split."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from catdog.runtime.spine.folders import scan
from catdog.runtime.spine.metrics import accuracy_record, ece, fit_temperature, format_accuracy, nll, softmax_t
from catdog.train.data.datasets import ImageDataset, make_loader
from catdog.train.loop.engine import EvalResult, evaluate
from catdog.train.models.checkpoint import build_model, load_checkpoint, save_checkpoint
from catdog.train.options import EvaluateOptions
from catdog.train.plumbing.progress import bar
from catdog.train.recipe import resolve_device

ECE_BINS = 15


def accuracy_report(res: EvalResult, classes: list[str], temperature: float) -> dict[str, Any]:
    """Accuracy with its interval, per-class accuracy (classes with images), loss, ECE at `temperature`."""
    logits, labels = res.logits.double().numpy(), res.labels.numpy()
    pred = logits.argmax(1) if len(labels) else np.zeros(0, int)
    correct = int((pred == labels).sum())
    per_class = {c: accuracy_record(int(((pred == i) & (labels == i)).sum()), int((labels == i).sum()))
                 for i, c in enumerate(classes) if int((labels == i).sum())}
    out = {**accuracy_record(correct, len(labels)), "accuracy_text": format_accuracy(correct, len(labels)),
           "loss": res.loss, "images": res.images, "per_class": per_class, "skipped": res.bad}
    if len(labels):
        out["ece"] = ece(softmax_t(logits, temperature), labels, ECE_BINS)
    return out


def evaluate_checkpoint(checkpoint: str | os.PathLike, folders: Sequence[str | os.PathLike],
                        batch_size: int = EvaluateOptions.batch_size, workers: int = EvaluateOptions.workers,
                        device: str = EvaluateOptions.device, console: Any = None) -> dict[str, Any]:
    """One report per folder: accuracy with its 95% Wilson interval and n, per-class accuracy,
    expected calibration error of the (temperature-scaled) scores, unreadable files."""
    ckpt = load_checkpoint(checkpoint)
    classes = list(ckpt.classes)
    found = [scan(f, classes) for f in folders]  # every folder checked before the first forward pass
    dev = resolve_device(device)
    model = build_model(ckpt, str(checkpoint)).to(dev)
    temperature = ckpt.temperature
    sets = {}
    for folder, data in zip(folders, found, strict=True):
        loader = make_loader(ImageDataset(data, ckpt.spec, train=False), batch_size, workers, shuffle=False,
                             seed=0)
        with bar(console, f"evaluate {Path(folder).name}", len(data.samples)) as tick:
            sets[str(folder)] = accuracy_report(evaluate(model, loader, dev, None, tick), classes, temperature)
    return {"checkpoint": str(checkpoint), "arch": ckpt.arch, "classes": classes, "temperature": temperature,
            "sets": sets}


def calibrate_checkpoint(best: Path, best_val: EvalResult | None, val_ds: ImageDataset, device: Any,
                         say: Callable[..., None], *, batch_size: int, workers: int
                         ) -> tuple[dict[str, float], EvalResult]:
    """Temperature scaling (Guo et al. 2017): the T minimising validation NLL of softmax(logits / T),
    stored in best.pth (and so in every exported artifact's metadata) with the ECE before and after.
    It changes scores, never labels. -> (the calibration, best.pth's validation result)."""
    ckpt = load_checkpoint(best)
    if best_val is None:  # resumed after the best epoch: score best.pth on the split again
        model = build_model(ckpt, str(best)).to(device)
        best_val = evaluate(model, make_loader(val_ds, batch_size, workers, shuffle=False, seed=0), device)
    logits, labels = best_val.logits.double().numpy(), best_val.labels.numpy()
    errors = int((logits.argmax(1) != labels).sum()) if len(labels) else 0
    # With no validation error the likelihood keeps rising as T -> 0: there is no finite optimum,
    # and a fitted "T = 0.05" would make every score ~1.0. Leave such a model uncalibrated, and say so.
    t = fit_temperature(logits, labels) if errors else 1.0
    cal = {"temperature": t, "val_images": int(len(labels)), "val_errors": errors, "ece_bins": ECE_BINS,
           "ece_before": ece(softmax_t(logits, 1.0), labels, ECE_BINS),
           "ece_after": ece(softmax_t(logits, t), labels, ECE_BINS),
           "nll_before": nll(logits, labels, 1.0), "nll_after": nll(logits, labels, t)}
    save_checkpoint(best, **{**ckpt.fields_to_save(), "temperature": t, "calibration": cal})
    if not errors:
        say(f"calibration: temperature left at 1: the {len(labels)} val images have no error to calibrate on")
    else:
        say(f"calibration: temperature {t:.3f} on {len(labels)} val images ({errors} errors); ECE "
            f"{100 * cal['ece_before']:.2f}% -> {100 * cal['ece_after']:.2f}%")
    return cal, best_val
