"""What one `catdog-runtime` run is told: RunOptions (a frozen dataclass: the one place each
default is written) and OPTIONS, the table of its flags, help and ranges, from which both the
quick parser and the typer command are built (runtime/cli/). Imports the spine only."""

from __future__ import annotations

import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Optional

from catdog.runtime.spine.errors import InputError

LOCAL_RAY = "local"  # `--ray` alone: Ray's own address for "start a new local instance" (runtime/scale/driver.py)


def _floats3(text: Optional[str], flag: str) -> Optional[tuple[float, float, float]]:
    if text is None:
        return None
    try:
        vals = tuple(float(v) for v in text.replace(" ", ",").split(",") if v)
    except ValueError:
        vals = ()
    if len(vals) == 1:
        vals = vals * 3
    if len(vals) != 3:
        raise InputError(f"{flag} needs 1 or 3 numbers like 0.485,0.456,0.406, got {text!r}")
    return vals  # type: ignore[return-value]


@dataclass(frozen=True)
class RunOptions:
    """Everything one `catdog-runtime` run is told; the CLI's defaults are these."""

    source: Optional[str] = None
    model: Optional[Path] = None
    provider: str = "auto"
    threads: Optional[int] = None
    batch: int = 16
    workers: int = 2
    recursive: bool = False
    json_out: bool = False
    csv_path: Optional[Path] = None
    labels: Optional[Path] = None
    size: Optional[int] = None
    mean: Optional[str] = None
    std: Optional[str] = None
    bgr: bool = False
    scale: Optional[float] = None
    csi: Optional[int] = None
    show: bool = False
    save: Optional[Path] = None
    smooth: int = 1
    topk: int = 1
    realtime: bool = False
    max_frames: Optional[int] = None
    reconnects: int = 10
    timings: bool = False  # --timings: per-frame stage times in each --json line (live.loop.TIMING_KEYS)
    trt_fp16: bool = False
    trt_int8: bool = False
    trt_cache: Optional[Path] = None
    device_id: int = 0
    unsure_below: Optional[float] = None
    full_decode: bool = False
    ray: Optional[str] = None  # --ray [ADDRESS]: LOCAL_RAY when given alone (runtime/scale/driver.py)
    out: Optional[Path] = None
    resume: bool = False
    actors: Optional[int] = None
    gpus_per_actor: float = 1.0
    serve: Optional[str] = None  # --serve [HOST:]PORT (runtime/serve/)
    token: Optional[str] = None
    token_file: Optional[Path] = None
    no_auth: bool = False
    allow_host: tuple[str, ...] = ()  # --allow-host NAME, repeatable
    max_viewers: int = 8
    stream_fps: float = 15.0
    max_body_mb: float = 20.0
    request_timeout: float = 10.0
    idle_timeout: float = 10.0
    batch_wait_ms: float = 5.0
    cors: Optional[str] = None


@dataclass(frozen=True)
class Opt:
    flags: tuple[str, ...]  # the first is the long name
    help: str
    min: float | None = None
    max: float | None = None
    repeatable: bool = False  # the flag may be given several times; the field is a tuple of the values


SOURCE_HELP = "image, folder, glob, video, camera index, /dev/videoN, URL, or gst:PIPELINE (GStreamer)"


