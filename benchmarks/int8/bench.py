"""catdog-bench int8: CPU INT8 models against their fp32, side by side in one run on this CPU.
Errors on labelled evaluation folders (the runtime's own decode and preprocess), speed at each
batch x thread count (interleaved blocks, medians, ratios), and where the INT8 time goes (ORT's
profiler: per op type, and depthwise vs other convolutions against the same layers in fp32).
Every speed figure is named with the CPU's integer path (runtime/spine/isa.py)."""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from catdog.benchmarks.common.config import LoopConfig
from catdog.benchmarks.common.timing import interleaved, latency_stats
from catdog.export.builders.meta import read_onnx_metadata
from catdog.runtime.engine.classifier import Classifier
from catdog.runtime.engine.session import open_session
from catdog.runtime.spine.folders import scan
from catdog.runtime.spine.images import read_image
from catdog.runtime.spine.isa import int8_path
from catdog.runtime.spine.preprocess import preprocess_batch
from catdog.runtime.spine.records import Failure


@dataclass(frozen=True)
class Int8BenchConfig:
    fp32: Path
    int8: tuple[Path, ...]  # each compared with fp32, each with its own target lines
    data: tuple[Path, ...]  # labelled evaluation folders (class folders or cat.1.jpg names)
    out_dir: Path
    batches: tuple[int, ...] = (1, 16)
    threads: tuple[int, ...] = (1, 2)
    iters: int = 40  # timed runs per model at batch 1 (fewer at larger batches, same seconds roughly)
    command: str = ""
    names: tuple[str, ...] = field(default=())  # report names of the int8 models (default: file names)


def errors(models: dict[str, Path], folder: Path) -> dict[str, Any]:
    """Each model's errors on one labelled folder, and which photos each gets wrong."""
    first = read_onnx_metadata(next(iter(models.values())))
    data = scan(folder, first.classes)
    truth = {Path(p).name: data.classes[y] for p, y in data.samples}
    out: dict[str, Any] = {"folder": str(folder), "n": len(truth), "models": {}}
    for name, path in models.items():
        clf = Classifier.from_file(path, provider="cpu", log=None)
        answers = {}
        for src, pred in clf.iter_predict([p for p, _ in data.samples]):
            answers[str(src)] = {"class": pred.message, "score": 0.0} if isinstance(pred, Failure) else \
                {"class": pred.label, "score": float(pred.score)}
        wrong = sorted(Path(k).name for k, v in answers.items() if v["class"] != truth[Path(k).name])
        out["models"][name] = {"errors": len(wrong), "wrong": wrong, "answers": answers}
    ref = out["models"]["fp32"]["answers"]
    for rec in out["models"].values():
        rec["disagree_with_fp32"] = sum(rec["answers"][k]["class"] != ref[k]["class"] for k in ref)
        # the photos whose class differs from fp32's, the most confident fp32 answer first
        # (export/output/gallery.py's rows)
        rows = [{"file": Path(k).name, "path": k, "label": truth[Path(k).name], "fp32": ref[k], "int8": a}
                for k, a in rec["answers"].items() if a["class"] != ref[k]["class"]]
        rec["disagreements"] = sorted(rows, key=lambda r: -r["fp32"]["score"])
    for rec in out["models"].values():
        del rec["answers"]
    return out


def write_galleries(report: dict[str, Any], out_dir: Path) -> None:
    """A PNG grid of each INT8 model's disagreements with fp32 per set (export/output/gallery.py's grid)."""
    import cv2

    from catdog.export.output.gallery import grid
    from catdog.runtime.spine.fileio import atomic_write

    for i, s in enumerate(report["accuracy"], start=1):
        for name, rec in s["models"].items():
            rows = rec["disagreements"]
            if name == "fp32" or not rows:
                continue
            rows = [dict(r, index=k) for k, r in enumerate(rows)]
            png = cv2.imencode(".png", grid([read_image(r["path"]) for r in rows], rows, name))[1].tobytes()
            file = f"{name}-disagreements-{i}.png"
            atomic_write(out_dir / file, png)
            rec["gallery"] = file


