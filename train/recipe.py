"""The training recipe as one frozen config, plus the optimizer/scheduler/AMP/device it implies.
Every knob has the seed recipe's default; the config is stored in each checkpoint and reused by
--resume, so a resumed run trains exactly as the interrupted one would have. The CLIs read their
defaults from TrainConfig, so each lives here once; torch is imported by the functions that use it,
so reading a default (catdog-train --help) does not load it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from catdog.runtime.spine.errors import ConfigError

if TYPE_CHECKING:
    import torch

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("none", "step", "cosine")
AMP_MODES = ("auto", "off", "fp16", "bf16")
HEADS = ("random", "probe")  # probe: LP-FT (Kumar et al. 2022) starts from the linear probe's head
AUGMENTS = ("seed", "trivial", "randaugment")
RESERVED_ARCH_KWARGS = {"num_classes": "the class count comes from the data (one class per folder or name)",
                        "pretrained": "use --pretrained", "weights": "use --weights PATH"}


@dataclass(frozen=True)
class TrainConfig:
    arch: str = "efficientnet_lite0"
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    pretrained: bool = False
    weights: str | None = None
    data: str = ""
    val: str | None = None
    val_fraction: float = 0.2
    epochs: int = 10
    batch_size: int = 32
    workers: int = 2
    optimizer: str = "adam"
    lr: float = 1e-4
    momentum: float = 0.9
    weight_decay: float = 0.0
    scheduler: str = "none"
    step_size: int = 5
    gamma: float = 0.1
    label_smoothing: float = 0.0
    accum_steps: int = 1
    amp: str = "auto"
    patience: int = 0  # early stopping: epochs without improvement before stopping; 0 = never
    seed: int = 0
    size: int | None = None  # override the arch's input size (tests, small GPUs)
    head: str = "random"  # how the classifier head starts: fresh, or the linear probe's (LP-FT)
    probe: bool = True  # fit the linear probe on the same split first and report it beside each epoch
    ema: float = 0.0  # EMA decay of the weights (e.g. 0.99); evaluated and saved in place of the raw ones
    mixup: float = 0.0  # MixUp alpha (0 = off)
    cutmix: float = 0.0  # CutMix alpha (0 = off); with both, each batch gets one of the two
    augment: str = "seed"  # seed: flip/rotate/crop/jitter; trivial: + TrivialAugmentWide; randaugment
    freeze_bn: bool = False  # BatchNorm keeps its pretrained statistics (eval mode) while the weights train

    def __post_init__(self) -> None:
        for name, value, known in (
            ("optimizer", self.optimizer, OPTIMIZERS),
            ("scheduler", self.scheduler, SCHEDULERS),
            ("amp", self.amp, AMP_MODES),
            ("head", self.head, HEADS),
            ("augment", self.augment, AUGMENTS),
        ):
            if value not in known:
                raise ConfigError(f"unknown {name} {value!r}; known: {', '.join(known)}")
        if self.epochs < 0 or self.batch_size < 1 or self.accum_steps < 1:
            raise ConfigError("epochs must be >= 0, batch size and accumulation steps >= 1")
        if self.epochs == 0 and self.head != "probe":
            raise ConfigError("--epochs 0 trains nothing; with --head probe it saves the linear probe itself "
                              "(catdog-train probe)")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"label smoothing must be in [0, 1), got {self.label_smoothing}")
        if not 0.0 <= self.ema < 1.0:
            raise ConfigError(f"--ema is a decay in [0, 1), e.g. 0.99; got {self.ema}")
        if self.mixup < 0 or self.cutmix < 0:
            raise ConfigError("--mixup and --cutmix take an alpha >= 0 (0 = off)")
        if self.head == "probe" and not self.probe:
            raise ConfigError("--head probe starts from the linear probe: it cannot go with --no-probe")
        for key, source in RESERVED_ARCH_KWARGS.items():  # the trainer passes these: twice is a TypeError
            if key in self.arch_kwargs:
                raise ConfigError(f"--arch-kw {key}: {source}; leave it out")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def with_(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


def resolve_device(name: str) -> torch.device:
    """'auto' -> CUDA when present, else CPU. An explicit CUDA request without CUDA is an error."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"--device {name} was asked for but CUDA is not available to torch {torch.__version__} "
                "(no GPU, driver or CUDA build); use --device cpu"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) present")
    elif dev.type != "cpu":
        raise ConfigError(f"unsupported device {name!r}; use auto, cpu, cuda or cuda:N")
    return dev


def amp_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    """Mixed precision is a CUDA feature here; on CPU asking for it is an error, 'auto' means off."""
    import torch

    if cfg.amp == "off" or (cfg.amp == "auto" and device.type != "cuda"):
        return None
    if device.type != "cuda":
        raise ConfigError(f"--amp {cfg.amp} needs a CUDA device; use --amp off on {device.type}")
    if cfg.amp == "bf16" or (cfg.amp == "auto" and torch.cuda.is_bf16_supported()):
        if not torch.cuda.is_bf16_supported():
            raise ConfigError("--amp bf16: this GPU does not support bfloat16; use --amp fp16")
        return torch.bfloat16
    return torch.float16


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    import torch

    # All parameters go in, frozen ones too: they get no gradient and so are not updated, and a
    # progressive unfreeze later needs no new optimizer (its state stays resumable).
    params = list(model.parameters())
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def build_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig):
    """Stepped once per epoch."""
    import torch

    if cfg.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.step_size, gamma=cfg.gamma)
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    return None


def build_scaler(dtype: torch.dtype | None, device: torch.device):
    """Loss scaling is needed for fp16 only (bf16 has fp32's range)."""
    import torch

    return torch.amp.GradScaler("cuda", enabled=dtype == torch.float16 and device.type == "cuda")
