"""Folder throughput (decode -> label) and the runtime's per-image overhead.

Folder: the runtime's Classifier (parallel decode, batch 16) vs the bare 40-line onnxruntime script
(bare_folder.py: 2 decode threads, batch 16) vs a torch DataLoader (2 workers, batch 16) + the
eager/TorchScript model when torch is installed. Same files, same thread count, models loaded
before the clock starts, files read once beforehand so the page cache is warm for all.
Overhead: Classifier.predict(decoded image) vs the bare preprocess() + session.run on the same
decoded frames, interleaved."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from catdog.runtime.spec import PreprocessSpec

from catdog.benchmarks.latency import LoopConfig, interleaved


def _threads(cfg: Any) -> int | None:
    return next((t for t in cfg.threads if t), None)


def overhead_section(primary: Any, cfg: Any, spec: PreprocessSpec) -> dict[str, Any]:
    from catdog.runtime.classifier import Classifier
    from catdog.runtime.preprocess import preprocess

    from catdog.benchmarks.artifacts import input_images
    from catdog.benchmarks.backends import make_runner

    threads = _threads(cfg)
    images, _ = input_images(cfg.data, 8)
    clf = Classifier.from_file(primary.path, provider="cpu", threads=threads, batch_size=1, workers=1, log=None)
    bare = make_runner(primary, "cpu", threads)
    state = {"i": 0}

    def frame() -> np.ndarray:
        state["i"] = (state["i"] + 1) % len(images)
        return images[state["i"]]

    loop = LoopConfig(warmup=cfg.loop.warmup, iters=cfg.loop.iters or 50, block=cfg.loop.block)
    samples = interleaved({
        "bare preprocess + session.run": lambda: bare.run(preprocess(frame(), spec)).argmax(1),
        "runtime Classifier.predict": lambda: clf.predict(frame()),
    }, loop)
    med = {k: statistics.median(v) * 1e3 for k, v in samples.items()}
    base = med["bare preprocess + session.run"]
    rows = [{"path": k, "p50_ms": v, "overhead_ms": v - base, "ratio_vs_bare": v / base} for k, v in med.items()]
    return {"about": f"Per decoded image, batch 1, CPU threads {threads or 'default'}, {loop.iters} interleaved runs "
                     f"each on {primary.name}; overhead = runtime p50 - bare p50.", "rows": rows}


def _runtime_folder(model: Path, files: list[Path], threads: int | None) -> tuple[list[str], float]:
    from catdog.runtime.classifier import Classifier

    # As catdog-runtime opens a model for files and folders (runtime/cli.py): no ORT spin-wait.
    clf = Classifier.from_file(model, provider="cpu", threads=threads, batch_size=16, workers=2, log=None,
                               spinning=False)
    t0 = time.perf_counter()
    labels = [p if isinstance(p, str) else p.label for _, p in clf.iter_predict(files)]
    return labels, time.perf_counter() - t0


def _bare_folder(model: Path, files: list[Path], threads: int | None) -> tuple[list[str], float]:
    from catdog.benchmarks.bare_folder import classify_folder

    t0 = time.perf_counter()  # includes its session creation (~ms for a CNN): the script as written
    labels = classify_folder(model, files, threads)
    return labels, time.perf_counter() - t0


def _torch_folder(art: Any, files: list[Path], spec: PreprocessSpec, threads: int | None) -> tuple[list[str], float]:
    import torch
    from torch.utils.data import DataLoader, Dataset

    from catdog.runtime.files import read_image
    from catdog.runtime.preprocess import preprocess

    from catdog.benchmarks.backends import make_runner

    class Photos(Dataset):
        def __len__(self) -> int:
            return len(files)

        def __getitem__(self, i: int) -> torch.Tensor:
            return torch.from_numpy(preprocess(read_image(files[i]), spec)[0])

    runner = make_runner(art, "cpu", threads)
    classes = art.meta.classes
    loader = DataLoader(Photos(), batch_size=16, num_workers=2, shuffle=False)
    t0 = time.perf_counter()
    labels = []
    for batch in loader:
        labels += [classes[i] for i in runner.run(batch.numpy()).argmax(1)]
    return labels, time.perf_counter() - t0


def folder_section(primary: Any, arts: list, cfg: Any, spec: PreprocessSpec) -> dict[str, Any]:
    from catdog.benchmarks.bench import torch_available
    from catdog.benchmarks.labels import labeled_images

    files = [p for p, _ in labeled_images(cfg.data, limit=cfg.accuracy_limit)]
    for f in files:  # warm the page cache for every contender alike
        f.read_bytes()
    threads = _threads(cfg)
    results = {"runtime (Classifier, 2 decode threads, batch 16)": _runtime_folder(primary.path, files, threads),
               "bare onnxruntime script (2 threads, batch 16)": _bare_folder(primary.path, files, threads)}
    if torch_available():
        torch_art = next((a for a in arts if a.kind == "torch"), None) or next((a for a in arts if a.kind == "torchscript"), None)
        if torch_art is not None:
            results[f"torch DataLoader (2 workers, batch 16) + {torch_art.name}"] = _torch_folder(torch_art, files, spec, threads)
    ref_labels = results["bare onnxruntime script (2 threads, batch 16)"][0]
    bare_ips = len(files) / results["bare onnxruntime script (2 threads, batch 16)"][1]
    rows = []
    for name, (labels, secs) in results.items():
        ips = len(files) / secs
        agree = float(np.mean([a == b for a, b in zip(labels, ref_labels)])) if len(labels) == len(ref_labels) else None
        rows.append({"pipeline": name, "images": len(files), "seconds": secs, "images_per_s": ips,
                     "vs_bare": ips / bare_ips, "label_agreement_vs_bare": agree})
    return {"about": f"{len(files)} photos from {cfg.data}, decode -> label on CPU, threads {threads or 'default'}; "
                     "vs_bare = images/s ratio to the bare onnxruntime script.", "rows": rows}
