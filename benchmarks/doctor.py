"""`catdog-bench doctor`: prove each execution provider by a real inference in a runtime session,
show what OpenCV can open and which cameras are visible. The first thing to run on a new box (or a
Jetson). The probe is a tiny real classifier graph built in memory with onnx.helper (Conv → ReLU →
GlobalAveragePool → Gemm) carrying catdog metadata; the tests benchmark it too. Its baked variant
takes NHWC uint8 crops and normalizes inside the graph, like --bake-preprocess."""

from __future__ import annotations

import glob
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from catdog.benchmarks.common.env import collect_env, env_lines
from catdog.benchmarks.grid.artifacts import resolve_providers, torch_available
from catdog.benchmarks.grid.compute import onnx_available
from catdog.runtime.engine.session import Session, available_providers, open_session
from catdog.runtime.spine.errors import ModelError, error_line
from catdog.runtime.spine.metadata import METADATA_KEY, ModelMetadata
from catdog.runtime.spine.spec import PreprocessSpec


def tiny_spec(size: int = 32) -> PreprocessSpec:
    return PreprocessSpec(size=size, resize=size + size // 8, interpolation="bilinear")


def tiny_classifier(size: int = 32, classes: tuple[str, ...] = ("cat", "dog"), baked: bool = False,
                    width: int = 8, seed: int = 0, batch: int | str = "N") -> bytes:
    """Serialized ONNX model; input 'input' (batch dim `batch`: "N" = dynamic), output 'logits'."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    spec = tiny_spec(size)
    inits = [
        numpy_helper.from_array(rng.standard_normal((width, 3, 3, 3)).astype(np.float32) * 0.3, "conv_w"),
        numpy_helper.from_array(rng.standard_normal(width).astype(np.float32) * 0.1, "conv_b"),
        numpy_helper.from_array(rng.standard_normal((len(classes), width)).astype(np.float32), "fc_w"),
        numpy_helper.from_array(rng.standard_normal(len(classes)).astype(np.float32) * 0.1, "fc_b"),
    ]
    nodes = []
    x = "input"
    if baked:  # uint8 NHWC crop -> float NCHW normalized: x * a - b with a = scale/std, b = mean/std
        std, mean = np.asarray(spec.std, np.float32), np.asarray(spec.mean, np.float32)
        inits += [numpy_helper.from_array((spec.scale / std).reshape(1, 3, 1, 1).astype(np.float32), "pre_a"),
                  numpy_helper.from_array((mean / std).reshape(1, 3, 1, 1).astype(np.float32), "pre_b")]
        nodes += [helper.make_node("Cast", ["input"], ["x_f"], to=TensorProto.FLOAT),
                  helper.make_node("Transpose", ["x_f"], ["x_t"], perm=[0, 3, 1, 2]),
                  helper.make_node("Mul", ["x_t", "pre_a"], ["x_m"]),
                  helper.make_node("Sub", ["x_m", "pre_b"], ["x_n"])]
        x = "x_n"
    nodes += [
        helper.make_node("Conv", [x, "conv_w", "conv_b"], ["c"], kernel_shape=[3, 3], strides=[2, 2],
                         pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["logits"], transB=1),
    ]
    if baked:
        inp = helper.make_tensor_value_info("input", TensorProto.UINT8, [batch, size, size, 3])
    else:
        inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, size, size])
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, len(classes)])
    graph = helper.make_graph(nodes, "catdog_tiny", [inp], [out], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = min(model.ir_version, 9)  # loadable by older onnxruntime (JetPack wheels)
    meta = ModelMetadata(classes=tuple(classes), spec=spec, arch="tiny",
                         input_format="uint8" if baked else "float")
    helper.set_model_props(model, {METADATA_KEY: meta.to_json()})
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _default_model() -> Path | None:
    """The model catdog.runtime ships as package data, if this install has one."""
    from catdog.runtime.engine.shipped import shipped_model

    try:
        return shipped_model("fp32")  # every provider runs fp32: the plainest proof
    except ModelError:
        return None


def probe_model(model: Path | None, tmp: Path) -> tuple[Path, str]:
    """(model file, description) to prove providers with; a built probe is written into `tmp`."""
    if model is not None:
        if not model.is_file():
            raise ModelError(f"{model}: no such model file")
        return model, str(model)
    if onnx_available():
        (tmp / "probe.onnx").write_bytes(tiny_classifier(32))
        return tmp / "probe.onnx", "a tiny Conv/Gemm classifier built in memory with onnx.helper"
    shipped = _default_model()
    if shipped is None:
        raise ModelError("cannot prove providers: install onnx (to build a probe model) or pass --model MODEL.onnx")
    return shipped, f"the shipped default model {shipped.name}"


def _feed(sess: Session) -> np.ndarray:
    shape = [d if isinstance(d, int) else 1 for d in sess.input_shape]
    rng = np.random.default_rng(0)
    if sess.input_type == "tensor(uint8)":
        return rng.integers(0, 256, shape, dtype=np.uint8)
    x = rng.standard_normal(shape).astype(np.float32)
    return x.astype(np.float16) if sess.input_type == "tensor(float16)" else x


def prove(provider: str, model: Path, reference: np.ndarray | None = None, device_id: int = 0) -> dict[str, Any]:
    """Open a runtime session on `provider` (it checks that onnxruntime really loaded it and, on a
    GPU, proves it with a warm-up inference), run it, compare with CPU."""
    row: dict[str, Any] = {"provider": provider, "ok": False}
    try:
        sess = open_session(model, provider, log=None, device_id=device_id)
        row["create_s"] = sess.create_s
        x = _feed(sess)
        t0 = time.perf_counter()
        y = sess.run(x)  # the first run of ours (a GPU session ran its warm-up already)
        row["first_run_ms"] = (time.perf_counter() - t0) * 1e3
        row["output_shape"] = list(y.shape)
        if not np.all(np.isfinite(y)):
            row["error"] = "output has NaN/inf"
            return row
        if reference is not None:
            row["max_abs_diff_vs_cpu"] = float(np.max(np.abs(y.astype(np.float32) - reference)))
        row["ok"] = True
        row["_y"] = y.astype(np.float32)
    except Exception as e:  # noqa: BLE001 - a provider that cannot run: record the one line, go on with the others
        row["error"] = error_line(e)
    return row


def cameras() -> list[str]:
    return sorted(glob.glob("/dev/video*"), key=lambda p: (len(p), p))


def torch_check(device_id: int = 0) -> dict[str, Any] | None:
    if not torch_available():
        return None
    import torch

    info: dict[str, Any] = {"version": torch.__version__, "cuda": torch.cuda.is_available()}
    if info["cuda"] and device_id < torch.cuda.device_count():
        a = torch.ones(64, 64, device=f"cuda:{device_id}")
        info["cuda_matmul_ok"] = bool(torch.allclose((a @ a).cpu(), torch.full((64, 64), 64.0)))
        info["device"] = torch.cuda.get_device_name(device_id)
    elif info["cuda"]:
        info["device"] = f"no CUDA device {device_id} (torch sees {torch.cuda.device_count()})"
    return info


def run_doctor(providers: list[str] | None = None, model: Path | None = None, device_id: int = 0) -> dict[str, Any]:
    """Everything doctor prints, as data. Requested providers that are absent raise ProviderError."""
    wanted = resolve_providers(providers)
    rows, ref = [], None
    with tempfile.TemporaryDirectory(prefix="catdog-doctor-") as tmp:
        probe, probe_desc = probe_model(model, Path(tmp))
        for p in ["cpu"] + [p for p in wanted if p != "cpu"]:
            row = prove(p, probe, ref, device_id)
            if p == "cpu":
                ref = row.get("_y")
            row.pop("_y", None)
            if p in wanted:
                rows.append(row)
    env = collect_env()
    return {"env": env, "env_lines": env_lines(env), "probe": probe_desc, "providers": rows,
            "available": available_providers(), "cameras": cameras(), "opencv": env["opencv"],
            "torch": torch_check(device_id)}


def doctor_lines(d: dict[str, Any]) -> list[str]:
    lines = list(d["env_lines"]) + ["", f"Providers (proved with {d['probe']}):"]
    for r in d["providers"]:
        if r["ok"]:
            diff = f", max |diff| vs CPU {r['max_abs_diff_vs_cpu']:.2e}" if "max_abs_diff_vs_cpu" in r else ""
            lines.append(f"  OK    {r['provider']:<9} session {r['create_s']:.3f} s, "
                         f"first run {r['first_run_ms']:.2f} ms, output {r['output_shape']}{diff}")
        else:
            lines.append(f"  FAIL  {r['provider']:<9} {r.get('error', 'unknown error')}")
    cv = d["opencv"]
    if cv:
        gst = "yes" if cv["gstreamer"] else "NO (no CSI/nvarguscamerasrc pipelines)"
        lines += ["", f"OpenCV {cv['version']}: GStreamer {gst}, "
                  f"V4L2 {'yes' if cv['v4l2'] else 'no'}, FFMPEG {'yes' if cv['ffmpeg'] else 'no'}, "
                  f"GUI {cv['gui'] or 'none (headless build: no --show window)'}"]
    else:
        lines += ["", "OpenCV: not installed (pip install opencv-python-headless, or JetPack's OpenCV on a Jetson)"]
    lines.append("Cameras: " + (", ".join(d["cameras"]) if d["cameras"] else "none visible (/dev/video*)"))
    t = d["torch"]
    if t:
        lines.append(f"torch {t['version']}: CUDA {'yes, ' + t['device'] if t['cuda'] else 'no'}")
    return lines
