"""The runtime against what a user would write by hand (the bare_*.py scripts beside this file) and
against torch: folder throughput and cold start.

Folder: the runtime's Classifier (parallel decode, batch 16) vs the bare 40-line onnxruntime script
(bare_folder.py: 2 decode threads, batch 16), on the fp32 and the INT8 model, vs a torch DataLoader
(2 workers, batch 16) + the eager/TorchScript model when torch is installed. Same files, same
thread count, each timed from the model file to the last label, interleaved rounds, medians; files
read once beforehand so the page cache is warm for all.

Cold start: a fresh process from exec to its first label, and that process's peak RSS. Each command
runs `runs` times; we report the median of time-to-first-label (the first stdout line carrying the
label), of time-to-exit, and of peak RSS. os.wait4's rusage cannot be used: Linux carries the
forking parent's high-water mark across fork/exec into the child's ru_maxrss. Peak RSS is the
child's VmHWM (/proc/PID/status: the high-water mark of its own, post-exec address space), read
every few ms while it runs, so only growth in its last few ms could be missed; without /proc
(macOS), psutil's RSS is polled instead. Compared: the runtime CLI (`python -m catdog.runtime IMG
--model M --json`), the bare onnxruntime script (bare_ort.py), and a torch pipeline (bare_torch.py
on model.ts or the checkpoint) when torch is installed. The bare scripts run as files, as a user's
script would: `python bare_ort.py MODEL IMAGE`."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from catdog.benchmarks.common.schema import ColdstartRow, FolderRow, Section
from catdog.benchmarks.common.timing import ratio
from catdog.benchmarks.grid.artifacts import Artifact, balanced, synthetic_image, torch_available
from catdog.benchmarks.grid.runners import make_runner
from catdog.benchmarks.run.sections import Inputs
from catdog.runtime.spine.errors import InputError, ModelError
from catdog.runtime.spine.records import Failure
from catdog.runtime.spine.spec import PreprocessSpec

HERE = Path(__file__).parent
ROUNDS = 3  # folder: interleaved; each round runs every contender once, in a rotated order


def _peak_rss_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    try:
        import psutil

        return psutil.Process(pid).memory_info().rss // 1024
    except Exception:  # gone, or psutil absent
        return None


class _RssWatch(threading.Thread):
    """Polls a child's peak RSS until told to stop (the child exiting ends the readings)."""

    def __init__(self, pid: int, every_s: float = 0.003):
        super().__init__(daemon=True)
        self.pid, self.every_s, self.peak_kb, self.done = pid, every_s, 0, threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            kb = _peak_rss_kb(self.pid)
            if kb:
                self.peak_kb = max(self.peak_kb, kb)
            time.sleep(self.every_s)


@dataclass(frozen=True)
class Launch:
    """One fresh process: seconds to its first label line and to its exit, its peak RSS, its stdout."""

    first_label_s: float
    exit_s: float
    peak_rss_mb: float | None
    output: str


