"""Training plots (matplotlib Agg, PNGs written atomically): loss/accuracy curves, confusion
matrix, per-class accuracy, and ROC with AUC when there are two classes. The class plots stay
readable from 2 to 100+ classes: the figure grows with the class count, tick labels shrink, and
above CELL_NUMBERS classes the confusion matrix drops its per-cell counts for a colour bar."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from catdog.runtime.spine.fileio import atomic_path  # noqa: E402
from catdog.runtime.spine.metrics import wilson  # noqa: E402

CELL_NUMBERS = 20  # above this many classes the confusion matrix shows colours only


def _side(n: int) -> float:
    """Inches for n class rows/columns: roomy for a few, 0.22 in each for many (100 classes: ~25 in)."""
    return min(max(4.0, 0.22 * n + 2.5 if n > CELL_NUMBERS else 0.8 * n + 2.5), 40.0)


def _tick_font(n: int) -> float:
    return 10.0 if n <= CELL_NUMBERS else max(5.0, 10.0 - 0.06 * (n - CELL_NUMBERS))


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
    fig, ax = plt.subplots(figsize=(_side(n) + 1.5, _side(n)))
    im = ax.imshow(cm.numpy(), cmap="Blues")
    font = _tick_font(n)
    ax.set(xticks=range(n), yticks=range(n), xlabel="predicted", ylabel="true",
           title="confusion matrix (best epoch, validation)")
    ax.set_xticklabels(classes, rotation=45 if n <= CELL_NUMBERS else 90, ha="right" if n <= CELL_NUMBERS else "center",
                       fontsize=font)
    ax.set_yticklabels(classes, fontsize=font)
    top = int(cm.max()) if cm.numel() else 0
    if n <= CELL_NUMBERS:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, int(cm[i, j]), ha="center", va="center",
                        color="white" if cm[i, j] > top / 2 else "black")
    else:
        fig.colorbar(im, ax=ax, fraction=0.03, pad=0.01, label="images")
    return _save(fig, path)


def per_class_plot(cm: torch.Tensor, classes: list[str], path: Path) -> Path:
    """Each class's validation accuracy (the confusion matrix's diagonal over its row) with its 95%
    Wilson interval, the overall accuracy as a line; classes without validation images are left out."""
    rows = [(c, int(cm[i, i]), int(cm[i].sum())) for i, c in enumerate(classes) if int(cm[i].sum())]
    n = len(rows)
    acc = [k / m for _, k, m in rows]
    bounds = [wilson(k, m) for _, k, m in rows]
    err = [[max(0.0, a - b[0]) for a, b in zip(acc, bounds, strict=True)],
           [max(0.0, b[1] - a) for a, b in zip(acc, bounds, strict=True)]]
    fig, ax = plt.subplots(figsize=(7, max(2.5, (0.22 if n > CELL_NUMBERS else 0.4) * n + 1.2)))
    ax.barh(range(n), acc, xerr=err, color="tab:blue", ecolor="gray", capsize=0 if n > CELL_NUMBERS else 2)
    overall = float(cm.diagonal().sum()) / max(1, int(cm.sum()))
    ax.axvline(overall, color="black", linestyle="--", linewidth=1, label=f"overall {100 * overall:.1f}%")
    ax.set(xlim=(0, 1.0), xlabel="accuracy (95% Wilson interval)", ylim=(n - 0.5, -0.5),
           title="per-class accuracy (best epoch, validation)")
    ax.set_yticks(range(n))
    ax.set_yticklabels([f"{c} (n={m})" for c, _, m in rows], fontsize=_tick_font(n))
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
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
        cm = confusion(probs, labels, classes)
        written.append(confusion_plot(cm, classes, out / "confusion.png"))
        written.append(per_class_plot(cm, classes, out / "per_class.png"))
        if len(classes) == 2:
            fpr, tpr, auc = roc(probs[:, 1], labels == 1)
            written.append(roc_plot(fpr, tpr, auc, classes[1], out / "roc.png"))
    return written
