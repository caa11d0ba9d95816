"""What to benchmark: artifacts found in an export folder or given as files (named by the runtime's
artifact table), the providers asked for, and the photos the artifacts are fed. How each one runs
is runners.py. torch is imported only by the torch paths, so everything else works without it.

Inputs are real preprocessed photos when a labelled folder is given (run through THE preprocess()
of catdog.runtime), else a fixed-seed image, so every artifact sees the same pixels; a baked-
preprocess model gets the same crops as uint8 NHWC."""

from __future__ import annotations

import importlib.util
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from catdog.runtime.engine import session as rt_session
from catdog.runtime.spine.artifacts import ARTIFACTS, by_filename
from catdog.runtime.spine.errors import InputError, ModelError, ProviderError, error_line
from catdog.runtime.spine.folders import LabelledFolder, scan
from catdog.runtime.spine.metadata import METADATA_FILE, ModelMetadata
from catdog.runtime.spine.spec import PreprocessSpec

# Export-folder file name -> report row name, in report order: ONNX before TorchScript, float input
# before baked uint8, then the reference precision first and narrower ones after it.
_PRECISIONS = ("fp32", "fp16", "int8")
EXPORT_FILES = {a.filename: a.row for a in sorted(
    ARTIFACTS.values(), key=lambda a: (a.kind != "onnx", a.input_format == "uint8", _PRECISIONS.index(a.precision)))}
_ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(uint8)": "uint8"}


def torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None


def torch_cuda() -> bool:
    """torch is installed and sees a CUDA GPU (imports torch only when it is installed)."""
    if not torch_available():
        return False
    import torch

    return bool(torch.cuda.is_available())


def uses_threads(provider: str) -> bool:
    """A CPU thread count matters (GPU providers get one entry, threads=None)."""
    return provider == "cpu"


def ort_has(provider: str) -> bool:
    return provider in rt_session.available_providers()


def resolve_providers(requested: list[str] | None, torch_ok: bool = False) -> list[str]:
    """None/'all' -> every available provider; otherwise each must exist and be available.
    With `torch_ok`, "cuda" is also available when only torch sees a GPU (an onnxruntime without
    CUDA): torch artifacts then run on it and the ONNX rows say their ORT-GPU figure is missing."""
    offered = set(rt_session.available_providers())
    have = [p for p in rt_session.PROVIDERS if p in offered]  # the table's order: cpu first
    if torch_ok and "cuda" not in have and torch_cuda():
        have.insert(1, "cuda")
    if not requested or requested == ["all"]:
        return have
    for name in requested:
        if name not in rt_session.PROVIDERS:
            raise ProviderError(f"unknown provider {name!r}; known: {', '.join(rt_session.PROVIDERS)}")
        if name not in have:
            raise ProviderError(f"provider {name!r} is not available in this onnxruntime (available: "
                                f"{', '.join(have)}); install: {rt_session.INSTALL_HINTS.get(name, '')}")
    return list(dict.fromkeys(requested))


@dataclass(frozen=True)
class Artifact:
    name: str
    path: Path
    kind: str  # onnx | torchscript | torch (a .pth checkpoint, run eagerly)
    meta: ModelMetadata | None
    input_dtype: str = "float32"  # numpy dtype the graph's input takes
    fixed_batch: int | None = None  # the graph's batch dim when it is a number
    size: int = 224
    amp: bool = False  # torch eager under CUDA autocast fp16

    @property
    def uint8_input(self) -> bool:
        return self.input_dtype == "uint8"

    @property
    def precision(self) -> str:
        if self.meta:
            return self.meta.precision
        return "fp16" if self.input_dtype == "float16" else "fp32"


def inspect_onnx(path: Path, name: str) -> Artifact:
    sess = rt_session.open_session(path, "cpu", log=None)
    if sess.metadata_error is not None:
        raise sess.metadata_error
    meta = sess.metadata  # the session's one parse
    dtype = _ORT_TYPES.get(sess.input_type)
    if dtype is None:
        raise ModelError(f"{path}: input type {sess.input_type} is not supported (float, float16 or uint8)")
    shape = list(sess.input_shape)
    fixed = shape[0] if isinstance(shape[0], int) else None
    spatial = [d for d in shape[1:] if isinstance(d, int) and d != 3]
    size = meta.spec.size if meta else (spatial[0] if spatial else 224)
    return Artifact(name, path, "onnx", meta, dtype, fixed, size)


def jit_load(path: Path, device: str, extra: dict[str, str] | None = None) -> Any:
    import torch

    try:
        with warnings.catch_warnings():  # torch 2.x deprecation notice on every load
            warnings.simplefilter("ignore", FutureWarning)
            return torch.jit.load(str(path), map_location=device, _extra_files=extra or {})
    except Exception as e:  # noqa: BLE001 - torch raises many types; the one line is what the user needs
        raise ModelError(f"{path}: torch.jit.load failed ({error_line(e, 200)})") from None


def inspect_torchscript(path: Path, name: str) -> Artifact:
    extra = {METADATA_FILE: ""}
    jit_load(path, "cpu", extra)
    meta = ModelMetadata.from_json(extra[METADATA_FILE], str(path)) if extra[METADATA_FILE] else None
    return Artifact(name, path, "torchscript", meta, size=meta.spec.size if meta else 224)


