"""One pass over the data: train_one_epoch (gradient accumulation, AMP, data vs compute timing)
and evaluate (loss, accuracy, per-sample probabilities). No file I/O here; the loop in fit.py
decides what to write."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from catdog.train.plumbing import interrupt

# progress(n_images_done, stats_so_far) is called after each step; the CLI draws a rich bar with it.
Progress = Callable[[int, dict], None]


@dataclass
class EpochStats:
    loss: float = 0.0
    acc: float = 0.0
    images: int = 0
    seconds: float = 0.0
    data_seconds: float = 0.0
    compute_seconds: float = 0.0
    bad: list[str] = field(default_factory=list)  # messages of files that could not be decoded

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_one_epoch(
    model: nn.Module,
    loader,
    optimizer: torch.optim.Optimizer,
    criterion: nn.Module,
    device: torch.device,
    scaler=None,
    amp_dtype: torch.dtype | None = None,
    accum_steps: int = 1,
    progress: Progress | None = None,
    *,
    mix: Callable | None = None,
    ema: nn.Module | None = None,
    freeze_bn: bool = False,
) -> EpochStats:
    """`mix(x, y) -> (x, soft y)` is MixUp/CutMix on the batch; `ema` (an AveragedModel) is updated
    after every optimizer step; `freeze_bn` keeps every BatchNorm on its running statistics."""
    model.train()
    if freeze_bn:  # batch statistics would shift the features a probe head was fitted on (LP-FT)
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
    st = EpochStats()
    loss_sum, correct = 0.0, 0
    optimizer.zero_grad(set_to_none=True)
    t0 = t_ready = time.perf_counter()
    pending = 0  # micro-batches accumulated since the last optimizer step
    n_batches = len(loader)
    for i, (x, y, bad) in enumerate(loader):
        interrupt.check()  # a Ctrl-C swallowed while the loader forked its worker
        t_data = time.perf_counter()
        st.data_seconds += t_data - t_ready
        st.bad += bad
        if len(y):
            if mix is not None:
                x, y = mix(x, y)  # y becomes (N, C) class probabilities; the loss takes them as is
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                logits = model(x)
                loss = criterion(logits, y)
            scaled = loss / accum_steps
            scaler.scale(scaled).backward() if scaler is not None else scaled.backward()
            pending += 1
            loss_sum += loss.item() * len(y)
            correct += int((logits.argmax(1) == (y.argmax(1) if y.ndim == 2 else y)).sum())
            st.images += len(y)
        if pending and (pending == accum_steps or i == n_batches - 1):
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            pending = 0
            if ema is not None:
                ema.update_parameters(model.module if hasattr(model, "module") else model)
        _sync(device)
        t_ready = time.perf_counter()
        st.compute_seconds += t_ready - t_data
        if progress and st.images:
            progress(st.images, {"loss": loss_sum / st.images, "acc": correct / st.images,
                                 "img/s": st.images / (t_ready - t0)})
    st.seconds = time.perf_counter() - t0
    st.loss = loss_sum / max(st.images, 1)
    st.acc = correct / max(st.images, 1)
    return st


@dataclass
class EvalResult:
    loss: float
    acc: float
    probs: torch.Tensor  # (N, C) softmax, in the loader's order, bad files left out
    labels: torch.Tensor  # (N,)
    logits: torch.Tensor  # (N, C) float32, for temperature calibration
    images: int
    seconds: float
    bad: list[str] = field(default_factory=list)


@torch.no_grad()
def evaluate(model: nn.Module, loader, device: torch.device, amp_dtype: torch.dtype | None = None,
             progress: Progress | None = None) -> EvalResult:
    model.eval()
    t0 = time.perf_counter()
    probs, labels, logit_rows, bad = [], [], [], []
    loss_sum = 0.0
    for x, y, b in loader:
        interrupt.check()
        bad += b
        if not len(y):
            continue
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            logits = model(x)
        logits = logits.float()
        logit_rows.append(logits.cpu())
        loss_sum += float(nn.functional.cross_entropy(logits, y, reduction="sum"))
        probs.append(logits.softmax(1).cpu())
        labels.append(y.cpu())
        if progress:
            n = sum(len(t) for t in labels)
            progress(n, {"loss": loss_sum / n})
    p = torch.cat(probs) if probs else torch.zeros(0, 0)
    t = torch.cat(labels) if labels else torch.zeros(0, dtype=torch.long)
    n = len(t)
    acc = float((p.argmax(1) == t).float().mean()) if n else 0.0
    z = torch.cat(logit_rows) if logit_rows else torch.zeros(0, 0)
    return EvalResult(loss_sum / max(n, 1), acc, p, t, z, n, time.perf_counter() - t0, bad)
