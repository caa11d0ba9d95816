"""What to benchmark: artifacts found in an export folder or given as files, with their metadata,
and the inputs they take. Inputs are real preprocessed photos when a labeled folder is given (run
through THE preprocess() of catdog.runtime), else a fixed-seed image, so every artifact sees the
same pixels; a baked-preprocess model gets the same crops as uint8 NHWC."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from catdog.runtime.errors import InputError, ModelError
from catdog.runtime.metadata import METADATA_FILE, ModelMetadata, from_metadata_map
from catdog.runtime.spec import PreprocessSpec

# Export-folder file name -> artifact name (the catdog-export layout), in report order.
EXPORT_FILES = {
    "model.onnx": "onnx-fp32",
    "model.fp16.onnx": "onnx-fp16",
    "model.int8.onnx": "onnx-int8",
    "model.baked.onnx": "onnx-baked",
    "model.ts": "torchscript",
}
KINDS = ("onnx", "torchscript", "torch")


@dataclass(frozen=True)
class Artifact:
    name: str
    path: Path
    kind: str  # one of KINDS
    meta: ModelMetadata | None
    input_name: str | None = None
    input_dtype: str = "float32"  # numpy dtype the graph's input takes
    fixed_batch: int | None = None  # the graph's batch dim when it is a number
    size: int = 224
    amp: bool = False  # torch eager under CUDA autocast fp16

    @property
    def needs_torch(self) -> bool:
        return self.kind != "onnx"

    @property
    def uint8_input(self) -> bool:
        return self.input_dtype == "uint8"


_ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(uint8)": "uint8"}


def inspect_onnx(path: Path, name: str) -> Artifact:
    import onnxruntime as ort

    try:
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as e:  # ORT raises several types; the one line is what the user needs
        raise ModelError(f"{path}: onnxruntime cannot load it ({str(e).strip().splitlines()[0][:200]})") from None
    inp = sess.get_inputs()[0]
    meta = from_metadata_map(sess.get_modelmeta().custom_metadata_map, str(path))
    dtype = _ORT_TYPES.get(inp.type)
    if dtype is None:
        raise ModelError(f"{path}: input type {inp.type} is not supported (float, float16 or uint8)")
    shape = list(inp.shape)
    fixed = shape[0] if isinstance(shape[0], int) else None
    spatial = [d for d in shape[1:] if isinstance(d, int) and d != 3]
    size = meta.spec.size if meta else (spatial[0] if spatial else 224)
    return Artifact(name, path, "onnx", meta, inp.name, dtype, fixed, size)


def inspect_torchscript(path: Path, name: str) -> Artifact:
    import torch

    extra = {METADATA_FILE: ""}
    try:
        with warnings.catch_warnings():  # torch 2.x deprecation notice on every load
            warnings.simplefilter("ignore", FutureWarning)
            torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except Exception as e:
        raise ModelError(f"{path}: torch.jit.load failed ({str(e).strip().splitlines()[0][:200]})") from None
    meta = ModelMetadata.from_json(extra[METADATA_FILE], str(path)) if extra[METADATA_FILE] else None
    return Artifact(name, path, "torchscript", meta, size=meta.spec.size if meta else 224)


def inspect_checkpoint(path: Path, name: str = "torch-eager") -> Artifact:
    from catdog.train.checkpoint import load_checkpoint

    ckpt = load_checkpoint(path)
    meta = ModelMetadata(classes=tuple(ckpt["classes"]), spec=ckpt["spec"], arch=ckpt["arch"])
    return Artifact(name, path, "torch", meta, size=ckpt["spec"].size)


def discover(paths: list[Path], torch_ckpt: Path | None = None, torch_ok: bool = True,
             amp: bool = False) -> tuple[list[Artifact], list[str]]:
    """Export folders and model files -> artifacts, plus notes on what was left out and why.
    `amp` adds torch eager under CUDA autocast fp16 (it runs on the cuda provider only)."""
    found: list[tuple[str, Path]] = []
    for p in paths:
        if p.is_dir():
            hits = [(EXPORT_FILES[f], p / f) for f in EXPORT_FILES if (p / f).is_file()]
            if not hits:
                raise InputError(f"{p}: no model files ({', '.join(EXPORT_FILES)}); pass an export folder or model files")
            found += hits
        elif p.is_file():
            found.append((EXPORT_FILES.get(p.name, p.stem), p))
        else:
            raise InputError(f"{p}: no such file or folder")
    if torch_ckpt is not None:
        found.append(("torch-eager", torch_ckpt))
        if amp:
            found.append(("torch-eager-amp", torch_ckpt))
    names: dict[str, int] = {}
    arts, notes = [], []
    for name, path in found:
        if name in names:  # two model.onnx from two folders: keep both, tell them apart
            names[name] += 1
            name = f"{name}#{names[name]}"
        else:
            names[name] = 1
        if path.suffix == ".onnx":
            arts.append(inspect_onnx(path, name))
        elif path.suffix in (".ts", ".pt", ".pth") and not torch_ok:
            notes.append(f"{name} ({path.name}) left out: torch is not installed")
        elif path.suffix == ".ts" or (path.suffix == ".pt" and torch_ckpt != path):
            arts.append(inspect_torchscript(path, name))
        elif path.suffix == ".pth":
            art = inspect_checkpoint(path, name)
            arts.append(replace(art, amp=name == "torch-eager-amp"))
        else:
            raise InputError(f"{path}: unknown model type (want .onnx, .ts or a .pth checkpoint)")
    return arts, notes


def spec_of(arts: list[Artifact]) -> PreprocessSpec:
    """The preprocessing all artifacts share; they must agree, or the comparison is not like with like."""
    specs = {a.meta.spec for a in arts if a.meta is not None}
    if len(specs) > 1:
        raise ModelError("artifacts carry different preprocessing specs; benchmark them in separate runs")
    if specs:
        return specs.pop()
    sizes = {a.size for a in arts}
    return PreprocessSpec(size=sizes.pop(), resize=max(sizes | {256})) if len(sizes) == 1 else PreprocessSpec()


def synthetic_image(seed: int = 0, h: int = 375, w: int = 500) -> np.ndarray:
    """A fixed-seed BGR image with smooth structure (JPEG-like statistics, not white noise)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(h // 25 + 1, w // 25 + 1, 3), dtype=np.uint8)
    import cv2

    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def input_images(data: Path | None, n: int, seed: int = 0) -> tuple[list[np.ndarray], str]:
    """n decoded BGR images: the first n photos of `data` (cycled) or a fixed-seed synthetic one."""
    if data is None:
        return [synthetic_image(seed)] * n, f"fixed-seed synthetic image (seed {seed})"
    from catdog.runtime.files import read_image

    from catdog.benchmarks.labels import labeled_images

    files = [p for p, _ in labeled_images(data)][: max(n, 1)]
    imgs = [read_image(p) for p in files]
    return [imgs[i % len(imgs)] for i in range(n)], f"{len(files)} photos from {data}"


def make_batch(art: Artifact, images: list[np.ndarray], spec: PreprocessSpec) -> Any:
    """The input one artifact takes for these images: NCHW float (or fp16), or NHWC uint8 crops."""
    from catdog.runtime.preprocess import normalize, resize_crop

    crops = np.stack([resize_crop(im, spec) for im in images])
    if art.uint8_input:
        return crops
    x = normalize(crops, spec)
    return x.astype(np.float16) if art.input_dtype == "float16" else x