def inspect_checkpoint(path: Path, name: str = "torch-eager") -> Artifact:
    from catdog.train.models.checkpoint import load_checkpoint

    ckpt = load_checkpoint(path)
    meta = ModelMetadata(classes=ckpt.classes, spec=ckpt.spec, arch=ckpt.arch)
    return Artifact(name, path, "torch", meta, size=ckpt.spec.size)


def _found(paths: list[Path], torch_ckpt: Path | None, amp: bool) -> list[tuple[str, Path]]:
    found: list[tuple[str, Path]] = []
    for p in paths:
        if p.is_dir():
            hits = [(row, p / f) for f, row in EXPORT_FILES.items() if (p / f).is_file()]
            if not hits:
                raise InputError(f"{p}: no model files ({', '.join(EXPORT_FILES)}); "
                                 "pass an export folder or model files")
            found += hits
        elif p.is_file():
            known = by_filename(p.name)
            found.append((known.row if known else p.stem, p))
        else:
            raise InputError(f"{p}: no such file or folder")
    if torch_ckpt is not None:
        found.append(("torch-eager", torch_ckpt))
        if amp:
            found.append(("torch-eager-amp", torch_ckpt))
    return found


def discover(paths: list[Path], torch_ckpt: Path | None = None, torch_ok: bool = True,
             amp: bool = False) -> tuple[list[Artifact], list[str]]:
    """Export folders and model files -> artifacts, plus notes on what was left out and why.
    `amp` adds torch eager under CUDA autocast fp16 (it runs on the cuda provider only)."""
    names: dict[str, int] = {}
    arts, notes = [], []
    for name, path in _found(paths, torch_ckpt, amp):
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
            arts.append(replace(inspect_checkpoint(path, name), amp=name == "torch-eager-amp"))
        else:
            raise InputError(f"{path}: unknown model type (want .onnx, .ts or a .pth checkpoint)")
    tta = {a.meta.extra.get("tta") for a in arts if a.kind != "torch" and a.meta} - {None}
    if tta and any(a.kind == "torch" for a in arts):
        # An export made with --tta-flip computes mean(logits(x), logits(mirror x)); torch eager from
        # the checkpoint must do the same, or its agreement and accuracy compare different functions.
        arts = [replace(a, meta=a.meta.with_(extra={**a.meta.extra, "tta": min(tta)})) if a.kind == "torch" else a
                for a in arts]
        notes.append(f"torch eager runs with the export's test-time averaging ({min(tta)}), like the exported graphs")
    return arts, notes


def spec_of(arts: Sequence[Artifact]) -> PreprocessSpec:
    """The preprocessing all artifacts share; they must agree, or the comparison is not like with like."""
    specs = {a.meta.spec for a in arts if a.meta is not None}
    if len(specs) > 1:
        raise ModelError("artifacts carry different preprocessing specs; benchmark them in separate runs")
    if specs:
        return specs.pop()
    sizes = {a.size for a in arts}
    return PreprocessSpec(size=sizes.pop(), resize=max(sizes | {256})) if len(sizes) == 1 else PreprocessSpec()


def classes_of(arts: Sequence[Artifact]) -> tuple[str, ...] | None:
    """The class names the first artifact with catdog metadata carries (None: no metadata)."""
    return next((a.meta.classes for a in arts if a.meta is not None), None)


def list_photos(data: Path, arts: Sequence[Artifact]) -> LabelledFolder:
    """--data's labelled photos, listed by the runtime's one folder reader (hidden files such as
    macOS `._cat.1.jpg` are never photos; a mixed layout is an error) in the model's class order."""
    return scan(data, classes_of(arts))


def balanced(folder: LabelledFolder, limit: int | None) -> LabelledFolder:
    """At most `limit` photos of `folder` (None: all), classes kept balanced: interleaved by label
    before the cut (a benchmark policy, not the folder reader's), then sorted by path."""
    if limit is None:
        return folder
    by: dict[int, list[tuple[str, int]]] = {}
    for s in folder.samples:
        by.setdefault(s[1], []).append(s)
    groups = list(by.values())
    mixed = [x for group in zip(*groups, strict=False) for x in group] if len(groups) > 1 else list(folder.samples)
    return folder.subset(mixed[:limit])


def synthetic_image(seed: int = 0, h: int = 375, w: int = 500) -> np.ndarray:
    """A fixed-seed BGR image with smooth structure (JPEG-like statistics, not white noise)."""
    import cv2

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(h // 25 + 1, w // 25 + 1, 3), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def input_images(folder: LabelledFolder | None, n: int, spec: PreprocessSpec | None = None,
                 seed: int = 0) -> tuple[list[np.ndarray], str]:
    """n decoded BGR images (decoded for `spec`, as the runtime does): the first n photos of `folder`
    (cycled) or a fixed-seed synthetic one."""
    if folder is None:
        return [synthetic_image(seed)] * n, f"fixed-seed synthetic image (seed {seed})"
    from catdog.runtime.spine.images import read_image

    files = folder.paths[: max(n, 1)]
    imgs = [read_image(p, spec) for p in files]
    return [imgs[i % len(imgs)] for i in range(n)], f"{len(files)} photos from {folder.root}"


def make_batch(art: Artifact, images: list[np.ndarray], spec: PreprocessSpec) -> Any:
    """The input one artifact takes for these images: NCHW float (or fp16), or NHWC uint8 crops."""
    from catdog.runtime.spine.preprocess import normalize, resize_crop

    crops = np.stack([resize_crop(im, spec) for im in images])
    if art.uint8_input:
        return crops
    x = normalize(crops, spec)
    return x.astype(np.float16) if art.input_dtype == "float16" else x
