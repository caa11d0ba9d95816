"""PreprocessSpec: how an image becomes the network's input. It travels with the weights (in the
checkpoint and in every exported artifact's metadata), so no stage ever guesses it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from catdog.runtime.spine.errors import InputError, MetadataError
from catdog.runtime.spine.jsonsafe import TooDeep, loads_bounded

INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "area")
RESIZE_MODES = ("shorter", "stretch")  # shorter side -> resize then center crop | straight to size
CHANNEL_ORDERS = ("RGB", "BGR")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class PreprocessSpec:
    size: int = 224  # the square input the network sees (H = W = size)
    resize: int = 256  # shorter side before the center crop ("shorter" mode only)
    resize_mode: str = "shorter"
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] = IMAGENET_MEAN  # in channel_order, after scaling
    std: tuple[float, float, float] = IMAGENET_STD
    channel_order: str = "RGB"
    scale: float = 1.0 / 255.0  # uint8 -> float multiplier, applied before mean/std
    layout: str = "NCHW"

    def __post_init__(self) -> None:
        problems = []
        if not (isinstance(self.size, int) and self.size > 0):
            problems.append(f"size must be a positive int, got {self.size!r}")
        if self.resize_mode not in RESIZE_MODES:
            problems.append(f"resize_mode must be one of {RESIZE_MODES}, got {self.resize_mode!r}")
        if self.resize_mode == "shorter" and not (isinstance(self.resize, int) and self.resize >= self.size):
            problems.append(f"resize must be an int >= size ({self.size}), got {self.resize!r}")
        if self.interpolation not in INTERPOLATIONS:
            problems.append(f"interpolation must be one of {INTERPOLATIONS}, got {self.interpolation!r}")
        if self.channel_order not in CHANNEL_ORDERS:
            problems.append(f"channel_order must be one of {CHANNEL_ORDERS}, got {self.channel_order!r}")
        if len(self.mean) != 3 or len(self.std) != 3 or any(s <= 0 for s in self.std):
            problems.append("mean and std need 3 values each, std > 0")
        if self.layout != "NCHW":
            problems.append(f"layout must be NCHW, got {self.layout!r}")
        if not self.scale > 0:
            problems.append(f"scale must be > 0, got {self.scale!r}")
        if problems:
            raise MetadataError("invalid preprocessing spec: " + "; ".join(problems))

    @property
    def min_side(self) -> int:
        """The shortest image side the geometry needs without upscaling: a decoder may shrink a photo
        down to this and no further (see files.decode_image)."""
        return self.resize if self.resize_mode == "shorter" else self.size

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PreprocessSpec":
        if not isinstance(d, dict):
            raise MetadataError(f"preprocessing spec must be a JSON object, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise MetadataError(f"preprocessing spec has unknown fields {unknown}; upgrade catdog-edge")
        d = dict(d)
        for key in ("mean", "std"):
            if key in d:
                d[key] = tuple(float(v) for v in d[key])
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "PreprocessSpec":
        try:
            return cls.from_dict(loads_bounded(text))
        except TooDeep as e:
            raise MetadataError(f"preprocessing spec is malformed: {e}") from None
        except json.JSONDecodeError as e:
            raise MetadataError(f"preprocessing spec is not valid JSON: {e}") from None

    def with_(self, **changes: Any) -> "PreprocessSpec":
        return replace(self, **changes)

    def at_size(self, size: int) -> "PreprocessSpec":
        """The same recipe at another input size: the resize keeps its ratio to the crop
        (224 -> 256 becomes 288 -> 329), never below the crop itself."""
        return replace(self, size=size, resize=max(size, round(size * self.resize / self.size)))


def _floats3(text: str | None, flag: str) -> tuple[float, float, float] | None:
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
class SpecFlags:
    """--size/--mean/--std/--bgr/--scale as given (mean and std as text): a run hands them on as they
    are and reads them with overrides() when it loads the model, so a bad --mean fails at that point,
    with or without --ray."""

    size: int | None
    mean: str | None
    std: str | None
    bgr: bool
    scale: float | None

    def overrides(self) -> dict[str, Any]:
        """The given ones, as Classifier.from_file's spec overrides (PreprocessSpec's field names)."""
        got = {"size": self.size, "mean": _floats3(self.mean, "--mean"), "std": _floats3(self.std, "--std"),
               "channel_order": "BGR" if self.bgr else None, "scale": self.scale}
        return {k: v for k, v in got.items() if v is not None}
