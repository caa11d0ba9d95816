"""Export-test helpers (a uniquely named module, not conftest: with several test folders in one
pytest run, `from conftest import ...` can pick up another folder's conftest): small real
checkpoints made with the training stage's own save_checkpoint, one per registered arch, with
weights that behave like a trained net (BatchNorm statistics from real photos, a classifier head
fitted to the cat/dog photos) so logits have realistic size and margins; the CLI in-process; the
folders and constants of the calibrated TTA export two test files share; and thin wrappers over
the export stage that only tests call (check_artifact, save_onnx, quantize_int8)."""

from __future__ import annotations

import functools
import shutil
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from catdog.export.artifacts.formats import ArtifactFormat
from catdog.export.builders.meta import read_onnx_metadata
from catdog.export.int8.quantize import DEFAULT_ACTIVATIONS, DEFAULT_CALIB_METHOD, DEFAULT_KEEP, Int8Quantizer
from catdog.export.verify.images import load_images
from catdog.export.verify.parity import ArtifactParity, artifact_runs, run_parity
from catdog.runtime.spine.images import read_image
from catdog.runtime.spine.preprocess import preprocess_batch
from catdog.train.models import get_entry, get_model
from catdog.train.models.checkpoint import save_checkpoint

SMALL = 64  # test input size when the arch accepts it
CLASSES = ("cat", "dog")
ALL_ARTIFACTS = dict(int8_for=("cpu",), fp16=True, bake=True)
# The TensorRT INT8 is the CPU INT8's quantizer with symmetric ranges: built and gated for the
# shipped family only, as a third quantization of every arch would add minutes to the suite.
TRT_INT8_ARCHS = ("efficientnet_lite0",)


def artifacts_for(arch: str) -> dict:
    return {**ALL_ARTIFACTS, "int8_for": ("cpu", "tensorrt") if arch in TRT_INT8_ARCHS else ("cpu",)}


# Archs whose pretrained weights ship offline with the project's dependencies. Their test models
# start from those weights: a deep net at random init (efficientnet_lite0: 16 blocks) amplifies
# INT8 rounding chaotically, which no trained net does, so its INT8 gate would test nothing real
# (efficientnet_lite2 at random init failed it: 75% top-1 agreement on the 12 photos).
PRETRAINED_OFFLINE = {"efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"}


def small_spec(arch: str):
    """The arch's registered spec at SMALL px if the arch runs AND exports there, else its own size
    (torchvision's alexnet needs its 6x6 feature map: ONNX has no adaptive pool from 1x1 to 6x6)."""
    from catdog.export.builders.onnx_export import export_onnx
    from catdog.runtime.spine.errors import ModelError

    spec = get_entry(arch).spec
    if spec.size <= SMALL:
        return spec
    small = spec.with_(size=SMALL, resize=SMALL * spec.resize // spec.size if spec.resize_mode == "shorter" else SMALL)
    try:
        export_onnx(get_model(arch, 2).eval(), torch.zeros(1, 3, SMALL, SMALL))
    except (RuntimeError, ModelError):
        return spec
    return small


def photos(data_dir: Path) -> list[Path]:
    return sorted(p for p in data_dir.glob("*.*.jpg"))  # cat.N.jpg / dog.N.jpg (not dog.jpg)


def recalibrate_bn(model: nn.Module, x: torch.Tensor, var_floor: float) -> None:
    """BatchNorm running stats from real photos. Variances are floored at var_floor x the layer's
    median: 12 photos give some random channels near-zero variance, and BN would then amplify
    their input's rounding noise by 1/sqrt(eps), which no trained net does."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the recalibration pass
    model.train()
    with torch.no_grad():
        model(x)
    model.eval()
    for m in bns:
        m.running_var.clamp_(min=var_floor * float(m.running_var.median()))


class _Seen(Exception):
    """Raised by lsuv's hook once the layer it measures has run: the layers after it do not matter."""


@functools.lru_cache(maxsize=None)
def _orthogonal(shape: tuple[int, ...], index: int) -> torch.Tensor:
    """nn.init.orthogonal_ from a generator of its own, seeded by the layer's place and shape: the same
    for every model with that layer (alexnet and alexnet_s0 share every shape), so each QR (seconds
    for AlexNet's 4096 x 9216 classifier) is done once per session."""
    gen = torch.Generator().manual_seed(hash((shape, index)) % 2**31)
    return nn.init.orthogonal_(torch.empty(shape), generator=gen)


def lsuv(model: nn.Module, x: torch.Tensor) -> None:
    """Layer-sequential unit-variance init (Mishkin & Matas 2016) for nets without BatchNorm:
    orthogonal weights, zero biases, then each conv/linear rescaled so its output has unit variance
    on the real photos, as in a trained net. At torchvision's default init AlexNet's activations
    shrink layer after layer until the photos differ by less than INT8's rounding."""
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))][:-1]  # not the head
    for i, layer in enumerate(layers):
        with torch.no_grad():
            layer.weight.copy_(_orthogonal(tuple(layer.weight.shape), i))
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)
        seen: list[torch.Tensor] = []

        def hook(mod, inp, out, seen=seen):
            seen.append(out.detach())
            raise _Seen

        handle = layer.register_forward_hook(hook)
        with torch.no_grad():
            try:
                model(x)
            except _Seen:
                pass
            finally:
                handle.remove()
            std = float(seen[0].std())
            layer.weight.div_(std)
            if layer.bias is not None:
                layer.bias.div_(std)


