"""Folder throughput (decode -> label) and the runtime's per-image overhead.

Folder: the runtime's Classifier (parallel decode, batch 16) vs the bare 40-line onnxruntime script
(bare_folder.py: 2 decode threads, batch 16), on the fp32 and the INT8 model, vs a torch DataLoader
(2 workers, batch 16) + the eager/TorchScript model when torch is installed. Same files, same
thread count, each timed from the model file to the last label, interleaved rounds, medians; files
read once beforehand so the page cache is warm for all.
Overhead: Classifier.predict(decoded image) vs the bare preprocess() + session.run on the same
decoded frames, interleaved."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any, Callable

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


ROUNDS = 3  # interleaved: each round runs every contender once, in a rotated order


def _runtime_folder(model: Path, files: list[Path], threads: int | None) -> list[str]:
    from catdog.runtime.classifier import Classifier

    # As catdog-runtime opens a model for files and folders (runtime/cli.py): no ORT spin-wait.
    clf = Classifier.from_file(model, provider="cpu", threads=threads, batch_size=16, workers=2, log=None,
                               spinning=False)
    return [p if isinstance(p, str) else p.label for _, p in clf.iter_predict(files)]


def _bare_folder(model: Path, files: list[Path], threads: int | None) -> list[str]:
    from catdog.benchmarks.bare_folder import classify_folder

    return classify_folder(model, files, threads)


def _torch_folder(art: Any, files: list[Path], spec: PreprocessSpec, threads: int | None) -> list[str]:
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
    labels = []
    for batch in DataLoader(Photos(), batch_size=16, num_workers=2, shuffle=False):
        labels += [classes[i] for i in runner.run(batch.numpy()).argmax(1)]
    return labels


def _contenders(primary: Any, arts: list, files: list[Path], spec: PreprocessSpec,
                threads: int | None) -> dict[str, tuple[str, Callable[[], list[str]]]]:
    """name -> (the bare contender it is compared with (torch: the fp32 one), how to run it from the
    model file to labels: session creation included, as a user's script would do it)."""
    from catdog.benchmarks.bench import torch_available

    int8 = [a for a in arts if a.kind == "onnx" and a is not primary and not a.uint8_input
            and (a.name == "onnx-int8" or (a.meta is not None and a.meta.precision == "int8"))]
    onnx = [primary] + int8[:1]
    out: dict[str, tuple[str, Callable[[], list[str]]]] = {}
    for art in onnx:
        bare = f"bare onnxruntime script, {art.name} (2 decode threads, batch 16)"
        out[f"runtime, {art.name} (Classifier, 2 decode threads, batch 16)"] = (
            bare, lambda a=art: _runtime_folder(a.path, files, threads))
        out[bare] = (bare, lambda a=art: _bare_folder(a.path, files, threads))
    if torch_available():
        torch_art = next((a for a in arts if a.kind == "torch"), None) or next((a for a in arts if a.kind == "torchscript"), None)
        if torch_art is not None:
            name = f"torch DataLoader (2 workers, batch 16) + {torch_art.name}"
            fp32_bare = next(iter(out.values()))[0]  # compared with the bare script on the fp32 model
            out[name] = (fp32_bare, lambda: _torch_folder(torch_art, files, spec, threads))
    return out


def folder_section(primary: Any, arts: list, cfg: Any, spec: PreprocessSpec) -> dict[str, Any]:
    from catdog.benchmarks.labels import labeled_images

    files = [p for p, _ in labeled_images(cfg.data, limit=cfg.accuracy_limit)]
    for f in files:  # warm the page cache for every contender alike
        f.read_bytes()
    # The most threads asked for (None: ORT's and torch's default, all cores): a folder run is
    # about throughput, and every contender gets the same number.
    threads = max((t for t in cfg.threads if t), default=None)
    contenders = _contenders(primary, arts, files, spec, threads)
    names = list(contenders)
    secs: dict[str, list[float]] = {n: [] for n in names}
    labels: dict[str, list[str]] = {}
    for r in range(ROUNDS):
        for name in names[r % len(names):] + names[: r % len(names)]:
            t0 = time.perf_counter()
            labels[name] = contenders[name][1]()
            secs[name].append(time.perf_counter() - t0)
    ips = {n: len(files) / statistics.median(secs[n]) for n in names}
    torch_ips = next((v for n, v in ips.items() if n.startswith("torch")), None)
    rows = []
    for name in names:
        bare = contenders[name][0]
        same_len = len(labels[name]) == len(labels[bare])
        agree = float(np.mean([a == b for a, b in zip(labels[name], labels[bare])])) if same_len else None
        rows.append({"pipeline": name, "images": len(files), "median_s": statistics.median(secs[name]),
                     "images_per_s": ips[name], "vs_bare": ips[name] / ips[bare],
                     "vs_torch": ips[name] / torch_ips if torch_ips else None, "label_agreement_vs_bare": agree})
    return {"about": f"{len(files)} photos from {cfg.data}, decode -> label on CPU, threads {threads or 'default (all cores)'}; "
                     f"median of {ROUNDS} interleaved rounds, each from the model file to the last label. vs_bare = "
                     "images/s ratio to the bare script on the same model; vs_torch = to the torch pipeline.",
            "rows": rows}