def run_once(cmd: list[str], marker: str | None = None, timeout: float = 120.0,
             write_bytecode: bool = False) -> Launch:
    """Start `cmd`; time to the first stdout line containing `marker` (any line if None), time to
    exit, and the child's peak RSS in MB. Timed runs write no bytecode; `write_bytecode` is for the
    warm-up run that fills __pycache__ as any user's first run (or pip install) does."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    if not write_bytecode:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    watch = _RssWatch(p.pid)
    watch.start()
    first, lines = None, []
    assert p.stdout is not None
    for line in p.stdout:  # stdout closes when the child exits
        lines.append(line)
        if first is None and line.strip() and (marker is None or marker in line):
            first = time.perf_counter() - t0
        if time.perf_counter() - t0 > timeout:
            p.kill()
            break
    p.wait()
    exit_s = time.perf_counter() - t0
    watch.done.set()
    watch.join()
    err = p.stderr.read() if p.stderr else ""
    if p.returncode != 0 or first is None:
        last = (err.strip().splitlines() or ["no output"])[-1]
        raise InputError(f"cold-start command failed ({' '.join(cmd[:4])} ...): exit {p.returncode}: {last[:200]}")
    rss_mb = watch.peak_kb / 1024 if watch.peak_kb else None
    return Launch(first, exit_s, rss_mb, "".join(lines).strip())


def summarize(name: str, runs: list[Launch]) -> ColdstartRow:
    """Medians over fresh processes (plus min/max of time to first label)."""
    firsts = [r.first_label_s for r in runs]
    rss = [r.peak_rss_mb for r in runs]
    return ColdstartRow(
        name, len(runs), statistics.median(firsts), min(firsts), max(firsts),
        exit_s=statistics.median(r.exit_s for r in runs),
        peak_rss_mb=None if any(m is None for m in rss) else statistics.median(m for m in rss if m is not None),
        output=runs[0].output.splitlines()[0][:120])


def commands(model: Path, image: Path, torch_model: Path | None) -> dict[str, tuple[list[str], str | None]]:
    """name -> (command, marker of the first-label line)."""
    py = sys.executable
    out = {
        "runtime CLI": ([py, "-m", "catdog.runtime", str(image), "--model", str(model), "--provider", "cpu", "--json"],
                        '"label"'),
        "bare onnxruntime script": ([py, str(HERE / "bare_ort.py"), str(model), str(image)], None),
    }
    if torch_model is not None:
        out["torch pipeline"] = ([py, str(HERE / "bare_torch.py"), str(torch_model), str(image)], None)
    return out


def _coldstart_image(inp: Inputs) -> Path:
    if inp.photos is not None:
        return balanced(inp.photos, 1).paths[0]
    import cv2

    from catdog.runtime.spine.fileio import atomic_path

    image = inp.cfg.out_dir / "coldstart-input.jpg"  # the same fixed-seed image every artifact saw
    with atomic_path(image) as tmp:
        _, buf = cv2.imencode(".jpg", synthetic_image(0))
        tmp.write_bytes(buf.tobytes())
    return image


def coldstart_section(inp: Inputs) -> Section:
    primary, cfg = inp.need_primary(), inp.cfg
    image = _coldstart_image(inp)
    torch_model = None
    if torch_available():
        torch_model = next((a.path for a in inp.arts if a.kind == "torchscript"), None) or cfg.torch_ckpt
    cmds = commands(primary.path, image, torch_model)
    if inp.int8 is not None:  # the CPU default is INT8: its start against the bare script on the same file
        cmds.update({f"{k}, {inp.int8.name}": v for k, v in commands(inp.int8.path, image, None).items()})
    inp.log(f"cold start: {', '.join(cmds)}, interleaved x{cfg.coldstart_runs}")
    for cmd, marker in cmds.values():
        # Untimed: page cache, and the bytecode cache that an installed package has (pip compiles
        # it) but a source checkout under PYTHONDONTWRITEBYTECODE=1 never gets (+25 ms of compile).
        run_once(cmd, marker, write_bytecode=True)
    results: dict[str, list[Launch]] = {name: [] for name in cmds}
    for _ in range(cfg.coldstart_runs):  # interleaved: a slow spell of the machine hits every contender
        for name, (cmd, marker) in cmds.items():
            results[name].append(run_once(cmd, marker))
    rows = [summarize(name, res) for name, res in results.items()]
    bases = {r.pipeline: r for r in rows if r.pipeline.startswith("bare onnxruntime script")}

    def base(r: ColdstartRow) -> ColdstartRow:  # the bare script on the same model file (torch: the fp32 one)
        suffix = f", {inp.int8.name}" if inp.int8 is not None and r.pipeline.endswith(f", {inp.int8.name}") else ""
        return bases["bare onnxruntime script" + suffix]

    rows = [replace(r, vs_bare_time=r.first_label_s / base(r).first_label_s,
                    vs_bare_rss=ratio(r.peak_rss_mb, base(r).peak_rss_mb),
                    vs_bare_exit=r.exit_s / base(r).exit_s) for r in rows]
    models = primary.path.name + (f" and {inp.int8.path.name}" if inp.int8 is not None else "")
    return Section(f"Fresh process -> first label for {image.name} with {models}, median of "
                   f"{cfg.coldstart_runs} interleaved runs; peak RSS = the child's VmHWM. vs_bare = ratio to the bare "
                   "onnxruntime script on the same model.", tuple(rows), image=str(image))


def folder_classifier(model: Path, threads: int | None, *, full_decode: bool = False) -> Any:
    """The model as catdog-runtime opens it for a folder (runtime/cli/__init__.py): CPU, batch 16, 2 decode
    threads, no ORT spin-wait. Every folder-throughput figure of the benchmarks runs this."""
    from catdog.runtime.engine.classifier import Classifier

    return Classifier.from_file(model, provider="cpu", threads=threads, batch_size=16, workers=2, log=None,
                                spinning=False, full_decode=full_decode)


def _runtime_folder(model: Path, files: list[Path], threads: int | None) -> list[str]:
    clf = folder_classifier(model, threads)
    return [p.message if isinstance(p, Failure) else p.label for _, p in clf.iter_predict(files)]


def _bare_folder(model: Path, files: list[Path], threads: int | None) -> list[str]:
    from catdog.benchmarks.run.bare_folder import classify_folder

    return classify_folder(model, files, threads)


def _torch_folder(art: Artifact, files: list[Path], spec: PreprocessSpec, threads: int | None) -> list[str]:
    import torch
    from torch.utils.data import DataLoader, Dataset

    from catdog.runtime.spine.images import read_image
    from catdog.runtime.spine.preprocess import preprocess

    class Photos(Dataset):
        def __len__(self) -> int:
            return len(files)

        def __getitem__(self, i: int) -> torch.Tensor:
            return torch.from_numpy(preprocess(read_image(files[i], spec), spec)[0])

    if art.meta is None:
        raise ModelError(f"{art.path}: carries no catdog metadata (class names); cannot label a folder with it")
    runner = make_runner(art, "cpu", threads)
    classes = art.meta.classes
    labels = []
    for batch in DataLoader(Photos(), batch_size=16, num_workers=2, shuffle=False):
        labels += [classes[i] for i in runner.run(batch.numpy()).argmax(1)]
    return labels


Contender = tuple[str, Callable[[], list[str]]]  # (the bare contender it is compared with, model file -> labels)


def _contenders(inp: Inputs, files: list[Path], threads: int | None) -> dict[str, Contender]:
    """name -> (the bare contender it is compared with (torch: the fp32 one), how to run it from the
    model file to labels: session creation included, as a user's script would do it)."""
    primary, arts = inp.need_primary(), inp.arts
    int8 = [inp.int8] if inp.int8 else []
    out: dict[str, Contender] = {}
    for art in [primary] + int8[:1]:
        bare = f"bare onnxruntime script, {art.name} (2 decode threads, batch 16)"
        out[f"runtime, {art.name} (Classifier, 2 decode threads, batch 16)"] = (
            bare, lambda a=art: _runtime_folder(a.path, files, threads))
        out[bare] = (bare, lambda a=art: _bare_folder(a.path, files, threads))
    if torch_available():
        torch_art = (next((a for a in arts if a.kind == "torch"), None)
                     or next((a for a in arts if a.kind == "torchscript"), None))
        if torch_art is not None:
            name = f"torch DataLoader (2 workers, batch 16) + {torch_art.name}"
            fp32_bare = next(iter(out.values()))[0]  # compared with the bare script on the fp32 model
            out[name] = (fp32_bare, lambda: _torch_folder(torch_art, files, inp.spec, threads))
    return out


def folder_section(inp: Inputs) -> Section:
    cfg = inp.cfg
    files = balanced(inp.need_photos(), cfg.accuracy_limit).paths
    for f in files:  # warm the page cache for every contender alike
        f.read_bytes()
    # The most threads asked for (None: ORT's and torch's default, all cores): a folder run is
    # about throughput, and every contender gets the same number.
    threads = max((t for t in cfg.threads if t), default=None)
    contenders = _contenders(inp, files, threads)
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
        agree = float(np.mean([a == b for a, b in zip(labels[name], labels[bare], strict=True)])) if same_len else None
        rows.append(FolderRow(name, len(files), statistics.median(secs[name]), ips[name], ips[name] / ips[bare],
                              ips[name] / torch_ips if torch_ips else None, agree))
    return Section(f"{len(files)} photos from {cfg.data}, decode -> label on CPU, threads "
                   f"{threads or 'default (all cores)'}; median of {ROUNDS} interleaved rounds, each from the model "
                   "file to the last label. vs_bare = images/s ratio to the bare script on the same model; vs_torch = "
                   "to the torch pipeline.", tuple(rows))
