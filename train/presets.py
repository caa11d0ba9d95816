"""Presets: the seeds' exercises and the shipped model's recipe as data. A preset is a frozen
dataclass holding the TrainConfig fields it sets, what data it expects and where each value comes
from; they live in a strict registry (a duplicate name raises, an unknown one is a one-line error
listing the known ones). `catdog-train --preset NAME` starts from one, and any flag given on the
command line wins over it (train/cli.py tells given flags from defaults). Imports neither torch nor
typer: `catdog-train presets` lists them without loading either."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from catdog.runtime.spine.errors import ConfigError
from catdog.train.recipe import TrainConfig

ARCH_BOUND = ("arch_kwargs", "size")  # belong to the preset's arch: dropped when --arch names another
# Where the seeds' own numbers are not recorded, the standard ones are used, and said so:
ALEXNET_SGD = "SGD, momentum 0.9, weight decay 5e-4, lr 0.01 divided by 10 (Krizhevsky et al. 2012, as a step " \
              "every 10 epochs instead of on a plateau): standard values, the seed's own are not recorded here"


@dataclass(frozen=True)
class Preset:
    name: str
    seed: str  # which exercise: s0..s3, or "shipped"
    summary: str
    expects: str  # the data it is meant for, in words
    example: str  # a --data spelling for it
    settings: tuple[tuple[str, Any], ...]  # TrainConfig field -> value; every other field keeps its default
    notes: tuple[tuple[str, str], ...] = ()  # field(s) -> where the value comes from

    def __post_init__(self) -> None:
        self.config()  # a typo'd field or a bad value fails at import, not at the user's run

    @property
    def values(self) -> dict[str, Any]:
        return dict(self.settings)

    def config(self, **changes: Any) -> TrainConfig:
        known = set(TrainConfig.__dataclass_fields__)
        bad = sorted(set(self.values) - known)
        if bad:
            raise ValueError(f"preset {self.name!r}: {bad} are not TrainConfig fields")
        return TrainConfig(**{**self.values, **changes})

    def row(self) -> dict[str, Any]:
        """The listing's columns (catdog-train presets), from the config it gives."""
        c = self.config()
        sched = {"none": "constant", "cosine": f"cosine over {c.epochs} epochs",
                 "step": f"step x{c.gamma:g} every {c.step_size} epochs"}[c.scheduler]
        opt = c.optimizer + (f" (momentum {c.momentum:g})" if c.optimizer == "sgd" else "")
        if c.weight_decay:
            opt += f", wd {c.weight_decay:g}"
        model = c.arch + "".join(f" {k}={v}" for k, v in c.arch_kwargs.items())
        start = "ImageNet weights" if c.pretrained else "from scratch"
        if c.head == "probe":
            start += ", head from the linear probe (LP-FT)"
        extras = [f"ema {c.ema:g}"] * bool(c.ema) + ["frozen BatchNorm"] * c.freeze_bn
        return {"name": self.name, "seed": self.seed, "model": model, "start": start, "size": c.size,
                "augment": c.augment, "optimizer": opt, "lr": c.lr, "schedule": sched, "epochs": c.epochs,
                "batch": c.batch_size, "extras": ", ".join(extras) or "-", "data": self.expects,
                "example": self.example, "summary": self.summary, "settings": self.values,
                "notes": dict(self.notes)}


_PRESETS: dict[str, Preset] = {}


def register_preset(preset: Preset) -> Preset:
    if preset.name in _PRESETS:
        raise ValueError(f"preset {preset.name!r} is already registered")
    _PRESETS[preset.name] = preset
    return preset


def get_preset(name: str) -> Preset:
    if name not in _PRESETS:
        raise ConfigError(f"unknown preset {name!r}; known: {', '.join(_PRESETS)} (catdog-train presets lists them)")
    return _PRESETS[name]


def list_presets() -> list[Preset]:
    return list(_PRESETS.values())


def apply_preset(name: str, recipe: dict[str, Any], typed: frozenset[str]) -> dict[str, Any]:
    """The recipe fields of a command line with the preset under them: a field typed on the command
    line keeps its value, every other field the preset sets takes the preset's. --arch-kw keys are
    set over the preset's own; a typed --arch that is not the preset's drops its arch-bound fields."""
    values = get_preset(name).values
    if "arch" in typed and recipe["arch"] != values.get("arch"):
        values = {k: v for k, v in values.items() if k not in ARCH_BOUND}
    out = {**recipe, **{k: v for k, v in values.items() if k not in typed}}
    if "arch_kwargs" in typed and "arch_kwargs" in values:
        out["arch_kwargs"] = {**values["arch_kwargs"], **recipe["arch_kwargs"]}
    return out