def fit_head(model: nn.Module, x: torch.Tensor) -> None:
    """A head that separates the photos along the features' first principal component, threshold
    in the widest gap, closest photo 4 logits from the boundary. A head fitted to the labels by
    least squares is not used: on random features it leans on tiny directions INT8 noise swamps."""
    head = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    feats = []
    hook = head.register_forward_hook(lambda mod, inp, out: feats.append(inp[0].detach().double()))
    with torch.no_grad():
        model(x)
    hook.remove()
    f = feats[0]
    mu = f.mean(0)
    u = torch.linalg.svd(f - mu, full_matrices=False).Vh[0]
    p = ((f - mu) @ u).sort().values
    gap = int(torch.argmax(p[1:] - p[:-1]))
    t = float(p[gap] + p[gap + 1]) / 2
    alpha = 4.0 / (float(p[gap + 1] - p[gap]) / 2)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        head.weight[1] = (alpha / 2 * u).float()
        head.weight[0] = -head.weight[1]
        head.bias[1] = float(alpha / 2 * (-(mu @ u) - t))
        head.bias[0] = -head.bias[1]


def fitted_model(arch: str, spec, data_dir: Path, seed: int = 0, var_floor: float = 0.5,
                 pretrained: bool | None = None) -> nn.Module:
    """A stand-in for a trained model that costs a second: random init (or the arch's offline
    pretrained weights), BatchNorm stats from the real photos, a head with clear margins."""
    torch.manual_seed(seed)
    pretrained = arch in PRETRAINED_OFFLINE if pretrained is None else pretrained
    model = get_model(arch, len(CLASSES), pretrained=pretrained)
    x = torch.from_numpy(preprocess_batch([read_image(p) for p in photos(data_dir)], spec))
    if not pretrained:
        if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
            recalibrate_bn(model, x, var_floor)
        else:
            lsuv(model.eval(), x)
    # eval(): fitted on the features the exported model computes; a pretrained net comes back in
    # train mode, where batch statistics and dropout gave other features and random margins.
    fit_head(model.eval(), x)
    return model.eval()


