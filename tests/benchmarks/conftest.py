"""Fixtures: a tiny export folder (fp32, INT8 by onnxruntime's static quantizer, baked uint8) built
with onnx.helper, and a labeled folder of real photos."""

import shutil

import numpy as np
import pytest

from catdog.benchmarks.doctor import tiny_classifier


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory):
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    d = tmp_path_factory.mktemp("export")
    (d / "model.onnx").write_bytes(tiny_classifier(32))
    (d / "model.baked.onnx").write_bytes(tiny_classifier(32, baked=True))

    class Calib(CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(0)
            self.it = iter([{"input": rng.standard_normal((1, 3, 32, 32)).astype(np.float32)}
                            for _ in range(4)])

        def get_next(self):
            return next(self.it, None)

    quantize_static(str(d / "model.onnx"), str(d / "model.int8.onnx"), Calib(), quant_format=QuantFormat.QDQ)
    return d


@pytest.fixture(scope="session")
def labeled_dir(tmp_path_factory, data_dir):
    """Six real photos, saved at 64x48: below 2x the tiny models' 36 px resize, so the runtime's
    reduced JPEG decode leaves them whole and the bare scripts (full decode) see the same pixels."""
    import cv2

    d = tmp_path_factory.mktemp("labeled")
    for name in ("cat.168.jpg", "cat.193.jpg", "cat.379.jpg", "dog.169.jpg", "dog.319.jpg", "dog.381.jpg"):
        small = cv2.resize(cv2.imread(str(data_dir / name)), (64, 48), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(d / name), small, [cv2.IMWRITE_JPEG_QUALITY, 95])
    return d


@pytest.fixture(scope="session")
def junk_dir(tmp_path_factory, labeled_dir):
    """labeled_dir plus what macOS and editors leave beside photos: an AppleDouble `._cat.1.jpg`
    (not a JPEG) and a real photo under a hidden name. No stage may list either."""
    d = tmp_path_factory.mktemp("junk")
    for f in labeled_dir.iterdir():
        shutil.copy(f, d / f.name)
    (d / "._cat.1.jpg").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ")
    shutil.copy(labeled_dir / "cat.168.jpg", d / ".cat.999.jpg")
    return d


@pytest.fixture(scope="session")
def torch_artifacts(tmp_path_factory):
    """A catdog checkpoint (efficientnet_lite0, random weights, 32 px) and its TorchScript with metadata."""
    import torch

    from catdog.benchmarks.doctor import tiny_spec
    from catdog.runtime.spine.metadata import METADATA_FILE, ModelMetadata
    from catdog.train.models import get_model
    from catdog.train.models.checkpoint import save_checkpoint

    d = tmp_path_factory.mktemp("torch")
    torch.manual_seed(0)
    model = get_model("efficientnet_lite0", 2).eval()
    spec = tiny_spec(32)
    save_checkpoint(d / "best.pth", arch="efficientnet_lite0", arch_kwargs={}, classes=["cat", "dog"],
                    spec=spec.to_dict(), state_dict=model.state_dict(), train_config={}, metrics={}, epoch=0,
                    # plain str: this branch's save_checkpoint stores TorchVersion, which weights_only
                    # loading refuses (fixed on the train branch)
                    versions={"torch": str(torch.__version__)})
    meta = ModelMetadata(classes=("cat", "dog"), spec=spec, arch="efficientnet_lite0")
    ts = torch.jit.trace(model, torch.zeros(1, 3, 32, 32))
    torch.jit.save(ts, str(d / "model.ts"), _extra_files={METADATA_FILE: meta.to_json()})
    return d


@pytest.fixture(autouse=True)
def _torch_threads_restored():
    """catdog-bench's torch rows set torch's process-wide thread count on every call; a later
    in-process training test must not inherit 1 thread (its bit-equal checks then differ)."""
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)
