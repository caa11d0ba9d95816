"""Accuracy of a saved checkpoint on a labelled folder (a held-out test set), through the same
Dataset/preprocess path as training validation."""

from __future__ import annotations

import os

from catdog.runtime.folders import scan
from catdog.train.checkpoint import build_model, load_checkpoint
from catdog.train.data import ImageDataset, make_loader
from catdog.train.engine import evaluate
from catdog.train.progress import bar
from catdog.train.recipe import TrainConfig, resolve_device


def evaluate_checkpoint(checkpoint: str | os.PathLike, data: str | os.PathLike,
                        batch_size: int = TrainConfig.batch_size, workers: int = TrainConfig.workers,
                        device: str = "auto", console=None) -> dict:
    ckpt = load_checkpoint(checkpoint)
    classes = ckpt["classes"]
    found = scan(data, classes)  # a class the model does not know is a DataError naming both lists
    dev = resolve_device(device)
    model = build_model(ckpt, str(checkpoint)).to(dev)
    loader = make_loader(ImageDataset(found, ckpt["spec"], train=False), batch_size, workers, shuffle=False, seed=0)
    with bar(console, "evaluate", len(found.samples)) as tick:
        res = evaluate(model, loader, dev, None, tick)
    pred = res.probs.argmax(1)
    per_class = {c: float((pred[res.labels == i] == i).float().mean()) for i, c in enumerate(classes)
                 if int((res.labels == i).sum())}
    return {"accuracy": res.acc, "loss": res.loss, "images": res.images, "correct": int((pred == res.labels).sum()),
            "per_class_accuracy": per_class, "skipped": res.bad, "classes": classes, "arch": ckpt["arch"]}
