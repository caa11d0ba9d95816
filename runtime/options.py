"""What one `catdog-runtime` run is told: RunOptions, a frozen dataclass whose every field carries
its default and, in its metadata (opt()), its flags, help and range: the one place each is written.
The quick parser and the typer command (runtime/cli/) are both built from these fields; the rooms
below run.py get small option dataclasses of their own (scale's, serve's), never RunOptions.
Imports the spine only."""

from __future__ import annotations

import typing
from dataclasses import Field, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping, Optional

from catdog.runtime.spine.spec import SpecFlags


@dataclass(frozen=True)
class Opt:
    """One field's command-line face; no flags: the positional argument."""

    flags: tuple[str, ...]  # the first is the long name
    help: str
    min: float | None = None
    max: float | None = None
    repeatable: bool = False  # the flag may be given several times; the field is a tuple of the values
    writes: bool = False  # a path the run writes (an output); every other path option is read


OPT = "catdog.opt"  # the field metadata key


def opt(flags: tuple[str, ...], help: str, *, min: float | None = None, max: float | None = None,
        repeatable: bool = False, writes: bool = False) -> Mapping[str, Opt]:
    """A field's metadata: `field(default=16, metadata=opt(("--batch",), "images per ...", min=1))`."""
    return {OPT: Opt(flags, help, min, max, repeatable, writes)}


