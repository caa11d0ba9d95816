"""The linear probe: the bar every fine-tuning run has to clear, and LP-FT's starting head.

Features come from the frozen pretrained backbone through the validation path (the spine's
preprocess, no augmentation). A multinomial logistic regression is fitted on them by full-batch
L-BFGS with an L2 penalty chosen on the validation split (accuracy, then log-loss). The result is an
ordinary checkpoint (backbone + linear head), so it exports and runs like any trained model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from catdog.runtime.spine.errors import ConfigError
from catdog.runtime.spine.folders import LabelledFolder
from catdog.runtime.spine.spec import PreprocessSpec
from catdog.train.data.datasets import ImageDataset, make_loader
from catdog.train.loop import dist
from catdog.train.plumbing.progress import bar
from catdog.train.recipe import TrainConfig

# Penalties tried on standardized features (strong to weak); validation picks one.
L2_GRID = (1.0, 0.3, 0.1, 0.03, 0.01, 0.003, 0.001, 0.0003)


@dataclass(frozen=True)
class Probe:
    weight: np.ndarray  # (C, D) in the backbone's own feature space: it drops into model.fc as is
    bias: np.ndarray  # (C,)
    l2: float
    train_acc: float
    val_acc: float
    val_loss: float
    val_logits: np.ndarray  # (N, C), for calibration
    val_labels: np.ndarray

    def summary(self) -> dict[str, float]:
        return {"l2": self.l2, "train_acc": self.train_acc, "val_acc": self.val_acc, "val_loss": self.val_loss,
                "val_images": len(self.val_labels)}


def _has_head(model: nn.Module) -> bool:
    return callable(getattr(model, "features", None)) and isinstance(getattr(model, "fc", None), nn.Linear)


def head_of(model: nn.Module, arch: str) -> tuple[Callable[[torch.Tensor], torch.Tensor], nn.Linear]:
    """(features, linear head) of a model a probe can sit on; ConfigError for one it cannot."""
    if not _has_head(model):
        raise ConfigError(f"{arch}: a linear probe needs a backbone with features() and a linear fc head "
                          "(the efficientnet_lite family has them); use --no-probe to train without the bar")
    return model.features, model.fc


@torch.no_grad()
def extract(model: nn.Module, arch: str, ds: ImageDataset, device: torch.device, *, batch_size: int, workers: int,
            console: Any = None, title: str = "features") -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(features float64 (N, D), labels (N,), unreadable-file messages) in the dataset's order."""
    features, _ = head_of(model, arch)
    model.eval()
    feats, labels, bad = [], [], []
    loader = make_loader(ds, batch_size, workers, shuffle=False, seed=0)
    with bar(console, title, len(ds)) as tick:
        for x, y, b in loader:
            bad += b
            if len(y):
                feats.append(features(x.to(device)).double().cpu().numpy())
                labels.append(y.numpy())
                tick(sum(len(t) for t in labels), {})
    dim = head_of(model, arch)[1].in_features
    return (np.concatenate(feats) if feats else np.zeros((0, dim)),
            np.concatenate(labels) if labels else np.zeros(0, np.int64), bad)


