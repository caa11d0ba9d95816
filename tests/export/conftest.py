"""Export-test fixtures: real checkpoints and exports built once per session (helpers: tests/testkit/export.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from testkit.export import TTA_ARCH, TTA_CALIBRATION, TTA_T, artifacts_for, make_ckpt, photos, tta_folders

from catdog.export.pipeline import ExportOptions, run_export


@pytest.fixture(scope="session")
def photo_dir(tmp_path_factory, data_dir) -> Path:
    """The 12 labelled photos, flat Kaggle names (cat.168.jpg ...)."""
    d = tmp_path_factory.mktemp("photos")
    for p in photos(data_dir):
        shutil.copy(p, d / p.name)
    return d


@pytest.fixture(scope="session")
def ckpt_factory(tmp_path_factory, data_dir):
    cache: dict[tuple, Path] = {}

    def make(arch: str, pretrained: bool | None = None) -> Path:
        key = (arch, pretrained)
        if key not in cache:
            cache[key] = make_ckpt(tmp_path_factory.mktemp(f"ckpt-{arch}") / "best.pth", arch, data_dir, pretrained)
        return cache[key]

    return make


@pytest.fixture(scope="session")
def exported(tmp_path_factory, ckpt_factory, photo_dir):
    """arch -> (out_dir, report, ckpt) of a full export (every artifact), done once per session."""
    cache: dict[str, tuple] = {}

    def get(arch: str):
        if arch not in cache:
            out = tmp_path_factory.mktemp(f"export-{arch}")
            ckpt = ckpt_factory(arch)
            opts = ExportOptions(
                ckpt=ckpt, out=out, calib=photo_dir, parity=(photo_dir,), labels_from_names=True,
                latency_runs=2, **artifacts_for(arch),
            )
            cache[arch] = (out, run_export(opts), ckpt)
        return cache[arch]

    return get


@pytest.fixture(scope="session")
def folders(tmp_path_factory, data_dir) -> dict[str, Path]:
    """The calibrated TTA export's folders (testkit.export.tta_folders): calib, parity sets a and b."""
    return tta_folders(tmp_path_factory.mktemp("tta-folders"), data_dir)


@pytest.fixture(scope="session")
def tta(tmp_path_factory, data_dir, folders):
    """(out, report, ckpt, opts) of one export of a calibrated efficientnet_lite0 with --tta-flip and
    every artifact, on two parity sets: test_calibration_tta.py and test_parity_sets.py read it."""
    ckpt = make_ckpt(tmp_path_factory.mktemp("ckpt-t") / "best.pth", TTA_ARCH, data_dir, temperature=TTA_T,
                     calibration=TTA_CALIBRATION)
    out = tmp_path_factory.mktemp("export-tta")
    opts = ExportOptions(ckpt=ckpt, out=out, calib=folders["calib"], calib_count=5, parity=(folders["a"], folders["b"]),
                         labels_from_names=True, int8_for=("cpu",), fp16=True, bake=True, tta_flip=True,
                         latency_runs=2)
    return out, run_export(opts), ckpt, opts
