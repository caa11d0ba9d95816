"""Helpers of scripts/gpu-check.sh. `facts`: what this machine's GPU side can run, proved (torch on
CUDA by a matmul; ORT CUDA and TensorRT by a real inference through the runtime's own session, so
a provider onnxruntime-gpu merely lists does not count), as KEY=VALUE lines. `agreement`: how many
labels of a runtime --json run match a reference run. `summary`: the report's table, from the
benchmark, export and runtime results the script left in the report folder."""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path
from typing import Any


def _torch_facts(device_id: int) -> dict[str, str]:
    try:
        import torch
    except ImportError:
        return {"TORCH_CUDA": "0", "TORCH_WHY": "torch is not installed", "NGPU": "0"}
    if not torch.cuda.is_available():
        return {"TORCH_CUDA": "0", "NGPU": "0",
                "TORCH_WHY": f"torch {torch.__version__} sees no CUDA device (a CPU build, no driver, or "
                             "CUDA_VISIBLE_DEVICES hides them)"}
    n = torch.cuda.device_count()
    if device_id >= n:
        return {"TORCH_CUDA": "0", "NGPU": str(n), "TORCH_WHY": f"no CUDA device {device_id} (torch sees {n})"}
    a = torch.ones(64, 64, device=f"cuda:{device_id}")
    ok = bool(torch.allclose((a @ a).cpu(), torch.full((64, 64), 64.0)))
    with torch.cuda.device(device_id):
        bf16 = torch.cuda.is_bf16_supported()
    return {"TORCH_CUDA": "1" if ok else "0", "TORCH_WHY": "" if ok else "a 64x64 matmul on the GPU was wrong",
            "NGPU": str(n), "GPU_NAME": torch.cuda.get_device_name(device_id), "BF16": "1" if bf16 else "0"}


def _ort_facts(device_id: int) -> dict[str, str]:
    from catdog.benchmarks.doctor import probe_model, prove
    from catdog.runtime.engine.session import available_providers

    out = {"ORT_PROVIDERS": ",".join(available_providers())}
    with tempfile.TemporaryDirectory(prefix="catdog-gpu-check-") as tmp:
        probe, _ = probe_model(None, Path(tmp))
        for name, key in (("cuda", "ORT_CUDA"), ("tensorrt", "ORT_TRT")):
            if name not in available_providers():
                out[key], out[f"{key}_WHY"] = "0", f"this onnxruntime build has no {name} provider"
                continue
            row = prove(name, probe, None, device_id)
            out[key], out[f"{key}_WHY"] = ("1", "") if row["ok"] else ("0", str(row.get("error", "failed")))
    return out


def facts(device_id: int) -> None:
    got = {"GPU_NAME": "", "BF16": "0", **_torch_facts(device_id), **_ort_facts(device_id)}
    if not got["GPU_NAME"] and (got["ORT_CUDA"] == "1"):
        from catdog.runtime.engine.trt import gpu_name

        got["GPU_NAME"] = gpu_name(device_id)
    got["SLUG"] = re.sub(r"[^A-Za-z0-9.]+", "-", got["GPU_NAME"]).strip("-") or "unknown"
    for k, v in got.items():
        print(f"{k}={' '.join(str(v).split())}")  # one line each: the script reads KEY=VALUE


def _labels(path: Path) -> dict[str, str]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]  # every line is JSON
    return {r["source"]: r["label"] for r in rows}


def agreement(ref: Path, got: Path) -> None:
    a, b = _labels(ref), _labels(got)
    same = sum(1 for k in a if b.get(k) == a[k])
    print(f"{same}/{len(a)} labels as {ref.name} ({100.0 * same / max(1, len(a)):.2f}%)")


def _latency(rep: dict[str, Any], artifact: str, provider: str, batch: int) -> float | None:
    for r in rep["latency"]:
        if (r["artifact"], r["provider"], r["batch"], r["status"]) == (artifact, provider, batch, "ok"):
            return r["p50_ms"]
    return None


def _bench_lines(rep: dict[str, Any]) -> list[str]:
    lines = ["| row | batch 1 p50 ms | vs torch CUDA eager | batch 32 p50 ms | vs torch CUDA eager |",
             "|---|---|---|---|---|"]
    rows = [("torch-eager", "cuda"), ("torch-eager-amp", "cuda"), ("onnx-fp32", "cuda"), ("onnx-fp32", "tensorrt"),
            ("onnx-fp16", "cuda"), ("onnx-fp16", "tensorrt"), ("onnx-int8-trt", "tensorrt"), ("onnx-fp32", "cpu")]
    for art, prov in rows:
        cells = []
        for b in (1, 32):
            ms, ref = _latency(rep, art, prov, b), _latency(rep, "torch-eager", "cuda", b)
            cells += ["n/a" if ms is None else f"{ms:.2f}", f"{ref / ms:.2f}x" if ms and ref else "n/a"]
        lines.append(f"| {art} on {prov} | " + " | ".join(cells) + " |")
    return lines


def _export_lines(rep: dict[str, Any]) -> list[str]:
    lines = ["| artifact | top-1 agreement | max abs dprob | gates |", "|---|---|---|---|"]
    for a in rep["parity_sets"][0]["artifacts"]:
        gates = ", ".join(f"{g['name']} {'pass' if g['passed'] else 'FAIL' if g['passed'] is False else 'n/a'}"
                          for g in a["gates"])
        lines.append(f"| {a['name']} | {a['top1_agreement']:.4f} | {a['max_abs_prob']:.2e} | {gates} |")
    where = {a["name"]: a["latency_runtime"] for a in rep["artifacts"]}
    return lines + ["", f"parity and latency measured on: {', '.join(sorted(set(where.values())))}"]


def summary(folder: Path) -> None:
    parts = [f"# GPU check: {folder.name}", ""]
    from catdog.runtime.spine.fileio import atomic_write

    for name, title, fn in (("bench/report.json", "Latency (catdog-bench)", _bench_lines),
                            ("export/export-report.json", "Export parity", _export_lines)):
        path = folder / name
        parts += [f"## {title}", ""] + (fn(json.loads(path.read_text())) if path.is_file() else ["not run"]) + [""]
    for name in ("runtime.txt", "steps.txt"):
        if (folder / name).is_file():
            parts += [f"## {name[:-4]}", "", "```", (folder / name).read_text().rstrip(), "```", ""]
    text = "\n".join(parts)
    atomic_write(folder / "summary.md", text)
    print(text)


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="gpu_check.py")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("facts").add_argument("--device-id", type=int, default=0)
    ag = sub.add_parser("agreement")
    ag.add_argument("ref", type=Path)
    ag.add_argument("got", type=Path)
    sub.add_parser("summary").add_argument("folder", type=Path)
    args = ap.parse_args(argv)
    if args.cmd == "facts":
        facts(args.device_id)
    elif args.cmd == "agreement":
        agreement(args.ref, args.got)
    else:
        summary(args.folder)


if __name__ == "__main__":
    main(sys.argv[1:])
