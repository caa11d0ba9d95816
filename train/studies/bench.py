"""Training throughput: is the data loader or the model the bottleneck?

    catdog-train bench --data CACHE_DIR [--arch efficientnet_lite0] [--workers 2] [--seconds 20]

Prints images/s for (1) the training DataLoader alone (decode + augmentation + collate), (2) the
model step alone on a fixed batch already on the device (forward, backward, optimizer step), and
(3) both together, as training runs. Point it at a `catdog-train prepare --resize 256` cache."""

from __future__ import annotations

import itertools
import json
import time

import torch

from catdog.runtime.spine.errors import ConfigError
from catdog.runtime.spine.folders import scan
from catdog.train.data.datasets import ImageDataset, make_loader
from catdog.train.loop.fit import resolve_arch
from catdog.train.models import get_entry, get_model
from catdog.train.options import BenchOptions
from catdog.train.recipe import amp_dtype, build_optimizer, resolve_device

PHASES = (("loader_img_s", "data loader alone"), ("model_img_s", "model step alone"), ("both_img_s", "loader + model"))


def _timed(step, seconds: float, warmup: int = 2) -> tuple[float, int]:
    """Run step() (returns images done) for ~seconds after warm-up; -> (images/s, images)."""
    for _ in range(warmup):
        step()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        n += step()
    return n / (time.perf_counter() - t0), n


def bench(opts: BenchOptions) -> dict:
    """Images/s of each phase, timed for opts.seconds each, and which one is the bottleneck."""
    cfg, seconds = opts.recipe, opts.seconds
    get_entry(cfg.arch, error=ConfigError)  # the command line's --arch, before the folder is scanned
    dev = resolve_device(opts.device)
    spec, kwargs = resolve_arch(cfg)
    data = scan(cfg.data)
    ds = ImageDataset(data, get_entry(cfg.arch).train_spec(spec), train=True)

    def batches():
        for epoch in itertools.count():
            yield from make_loader(ds, cfg.batch_size, cfg.workers, shuffle=True, seed=cfg.seed, epoch=epoch,
                                   pin_memory=dev.type == "cuda")

    it = batches()
    loader_ips, _ = _timed(lambda: len(next(it)[1]), seconds)

    model = get_model(cfg.arch, len(data.classes), **kwargs).to(dev).train()
    opt = build_optimizer(model, cfg)
    adt = amp_dtype(cfg, dev)
    scaler = torch.amp.GradScaler("cuda", enabled=adt == torch.float16)
    x = torch.randn(cfg.batch_size, 3, spec.size, spec.size, device=dev)
    y = torch.randint(0, len(data.classes), (cfg.batch_size,), device=dev)

    def step(xb=x, yb=y) -> int:
        xb, yb = xb.to(dev, non_blocking=True), yb.to(dev, non_blocking=True)
        with torch.autocast(dev.type, dtype=adt, enabled=adt is not None):
            loss = torch.nn.functional.cross_entropy(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        return len(yb)

    model_ips, _ = _timed(step, seconds)

    def both() -> int:
        xb, yb, _ = next(it)
        return step(xb, yb) if len(yb) else 0

    both_ips, _ = _timed(both, seconds)
    return {"device": str(dev), "arch": cfg.arch, "input": spec.size, "batch_size": cfg.batch_size,
            "workers": cfg.workers, "threads": torch.get_num_threads(), "images": len(data.samples),
            "loader_img_s": round(loader_ips, 1), "model_img_s": round(model_ips, 1), "both_img_s": round(both_ips, 1),
            "bottleneck": "loader" if loader_ips < model_ips else "model"}


def bench_lines(r: dict) -> list[str]:
    """What catdog-train bench prints: the setting, images/s per phase, the bottleneck, then the JSON."""
    lines = [f"{r['arch']} @ {r['input']}px, batch {r['batch_size']}, {r['workers']} loader workers, "
             f"{r['threads']} torch threads, {r['device']}"]
    lines += [f"  {what:<18} {r[key]:>8.1f} images/s" for key, what in PHASES]
    return lines + [f"  bottleneck: {r['bottleneck']}", json.dumps(r)]