OPTIONS: dict[str, Opt] = {  # RunOptions' fields but `source` (the argument), in --help order
    "model": Opt(("--model", "-m"),
                 "ONNX model file, or fp32 / int8 for a shipped one (default: int8 on CPU, fp32 on GPU)"),
    "provider": Opt(("--provider",), "auto | cpu | cuda | tensorrt | openvino | coreml | dml | rocm"),
    "threads": Opt(("--threads",), "CPU threads for onnxruntime (per actor with --ray)"),
    "batch": Opt(("--batch",), "images per inference on folders", min=1),
    "workers": Opt(("--workers",), "decode threads on folders (per actor with --ray)", min=1),
    "recursive": Opt(("--recursive", "-r"), "include subfolders"),
    "json_out": Opt(("--json",), "JSON lines on stdout, one per input"),
    "csv_path": Opt(("--csv",), "also write results to this CSV file"),
    "labels": Opt(("--labels",), "class names for a model without catdog metadata"),
    "size": Opt(("--size",), "input size (third-party models)"),
    "mean": Opt(("--mean",), "per-channel mean, e.g. 0.485,0.456,0.406"),
    "std": Opt(("--std",), "per-channel std, e.g. 0.229,0.224,0.225"),
    "bgr": Opt(("--bgr",), "the model takes BGR channel order"),
    "scale": Opt(("--scale",), "pixel multiplier before mean/std (default 1/255)"),
    "csi": Opt(("--csi",), "Jetson CSI camera sensor id (builds the nvarguscamerasrc pipeline)"),
    "show": Opt(("--show",), "open a window with the overlay (q quits)"),
    "save": Opt(("--save",), "write the annotated video here (.mp4 or .avi)"),
    "smooth": Opt(("--smooth",), "average the last N frames' probabilities", min=1),
    "topk": Opt(("--topk",), "show the top K classes", min=1),
    "realtime": Opt(("--realtime",), "play video files at their frame rate, dropping frames"),
    "max_frames": Opt(("--max-frames",), "stop after N frames", min=1),
    "reconnects": Opt(("--reconnects",),
                      "reopen a dropped camera/stream up to N times in a row (backoff 0.5 s doubling to 8 s)", min=0),
    "timings": Opt(("--timings",), "videos, cameras, streams: each --json line gets this frame's \"timings\" in ms: "
                   "wait_ms (for the camera's next frame), decode_ms (capture thread CPU), preprocess_ms, "
                   "inference_ms, age_ms (arrival to label)"),
    "trt_fp16": Opt(("--trt-fp16",), "TensorRT: allow fp16 kernels"),
    "trt_int8": Opt(("--trt-int8",), "TensorRT: INT8 (symmetric QDQ models: catdog-export --int8-for tensorrt)"),
    "trt_cache": Opt(("--trt-cache",), "TensorRT engine cache folder"),
    "device_id": Opt(("--device-id",), "GPU to run on (CUDA / TensorRT providers)", min=0),
    "unsure_below": Opt(("--unsure-below",), "label a photo or frame 'unsure' when its top (calibrated) "
                        "probability is below this, e.g. 0.8", min=0.0, max=1.0),
    "full_decode": Opt(("--full-decode",), "decode JPEGs at full size (default: libjpeg's 1/2, 1/4 or 1/8 scale "
                       "when the photo is still at least the model's resize; 2-3x faster on phone photos)"),
    "ray": Opt(("--ray",), "classify on Ray: alone, a local Ray; with HOST:6379, ray://HOST:10001 or auto, "
               "join that cluster (runtime/scale/driver.py)"),
    "out": Opt(("--out",), "--ray: folder of Parquet part files for the results"),
    "resume": Opt(("--resume",), "--ray: skip the inputs already in --out"),
    "actors": Opt(("--actors",), "--ray: actors (default: CPUs / --threads, or GPUs)", min=1),
    "gpus_per_actor": Opt(("--gpus-per-actor",), "--ray with --provider cuda", min=0.01),
    "serve": Opt(("--serve",), "serve the live view and an HTTP API on [HOST:]PORT (default host 127.0.0.1); "
                 "without SOURCE, the API alone"),
    "token": Opt(("--token",), "--serve: the token every route but /healthz needs (or --token-file, or "
                 "CATDOG_TOKEN); required off loopback"),
    "token_file": Opt(("--token-file",), "--serve: read the token from this file (mode 600), which keeps it out "
                      "of the process list"),
    "no_auth": Opt(("--no-auth",), "--serve: no token even off loopback (warned about)"),
    "allow_host": Opt(("--allow-host",), "--serve: also answer requests whose Host: is NAME (repeatable; by "
                      "default only loopback names and the address served on; '*': any)", repeatable=True),
    "max_viewers": Opt(("--max-viewers",), "--serve: MJPEG viewers at once; the next gets 503", min=1),
    "stream_fps": Opt(("--stream-fps",), "--serve: most MJPEG frames a second (inference keeps its own pace)",
                      min=1.0, max=120.0),
    "max_body_mb": Opt(("--max-body-mb",), "--serve: largest POST /api/predict body, in MB", min=0.001),
    "request_timeout": Opt(("--request-timeout",), "--serve: seconds a prediction may take before 504", min=0.1),
    "idle_timeout": Opt(("--idle-timeout",), "--serve: drop a connection silent this long: no request, a body "
                        "that stops, a stream viewer that takes no frame", min=0.5),
    "batch_wait_ms": Opt(("--batch-wait-ms",), "--serve: how long the first request waits for others to batch "
                         "with", min=0.0, max=1000.0),
    "cors": Opt(("--cors",), "--serve: allow this browser origin (no CORS unless given)"),
}


def option_types() -> dict[str, type]:
    """RunOptions' field -> its value type (Optional[X] -> X)."""
    hints = typing.get_type_hints(RunOptions)
    return {f.name: next((a for a in typing.get_args(hints[f.name]) if a is not type(None)), hints[f.name])
            for f in fields(RunOptions)}


OUTPUT_FIELDS = ("csv_path", "save", "trt_cache", "out")  # the path options a run writes; it reads every other one


def read_paths(o: RunOptions) -> list[Path]:
    """The files the options name for reading (--model, --labels, ...): no output may be one of them."""
    types = option_types()
    return [Path(v) for name, v in ((f.name, getattr(o, f.name)) for f in fields(o))
            if v is not None and types[name] is Path and name not in OUTPUT_FIELDS]


def spec_overrides(o: RunOptions) -> dict[str, Any]:
    """--size/--mean/--std/--bgr/--scale as Classifier.from_file's spec overrides (the given ones)."""
    overrides = {"size": o.size, "mean": _floats3(o.mean, "--mean"), "std": _floats3(o.std, "--std"),
                 "channel_order": "BGR" if o.bgr else None, "scale": o.scale}
    return {k: v for k, v in overrides.items() if v is not None}
