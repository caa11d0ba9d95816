"""Training plots (matplotlib Agg, PNGs written atomically): loss/accuracy curves, confusion
matrix, and ROC with AUC when there are two classes."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from catdog.runtime.spine.fileio import atomic_path  # noqa: E402


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def curves(history: list[dict], path: Path) -> Path:
    ep = [r["epoch"] for r in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(ep, [r["train_loss"] for r in history], "o-", label="train")
    a.plot(ep, [r["val_loss"] for r in history], "o-", label="val")
    a.set(title="loss", xlabel="epoch")
    b.plot(ep, [r["train_acc"] for r in history], "o-", label="train")
    b.plot(ep, [r["val_acc"] for r in history], "o-", label="val")
    bar = next((r["probe_val_acc"] for r in history if r.get("probe_val_acc") is not None), None)
    if bar is not None:  # the frozen backbone's linear probe on the same split: the bar to clear
        b.axhline(bar, color="gray", linestyle="--", label=f"linear probe (val) {bar:.4f}")
    b.set(title="accuracy", xlabel="epoch")
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, path)


def confusion(probs: torch.Tensor, labels: torch.Tensor, classes: list[str]) -> torch.Tensor:
    n = len(classes)
    cm = torch.zeros(n, n, dtype=torch.long)
    for t, p in zip(labels.tolist(), probs.argmax(1).tolist(), strict=True):
        cm[t, p] += 1
    return cm


def confusion_plot(cm: torch.Tensor, classes: list[str], path: Path) -> Path:
    n = len(classes)
    fig, ax = plt.subplots(figsize=(1.2 * n + 3, 1.2 * n + 2))
    ax.imshow(cm.numpy(), cmap="Blues")
    ax.set(xticks=range(n), yticks=range(n), xticklabels=classes, yticklabels=classes,
           xlabel="predicted", ylabel="true", title="confusion matrix (best epoch, validation)")
    plt.setp(ax.get_xticklabels(), rotation=45, ha="right")
    top = int(cm.max()) if cm.numel() else 0
    for i in range(n):
        for j in range(n):
            ax.text(j, i, int(cm[i, j]), ha="center", va="center", color="white" if cm[i, j] > top / 2 else "black")
    return _save(fig, path)


def roc(scores: torch.Tensor, positives: torch.Tensor) -> tuple[list[float], list[float], float]:
    """ROC points and AUC (trapezoid) for scores of the positive class; ties handled as one step."""
    order = torch.argsort(scores, descending=True)
    s, y = scores[order], positives[order].float()
    P, N = float(y.sum()), float(len(y) - y.sum())
    if P == 0 or N == 0:
        return [0.0, 1.0], [0.0, 1.0], float("nan")
    tps, fps = torch.cumsum(y, 0), torch.cumsum(1 - y, 0)
    last_of_tie = torch.ones(len(s), dtype=torch.bool)
    last_of_tie[:-1] = s[1:] != s[:-1]
    tpr = [0.0] + (tps[last_of_tie] / P).tolist()
    fpr = [0.0] + (fps[last_of_tie] / N).tolist()
    auc = sum((fpr[i] - fpr[i - 1]) * (tpr[i] + tpr[i - 1]) / 2 for i in range(1, len(fpr)))
    return fpr, tpr, auc


def roc_plot(fpr: list[float], tpr: list[float], auc: float, positive: str, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(fpr, tpr, label=f"AUC = {auc:.4f}")
    ax.plot([0, 1], [0, 1], "--", color="gray")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC ({positive} = positive)")
    ax.legend(loc="lower right")
    return _save(fig, path)


def save_all(out: Path, history: list[dict], probs: torch.Tensor, labels: torch.Tensor,
             classes: list[str]) -> list[Path]:
    written = []
    if history:
        written.append(curves(history, out / "curves.png"))
    if len(labels):
        written.append(confusion_plot(confusion(probs, labels, classes), classes, out / "confusion.png"))
        if len(classes) == 2:
            fpr, tpr, auc = roc(probs[:, 1], labels == 1)
            written.append(roc_plot(fpr, tpr, auc, classes[1], out / "roc.png"))
    return written