def make_ckpt(path: Path, arch: str, data_dir: Path, pretrained: bool | None = None, **fields) -> Path:
    spec = small_spec(arch)
    model = fitted_model(arch, spec, data_dir, pretrained=pretrained)
    ckpt = dict(
        arch=arch, arch_kwargs={}, classes=list(CLASSES), spec=spec, state_dict=model.state_dict(),
        metrics={"val_acc": 1.0, "n": 12}, epoch=3,
        # str(): the foundation's versions() stores a TorchVersion object, which weights_only refuses.
        versions={"torch": str(torch.__version__)},
    )
    ckpt.update(fields)
    return save_checkpoint(path, **ckpt)


def run_app(app, prog: str, *args) -> int:
    """Run a typer app in-process as a user would (argv strings); -> exit code."""
    try:
        app(args=[str(a) for a in args], prog_name=prog)
    except SystemExit as e:
        return 0 if e.code is None else int(e.code)
    return 0


def cli(*args) -> int:
    """catdog-export in-process; -> exit code."""
    from catdog.export.cli import app

    return run_app(app, "catdog-export", *args)


def check_artifact(fmt: ArtifactFormat, path: Path, ref: np.ndarray, inputs: np.ndarray, labels: np.ndarray | None,
                   overrides: dict[str, float], temperature: float = 1.0, parity_set: str = "") -> ArtifactParity:
    """One artifact's parity gates on one set, run as export runs it on ORT CPU (artifact_runs).
    `inputs`: what this artifact takes (float NCHW batch, or uint8 NHWC crops if baked)."""
    return run_parity(fmt, artifact_runs(fmt, path), inputs, ref, labels, overrides, temperature, parity_set)


def save_onnx(model: onnx.ModelProto, path: Path) -> None:
    """Plain single-file save (our models are far below protobuf's 2 GB limit)."""
    Path(path).write_bytes(model.SerializeToString())


def quantize_int8(fp32: onnx.ModelProto, calib: np.ndarray, method: str = DEFAULT_CALIB_METHOD,
                  activations: str = DEFAULT_ACTIVATIONS, keep: str = DEFAULT_KEEP) -> onnx.ModelProto:
    """fp32 model + calibration batch (N,3,S,S float32 from preprocess) -> QDQ INT8 model, with
    the KEEP_FP32[keep] layers in fp32."""
    with Int8Quantizer(fp32, calib, activations) as q:
        return q.build(method, keep)


# The calibrated export with --tta-flip that test_calibration_tta.py and test_parity_sets.py share
# (tests/export/conftest.py's `tta` fixture builds it once per session: it takes a minute).
TTA_ARCH = "efficientnet_lite0"
TTA_T = 4.0  # large: the test model is overconfident (|dlogit| 11-15 on set A), and T must visibly move its scores
TTA_CALIBRATION = {"temperature": TTA_T, "val_images": 40, "ece_bins": 15, "ece_before": 0.081, "ece_after": 0.012,
                   "nll_before": 0.31, "nll_after": 0.22}


def tta_folders(root: Path, data_dir: Path) -> dict[str, Path]:
    """calib: 4 cats + 4 dogs; parity A: the other 4 photos, Kaggle names; parity B: the same 4 in
    class folders (another label source)."""
    d = {"calib": root / "calib", "a": root / "kaggle", "b": root / "classes"}
    for label in CLASSES:
        (d["b"] / label).mkdir(parents=True)
        mine = [p for p in photos(data_dir) if p.name.startswith(f"{label}.")]
        for p in mine[:4]:
            d["calib"].mkdir(exist_ok=True)
            shutil.copy(p, d["calib"] / p.name)
        for p in mine[4:]:
            d["a"].mkdir(exist_ok=True)
            shutil.copy(p, d["a"] / p.name)
            shutil.copy(p, d["b"] / label / p.name)
    return d


def set_a(folders, spec):
    """Parity set A, read as the export reads it (the spine's decode for the model's spec): the
    images and their labels."""
    par = load_images(folders["a"], 100, CLASSES, from_names=True, spec=spec)
    return par, np.asarray(par.labels)


def par_spec(out: Path):
    return read_onnx_metadata(out / "model.onnx").spec