def fit_logistic(x: np.ndarray, y: np.ndarray, classes: int, l2: float) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression, mean cross-entropy + l2/2 * |W|^2 on standardized features,
    full-batch L-BFGS in float64 (a strictly convex problem: the optimum is unique). Returns (W, b)
    mapped back to the raw feature space."""
    xt = torch.as_tensor(x, dtype=torch.float64)
    yt = torch.as_tensor(y, dtype=torch.long)
    mu, sd = xt.mean(0), xt.std(0) + 1e-6  # standardizing makes one penalty fit every feature scale
    z = (xt - mu) / sd
    w = torch.zeros(x.shape[1], classes, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=500, tolerance_grad=1e-9, tolerance_change=1e-12,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = nn.functional.cross_entropy(z @ w + b, yt) + 0.5 * l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        weight = (w / sd[:, None]).T.contiguous()
        bias = b - (mu / sd) @ w
    return weight.numpy(), bias.numpy()


def _scores(x: np.ndarray, y: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, float, float]:
    logits = x @ weight.T + bias
    loss = float(nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(y).long()))
    return logits, float((logits.argmax(1) == y).mean()), loss


def fit_probe(train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray], classes: int) -> Probe:
    """Fit one probe per L2 in L2_GRID on `train`; keep the one best on `val` (accuracy, then loss)."""
    (xt, yt), (xv, yv) = train, val
    if len(xt) == 0 or len(xv) == 0:
        raise ConfigError("a linear probe needs readable training and validation images")
    best: Probe | None = None
    for l2 in L2_GRID:
        weight, bias = fit_logistic(xt, yt, classes, l2)
        logits, acc, loss = _scores(xv, yv, weight, bias)
        if best is None or (acc, -loss) > (best.val_acc, -best.val_loss):
            best = Probe(weight, bias, l2, _scores(xt, yt, weight, bias)[1], acc, loss, logits, yv)
    assert best is not None
    return best


def set_head(model: nn.Module, arch: str, weight: np.ndarray, bias: np.ndarray) -> None:
    """Put the probe's head into the model (LP-FT's start, and the probe checkpoint's head)."""
    _, fc = head_of(model, arch)
    with torch.no_grad():
        fc.weight.copy_(torch.from_numpy(weight).to(fc.weight))
        fc.bias.copy_(torch.from_numpy(bias).to(fc.bias))


def probe_model(model: nn.Module, arch: str, train_ds: ImageDataset, val_ds: ImageDataset, device: torch.device,
                *, batch_size: int, workers: int, console: Any = None) -> tuple[Probe, list[str]]:
    """Extract both splits' features with `model`'s backbone and fit the probe on them."""
    kw = {"batch_size": batch_size, "workers": workers, "console": console}
    xt, yt, bad_t = extract(model, arch, train_ds, device, title="probe: train features", **kw)
    xv, yv, bad_v = extract(model, arch, val_ds, device, title="probe: val features  ", **kw)
    return fit_probe((xt, yt), (xv, yv), head_of(model, arch)[1].out_features), bad_t + bad_v


def probe_bar(cfg: TrainConfig, model: nn.Module, train_set: LabelledFolder, val_set: LabelledFolder,
              spec: PreprocessSpec, info: dist.DistInfo, say: Callable[..., None]) -> dict[str, float] | None:
    """Before epoch 1: the linear probe of this run's pretrained backbone on this run's split, the
    accuracy the run has to beat. With --head probe (LP-FT) its head becomes the model's starting
    head on every rank. -> the probe's summary, or None when there is no meaningful probe."""
    pretrained = cfg.pretrained or cfg.weights
    usable = cfg.probe and pretrained and _has_head(model)
    if cfg.head == "probe" and not usable:
        head_of(model, cfg.arch)  # names what the arch lacks
        raise ConfigError("--head probe starts from the linear probe of a pretrained backbone: add --pretrained "
                          "or --weights")
    if not usable:
        if cfg.probe:
            why = "the backbone is not pretrained" if not pretrained else f"{cfg.arch} has no linear fc head"
            say(f"no probe bar: {why}")
        return None
    found: Probe | None = None
    if info.main:
        found, _ = probe_model(model, cfg.arch, ImageDataset(train_set, spec, train=False),
                               ImageDataset(val_set, spec, train=False), info.device,
                               batch_size=cfg.batch_size, workers=cfg.workers)
        say(f"probe: linear probe on the frozen backbone, val acc {found.val_acc:.4f} (L2 {found.l2:g}): "
            "the bar this run has to clear")
    shared = dist.broadcast_object(info, None if found is None else (found.weight, found.bias, found.summary()))
    weight, bias, summary = shared
    if cfg.head == "probe":
        set_head(model, cfg.arch, weight, bias)
    return summary