def speed(models: dict[str, Path], x: np.ndarray, cfg: Int8BenchConfig, log: Callable[[str], None]) -> list[dict]:
    """Median latency of every model per (threads, batch, spin-wait), interleaved per group."""
    rows = []
    for threads in cfg.threads:
        spins = (True, False) if threads > 1 else (True,)  # one thread has no pool to spin
        for spin in spins:
            sessions = {n: open_session(p, "cpu", threads=threads, log=None, spinning=spin, batches=cfg.batches)
                        for n, p in models.items()}
            for b in cfg.batches:
                xb = np.ascontiguousarray(x[np.arange(b) % len(x)])
                iters = max(8, cfg.iters // b * 4) if b > 1 else cfg.iters
                log(f"speed: {threads} thread(s), batch {b}, spin-wait {'on' if spin else 'off'}")
                fns = {n: (lambda s=s, xb=xb: s.run(xb)) for n, s in sessions.items()}
                samples = interleaved(fns, LoopConfig(warmup=3, iters=iters, block=4))
                p50 = {n: latency_stats(v, b).p50_ms for n, v in samples.items()}
                for n in models:
                    rows.append({"model": n, "threads": threads, "batch": b, "spinning": spin, "p50_ms": p50[n],
                                 "img_s": 1000.0 * b / p50[n], "speedup_vs_fp32": p50["fp32"] / p50[n],
                                 "runs": len(samples[n])})
    return rows


def conv_kind(weight: list[int], group: int) -> str:
    """A convolution's kind from its weight's [O, I/group, kh, kw]: the stem (on the image's <= 4
    channels), depthwise, pointwise (1x1) or other. Why kinds: ORT's INT8 kernels differ by kind far
    more than by layer (on AVX2 depthwise INT8 barely beats fp32 while pointwise nearly doubles)."""
    if group > 1 and weight[1] == 1:
        return "depthwise"
    if group == 1 and weight[1] <= 4:
        return "stem"
    return "pointwise" if list(weight[2:]) == [1, 1] else "other"


def conv_weights(path: Path) -> dict[str, tuple[list[int], int]]:
    """Conv node name -> (weight dims, group), through a DequantizeLinear for a QDQ graph."""
    import onnx

    g = onnx.load(str(path), load_external_data=False).graph
    dims = {t.name: list(t.dims) for t in g.initializer}
    for n in g.node:
        if n.op_type == "DequantizeLinear" and n.input[0] in dims:
            dims[n.output[0]] = dims[n.input[0]]
    return {n.name: (dims[n.input[1]], next((a.i for a in n.attribute if a.name == "group"), 1))
            for n in g.node if n.op_type == "Conv" and n.input[1] in dims}


CONV_OPS = frozenset({"Conv", "FusedConv", "QLinearConv", "ConvInteger", "NhwcFusedConv"})


def _event_kind(e: dict, weights: dict[str, tuple[list[int], int]]) -> str:
    """The kind of a profiled conv node: by its source node's name (ORT keeps it in fused INT8 nodes,
    adding "_token_N"), else by the float weight shape the profiler records (fp32 NCHWc convs)."""
    name = re.sub(r"(_token_\d+|_nchwc)$", "", e["name"][:-len("_kernel_time")])
    if name in weights:
        return conv_kind(*weights[name])
    shapes = [next(iter(d.values())) for d in e["args"].get("input_type_shape", [])]
    if len(shapes) > 1 and len(shapes[0]) == 4 and len(shapes[1]) == 4 and shapes[1][1]:
        return conv_kind(shapes[1], max(1, shapes[0][1] // shapes[1][1]))
    return "other"


def _profile(path: Path, x1: np.ndarray, runs: int = 10) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """(ms per run by op type, {conv kind: {layers, ms}}) from ORT's profiler (1 thread, batch 1)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    opts.enable_profiling = True
    with tempfile.TemporaryDirectory(prefix="catdog-prof-") as tmp:
        opts.profile_file_prefix = os.path.join(tmp, "p")
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        for _ in range(runs):
            sess.run(None, {name: x1})
        events = json.loads(Path(sess.end_profiling()).read_text())
    weights = conv_weights(path)
    ops: dict[str, float] = defaultdict(float)
    kinds: dict[str, dict[str, float]] = defaultdict(lambda: {"layers": 0.0, "ms": 0.0})
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            op = e["args"]["op_name"]
            ops[op] += e["dur"] / runs / 1000.0
            if op in CONV_OPS:
                k = kinds[_event_kind(e, weights)]
                k["layers"] += 1 / runs
                k["ms"] += e["dur"] / runs / 1000.0
    return dict(ops), {k: {"layers": round(v["layers"]), "ms": v["ms"]} for k, v in kinds.items()}


def _conv_groups(path: Path) -> tuple[int, int]:
    """(depthwise convs, other convs) of an ONNX graph."""
    kinds = [conv_kind(*w) for w in conv_weights(path).values()]
    return kinds.count("depthwise"), len(kinds) - kinds.count("depthwise")


def profiles(models: dict[str, Path], x1: np.ndarray) -> dict[str, Any]:
    """Where each model's batch-1 time goes, per op type and per conv kind (profiled, so slower than
    the speed rows)."""
    both = {name: _profile(path, x1) for name, path in models.items()}
    dw, other = _conv_groups(models["fp32"])
    return {"ops": {n: v[0] for n, v in both.items()}, "conv_kinds": {n: v[1] for n, v in both.items()},
            "depthwise_convs": dw, "other_convs": other}


def run_int8_bench(cfg: Int8BenchConfig, log: Callable[[str], None] = lambda m: None) -> dict[str, Any]:
    from catdog.benchmarks.common.env import collect_env

    names = cfg.names or tuple(p.name for p in cfg.int8)
    models = {"fp32": cfg.fp32, **dict(zip(names, cfg.int8, strict=True))}
    meta = read_onnx_metadata(cfg.fp32)
    photos = scan(cfg.data[0], meta.classes).samples[:32] if cfg.data else []
    x = preprocess_batch([read_image(p, meta.spec) for p, _ in photos], meta.spec)
    report: dict[str, Any] = {"command": cfg.command, "env": collect_env(), "int8_path": int8_path(),
                              "models": {n: str(p) for n, p in models.items()},
                              "int8_records": {n: read_onnx_metadata(p).extra.get("int8")
                                               for n, p in models.items() if n != "fp32"}}
    report["accuracy"] = []
    for folder in cfg.data:
        log(f"errors: {folder}")
        report["accuracy"].append(errors(models, folder))
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    write_galleries(report, cfg.out_dir)
    report["speed"] = speed(models, x, cfg, log)
    log("profile")
    report["profile"] = profiles(models, x[:1])
    from catdog.benchmarks.int8.report import write_int8_report

    write_int8_report(report, cfg.out_dir)
    return report
