"""`catdog-bench doctor`: prove each execution provider by a real inference, show what OpenCV can
open and which cameras are visible. The first thing to run on a new box (or a Jetson)."""

from __future__ import annotations

import glob
import time
from pathlib import Path
from typing import Any

import numpy as np

from catdog.runtime.errors import ModelError

from catdog.benchmarks.backends import PROVIDERS, available_providers, ort_provider_list, resolve_providers
from catdog.benchmarks.env import collect_env, env_lines
from catdog.benchmarks.flops import onnx_available


def _default_model() -> Path | None:
    """The model catdog.runtime ships as package data, if this install has one."""
    from catdog.runtime.errors import ModelError
    from catdog.runtime.shipped import shipped_model

    try:
        return shipped_model("fp32")  # every provider runs fp32: the plainest proof
    except ModelError:
        return None


def probe_model(model: Path | None) -> tuple[Any, str]:
    """(model bytes or path, description) to prove providers with."""
    if model is not None:
        if not model.is_file():
            raise ModelError(f"{model}: no such model file")
        return str(model), str(model)
    if onnx_available():
        from catdog.benchmarks.tinymodel import tiny_classifier

        return tiny_classifier(32), "a tiny Conv/Gemm classifier built in memory with onnx.helper"
    shipped = _default_model()
    if shipped is None:
        raise ModelError("cannot prove providers: install onnx (to build a probe model) or pass --model MODEL.onnx")
    return str(shipped), f"the shipped default model {shipped.name}"


def _feed(sess: Any) -> dict[str, np.ndarray]:
    inp = sess.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in inp.shape]
    rng = np.random.default_rng(0)
    if inp.type == "tensor(uint8)":
        return {inp.name: rng.integers(0, 256, shape, dtype=np.uint8)}
    x = rng.standard_normal(shape).astype(np.float32)
    return {inp.name: x.astype(np.float16) if inp.type == "tensor(float16)" else x}


def prove(provider: str, model: Any, reference: np.ndarray | None = None) -> dict[str, Any]:
    """Create a session on `provider`, check it really runs there, run it, compare with CPU."""
    import onnxruntime as ort

    row: dict[str, Any] = {"provider": provider, "ok": False}
    try:
        t0 = time.perf_counter()
        sess = ort.InferenceSession(model, providers=ort_provider_list(provider))
        row["create_s"] = time.perf_counter() - t0
        got = sess.get_providers()
        if got[0] != PROVIDERS[provider].ort:
            row["error"] = f"session fell back to {got[0]} (libraries missing or GPU not visible)"
            return row
        feed = _feed(sess)
        t0 = time.perf_counter()
        y = sess.run(None, feed)[0]
        row["first_run_ms"] = (time.perf_counter() - t0) * 1e3
        row["output_shape"] = list(y.shape)
        if not np.all(np.isfinite(y)):
            row["error"] = "output has NaN/inf"
            return row
        if reference is not None:
            row["max_abs_diff_vs_cpu"] = float(np.max(np.abs(y.astype(np.float32) - reference)))
        row["ok"] = True
        row["_y"] = y.astype(np.float32)
    except Exception as e:  # a provider that cannot run: record the one line, go on with the others
        row["error"] = str(e).strip().splitlines()[0][:300]
    return row


def cameras() -> list[str]:
    return sorted(glob.glob("/dev/video*"), key=lambda p: (len(p), p))


def torch_check() -> dict[str, Any] | None:
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return None
    import torch

    info: dict[str, Any] = {"version": torch.__version__, "cuda": torch.cuda.is_available()}
    if info["cuda"]:
        a = torch.ones(64, 64, device="cuda")
        info["cuda_matmul_ok"] = bool(torch.allclose((a @ a).cpu(), torch.full((64, 64), 64.0)))
        info["device"] = torch.cuda.get_device_name(0)
    return info


def run_doctor(providers: list[str] | None = None, model: Path | None = None) -> dict[str, Any]:
    """Everything doctor prints, as data. Requested providers that are absent raise ProviderError."""
    wanted = resolve_providers(providers)
    probe, probe_desc = probe_model(model)
    rows, ref = [], None
    for p in ["cpu"] + [p for p in wanted if p != "cpu"]:
        row = prove(p, probe, ref)
        if p == "cpu":
            ref = row.get("_y")
        row.pop("_y", None)
        if p in wanted:
            rows.append(row)
    env = collect_env()
    return {"env": env, "env_lines": env_lines(env), "probe": probe_desc, "providers": rows,
            "available": available_providers(), "cameras": cameras(), "opencv": env["opencv"],
            "torch": torch_check()}


def doctor_lines(d: dict[str, Any]) -> list[str]:
    lines = list(d["env_lines"]) + ["", f"Providers (proved with {d['probe']}):"]
    for r in d["providers"]:
        if r["ok"]:
            diff = f", max |diff| vs CPU {r['max_abs_diff_vs_cpu']:.2e}" if "max_abs_diff_vs_cpu" in r else ""
            lines.append(f"  OK    {r['provider']:<9} session {r['create_s']:.3f} s, first run {r['first_run_ms']:.2f} ms, output {r['output_shape']}{diff}")
        else:
            lines.append(f"  FAIL  {r['provider']:<9} {r.get('error', 'unknown error')}")
    cv = d["opencv"]
    if cv:
        lines += ["", f"OpenCV {cv['version']}: GStreamer {'yes' if cv['gstreamer'] else 'NO (no CSI/nvarguscamerasrc pipelines)'}, "
                  f"V4L2 {'yes' if cv['v4l2'] else 'no'}, FFMPEG {'yes' if cv['ffmpeg'] else 'no'}, "
                  f"GUI {cv['gui'] or 'none (headless build: no --show window)'}"]
    else:
        lines += ["", "OpenCV: not installed (pip install opencv-python-headless, or JetPack's OpenCV on a Jetson)"]
    lines.append("Cameras: " + (", ".join(d["cameras"]) if d["cameras"] else "none visible (/dev/video*)"))
    t = d["torch"]
    if t:
        lines.append(f"torch {t['version']}: CUDA {'yes, ' + t['device'] if t['cuda'] else 'no'}")
    return lines