def table(presets: list[Preset]) -> str:
    """The presets as a Markdown-style table, then each one's data and where its values come from."""
    cols = ("name", "model", "size", "augment", "optimizer", "lr", "schedule", "epochs", "batch", "start", "extras")
    rows = [{k: str(p.row()[k]) for k in cols} for p in presets]
    width = {k: max(len(k), *(len(r[k]) for r in rows)) for k in cols}
    lines = [" | ".join(k.ljust(width[k]) for k in cols).rstrip(), " | ".join("-" * width[k] for k in cols)]
    lines += [" | ".join(r[k].ljust(width[k]) for k in cols).rstrip() for r in rows]
    for p in presets:
        lines += ["", f"{p.name} ({p.seed}): {p.summary}", f"  data: {p.expects}; e.g. --data {p.example}"]
        lines += [f"  {what}: {why}" for what, why in p.notes]
    return "\n".join(lines)


def _alexnet(**more: Any) -> tuple[tuple[str, Any], ...]:
    base = {"optimizer": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4, "scheduler": "step",
            "step_size": 10, "gamma": 0.1, "epochs": 30, "probe": False}
    return tuple({**base, **more}.items())


DOGS_VS_CATS = "dogs-vs-cats train photos, flat Kaggle names (cat.N.jpg, dog.N.jpg) or cat/ and dog/ folders"
RANDOM_INIT = ("probe", "off: a linear probe on a randomly initialised backbone is no bar to clear")

for _p in (
    Preset("s0-alexnet-catdog", "s0", "AlexNet from scratch on dogs-vs-cats (alexnet_s0: dropout 0.2, Kaiming init)",
           DOGS_VS_CATS, "../shared/datasets/dogs-vs-cats/train",
           _alexnet(arch="alexnet_s0", size=227, batch_size=64),
           (("optimizer, lr, momentum, weight_decay, scheduler", ALEXNET_SGD),
            ("size 227", "AlexNet's input as the paper states it (227 gives the same 6x6 map as 224)"),
            ("epochs 30, batch 64", "standard values for 2,000 photos on one machine"), RANDOM_INIT)),
    Preset("s1-alexnet-cifar10", "s1", "AlexNet for 32x32 images (alexnet_cifar) on CIFAR-10",
           "CIFAR-10: the published archive (python or binary) or its folder, as cifar10:PATH; "
           "the validation split is CIFAR's own test batch unless --val is given",
           "cifar10:cifar-10-python.tar.gz", _alexnet(arch="alexnet_cifar", size=32, batch_size=128),
           (("optimizer, lr, momentum, weight_decay, scheduler", ALEXNET_SGD),
            ("size 32", "CIFAR's own resolution; any photo is resized to 32 px by the same preprocess()"),
            ("epochs 30, batch 128", "standard values for CIFAR-10's 50,000 images"), RANDOM_INIT)),
    Preset("s2-resnet18-transfer", "s2", "transfer learning: ImageNet ResNet-18, backbone frozen, only the head trains",
           DOGS_VS_CATS, "../shared/datasets/dogs-vs-cats/train",
           (("arch", "resnet18"), ("arch_kwargs", {"mode": "frozen"}), ("pretrained", True), ("size", 224),
            ("optimizer", "adam"), ("lr", 1e-3), ("epochs", 5), ("batch_size", 32)),
           (("arch_kwargs mode=frozen", "feature extraction: the backbone and its BatchNorm keep ImageNet's "
                                        "weights and statistics (mode=progressive or full fine-tune more)"),
            ("adam, lr 1e-3, 5 epochs", "standard values for training a head alone"),
            ("size 224", "ResNet's ImageNet input"))),
    Preset("s3-alexnet-flowers", "s3", "a half-width AlexNet from scratch on 5 flower classes",
           "one folder per class, 5 classes (e.g. TensorFlow's flower_photos: daisy, dandelion, roses, "
           "sunflowers, tulips); a seeded 20% validation split unless --val is given", "flower_photos",
           _alexnet(arch="alexnet_s0", arch_kwargs={"width": 0.5}, size=227, batch_size=64),
           (("arch_kwargs width=0.5", "half of every conv's channels and of the hidden layers (4x fewer "
                                      "parameters than full width)"),
            ("optimizer, lr, momentum, weight_decay, scheduler", ALEXNET_SGD),
            ("epochs 30, batch 64", "standard values for ~3,700 photos"), RANDOM_INIT)),
    Preset("shipped-lite2-lpft", "shipped", "the shipped model's recipe: EfficientNet-Lite2 LP-FT "
                                            "(scripts/reference-model.sh)",
           DOGS_VS_CATS + " (the reference run trains on a prepare --resize 320 cache of them)", "data/train320",
           (("arch", "efficientnet_lite2"), ("pretrained", True), ("head", "probe"), ("freeze_bn", True),
            ("ema", 0.99), ("arch_kwargs", {"freeze_blocks": 8}), ("size", 260), ("epochs", 3), ("lr", 3e-5),
            ("scheduler", "cosine"), ("seed", 0)),
           (("all", "scripts/reference-model.sh's LP-FT command, value for value (Adam, batch 32: the defaults)"),
            ("arch_kwargs freeze_blocks=8", "the first three stages stay frozen: ~3x faster CPU steps"))),
):
    register_preset(_p)


def listing(presets: list[Preset] | None = None) -> list[dict[str, Any]]:
    """Every preset's row (catdog-train presets --json)."""
    return [p.row() for p in (presets if presets is not None else list_presets())]
