"""CPU latency of several exported backbones in ONE interleaved run, so their ratios are fair
(catdog-bench compares artifacts of one preprocessing spec; backbones differ in input size).

    python scripts/backbone_latency.py EXPORT_DIR [EXPORT_DIR ...] [--threads 1,2] [--iters 200]

Each EXPORT_DIR holds model.onnx and model.int8.onnx (catdog-export). Batch 1, one real photo
through the spine's preprocess, the runtime's own session builder; medians of interleaved blocks.
Prints a Markdown table and names the CPU's vector ISA beside it."""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

from catdog.benchmarks.common.config import LoopConfig
from catdog.benchmarks.common.env import cpu_info
from catdog.benchmarks.common.timing import interleaved, latency_stats
from catdog.runtime.engine.session import open_session
from catdog.runtime.spine.artifacts import ARTIFACTS
from catdog.runtime.spine.images import read_image
from catdog.runtime.spine.metadata import from_metadata_map
from catdog.runtime.spine.preprocess import preprocess

PHOTO = Path(__file__).parents[1] / "samples" / "dog.4003.jpg"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("exports", nargs="+", type=Path)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--iters", type=int, default=200)
    args = ap.parse_args()
    image = read_image(PHOTO)
    fns, labels = {}, {}
    for threads in (int(t) for t in args.threads.split(",")):
        for folder in args.exports:
            for name in ("onnx", "int8"):
                sess = open_session(folder / ARTIFACTS[name].filename, provider="cpu", threads=threads, log=None)
                meta = from_metadata_map(sess.metadata_map, str(folder))
                x = preprocess(image, meta.spec)
                key = f"{meta.arch} {ARTIFACTS[name].precision} t{threads}"
                fns[key] = (lambda s=sess, x=x: s.run(x))
                labels[key] = (meta.arch, meta.spec.size, ARTIFACTS[name].precision, threads)
    samples = interleaved(fns, LoopConfig(warmup=10, iters=args.iters, block=10))
    env = cpu_info()
    isa = ", ".join(k for k, v in env["isa"].items() if v) or platform.machine()
    print(f"CPU: {env['cpu']} ({isa}), {env['cores_logical']} logical cores; "
          f"batch 1, {args.iters} interleaved runs each, median (p90)\n")
    print("| backbone | input | precision | threads | ms p50 | ms p90 |")
    print("|---|---:|---|---:|---:|---:|")
    for key, s in samples.items():
        st = latency_stats(s, 1)
        arch, size, precision, threads = labels[key]
        print(f"| {arch} | {size} | {precision} | {threads} | {st.p50_ms:.2f} | {st.p90_ms:.2f} |")


if __name__ == "__main__":
    main()