@dataclass(frozen=True)
class RunOptions:
    """Everything one `catdog-runtime` run is told; the CLI's defaults, flags, help and ranges are
    these fields' (in --help order)."""

    source: Optional[str] = field(default=None, metadata=opt(
        (), "image, folder, glob, video, camera index, /dev/videoN, URL, or gst:PIPELINE (GStreamer)"))
    model: Optional[Path] = field(default=None, metadata=opt(
        ("--model", "-m"), "ONNX model file, or fp32 / int8 for a shipped one (default: int8 on CPU, fp32 on GPU)"))
    provider: str = field(default="auto", metadata=opt(
        ("--provider",), "auto | cpu | cuda | tensorrt | openvino | coreml | dml | rocm"))
    threads: Optional[int] = field(default=None, metadata=opt(
        ("--threads",), "CPU threads for onnxruntime (per actor with --ray)"))
    batch: int = field(default=16, metadata=opt(("--batch",), "images per inference on folders", min=1))
    workers: int = field(default=2, metadata=opt(
        ("--workers",), "decode threads on folders (per actor with --ray)", min=1))
    recursive: bool = field(default=False, metadata=opt(("--recursive", "-r"), "include subfolders"))
    json_out: bool = field(default=False, metadata=opt(("--json",), "JSON lines on stdout, one per input"))
    csv_path: Optional[Path] = field(default=None, metadata=opt(
        ("--csv",), "also write results to this CSV file", writes=True))
    labels: Optional[Path] = field(default=None, metadata=opt(
        ("--labels",), "class names for a model without catdog metadata"))
    size: Optional[int] = field(default=None, metadata=opt(("--size",), "input size (third-party models)"))
    mean: Optional[str] = field(default=None, metadata=opt(("--mean",), "per-channel mean, e.g. 0.485,0.456,0.406"))
    std: Optional[str] = field(default=None, metadata=opt(("--std",), "per-channel std, e.g. 0.229,0.224,0.225"))
    bgr: bool = field(default=False, metadata=opt(("--bgr",), "the model takes BGR channel order"))
    scale: Optional[float] = field(default=None, metadata=opt(
        ("--scale",), "pixel multiplier before mean/std (default 1/255)"))
    csi: Optional[int] = field(default=None, metadata=opt(
        ("--csi",), "Jetson CSI camera sensor id (builds the nvarguscamerasrc pipeline)"))
    show: bool = field(default=False, metadata=opt(("--show",), "open a window with the overlay (q quits)"))
    save: Optional[Path] = field(default=None, metadata=opt(
        ("--save",), "write the annotated video here (.mp4 or .avi)", writes=True))
    smooth: int = field(default=1, metadata=opt(("--smooth",), "average the last N frames' probabilities", min=1))
    topk: int = field(default=1, metadata=opt(("--topk",), "show the top K classes", min=1))
    realtime: bool = field(default=False, metadata=opt(
        ("--realtime",), "play video files at their frame rate, dropping frames"))
    max_frames: Optional[int] = field(default=None, metadata=opt(("--max-frames",), "stop after N frames", min=1))
    reconnects: int = field(default=10, metadata=opt(
        ("--reconnects",), "reopen a dropped camera/stream up to N times in a row (backoff 0.5 s doubling to 8 s)",
        min=0))
    timings: bool = field(default=False, metadata=opt(  # per-frame stage times: live.loop.TIMING_KEYS
        ("--timings",), "videos, cameras, streams: each --json line gets this frame's \"timings\" in ms: "
        "wait_ms (for the camera's next frame), decode_ms (capture thread CPU), preprocess_ms, "
        "inference_ms, age_ms (arrival to label)"))
    trt_fp16: bool = field(default=False, metadata=opt(("--trt-fp16",), "TensorRT: allow fp16 kernels"))
    trt_int8: bool = field(default=False, metadata=opt(
        ("--trt-int8",), "TensorRT: INT8 (symmetric QDQ models: catdog-export --int8-for tensorrt)"))
    trt_cache: Optional[Path] = field(default=None, metadata=opt(
        ("--trt-cache",), "TensorRT engine cache folder", writes=True))
    device_id: int = field(default=0, metadata=opt(
        ("--device-id",), "GPU to run on (CUDA / TensorRT providers)", min=0))
    unsure_below: Optional[float] = field(default=None, metadata=opt(
        ("--unsure-below",), "label a photo or frame 'unsure' when its top (calibrated) "
        "probability is below this, e.g. 0.8", min=0.0, max=1.0))
    full_decode: bool = field(default=False, metadata=opt(
        ("--full-decode",), "decode JPEGs at full size (default: libjpeg's 1/2, 1/4 or 1/8 scale "
        "when the photo is still at least the model's resize; 2-3x faster on phone photos)"))
    ray: Optional[str] = field(default=None, metadata=opt(  # alone: scale.LOCAL (cli.ray_alone)
        ("--ray",), "classify on Ray: alone, a local Ray; with HOST:6379, ray://HOST:10001 or auto, "
        "join that cluster (runtime/scale/driver.py)"))
    out: Optional[Path] = field(default=None, metadata=opt(
        ("--out",), "--ray: folder of Parquet part files for the results", writes=True))
    resume: bool = field(default=False, metadata=opt(("--resume",), "--ray: skip the inputs already in --out"))
    actors: Optional[int] = field(default=None, metadata=opt(
        ("--actors",), "--ray: actors (default: CPUs / --threads, or GPUs)", min=1))
    gpus_per_actor: float = field(default=1.0, metadata=opt(
        ("--gpus-per-actor",), "--ray with --provider cuda", min=0.01))
    serve: Optional[str] = field(default=None, metadata=opt(
        ("--serve",), "serve the live view and an HTTP API on [HOST:]PORT (default host 127.0.0.1); "
        "without SOURCE, the API alone"))
    token: Optional[str] = field(default=None, metadata=opt(
        ("--token",), "--serve: the token every route but /healthz needs (or --token-file, or "
        "CATDOG_TOKEN); required off loopback"))
    token_file: Optional[Path] = field(default=None, metadata=opt(
        ("--token-file",), "--serve: read the token from this file (mode 600), which keeps it out "
        "of the process list"))
    no_auth: bool = field(default=False, metadata=opt(
        ("--no-auth",), "--serve: no token even off loopback (warned about)"))
    allow_host: tuple[str, ...] = field(default=(), metadata=opt(
        ("--allow-host",), "--serve: also answer requests whose Host: is NAME (repeatable; by "
        "default only loopback names and the address served on; '*': any)", repeatable=True))
    max_viewers: int = field(default=8, metadata=opt(
        ("--max-viewers",), "--serve: MJPEG viewers at once; the next gets 503", min=1))
    stream_fps: float = field(default=15.0, metadata=opt(
        ("--stream-fps",), "--serve: most MJPEG frames a second (inference keeps its own pace)", min=1.0, max=120.0))
    max_body_mb: float = field(default=20.0, metadata=opt(
        ("--max-body-mb",), "--serve: largest POST /api/predict body, in MB", min=0.001))
    request_timeout: float = field(default=10.0, metadata=opt(
        ("--request-timeout",), "--serve: seconds a prediction may take before 504", min=0.1))
    idle_timeout: float = field(default=10.0, metadata=opt(
        ("--idle-timeout",), "--serve: drop a connection silent this long: no request, a body "
        "that stops, a stream viewer that takes no frame", min=0.5))
    batch_wait_ms: float = field(default=5.0, metadata=opt(
        ("--batch-wait-ms",), "--serve: how long the first request waits for others to batch with", min=0.0,
        max=1000.0))
    cors: Optional[str] = field(default=None, metadata=opt(
        ("--cors",), "--serve: allow this browser origin (no CORS unless given)"))


def option_of(f: Field[Any]) -> Opt:
    """A RunOptions field's flags, help and range (its metadata)."""
    o = f.metadata[OPT]
    assert isinstance(o, Opt), f.name
    return o


def option_table() -> dict[str, Opt]:
    """RunOptions' field -> its Opt, in --help order (the positional `source` first)."""
    return {f.name: option_of(f) for f in fields(RunOptions)}


def option_types() -> dict[str, type]:
    """RunOptions' field -> its value type (Optional[X] -> X)."""
    hints = typing.get_type_hints(RunOptions)
    return {f.name: next((a for a in typing.get_args(hints[f.name]) if a is not type(None)), hints[f.name])
            for f in fields(RunOptions)}


def read_paths(o: RunOptions) -> list[Path]:
    """The files the options name for reading (--model, --labels, ...): no output may be one of them."""
    types, table = option_types(), option_table()
    return [Path(v) for name, v in ((f.name, getattr(o, f.name)) for f in fields(o))
            if v is not None and types[name] is Path and not table[name].writes]


def spec_flags(o: RunOptions) -> SpecFlags:
    """--size/--mean/--std/--bgr/--scale as given (read when the model loads: SpecFlags.overrides)."""
    return SpecFlags(size=o.size, mean=o.mean, std=o.std, bgr=o.bgr, scale=o.scale)
