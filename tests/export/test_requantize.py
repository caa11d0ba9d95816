"""scripts/requantize.py: a published fp32 ONNX re-quantized without its checkpoint, by the export's
own INT8 builder: the metadata carries over with the INT8 record, --split chooses on the
validation part of train/data/datasets.py's split only, and evaluation folders are never used."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from catdog.export.builders.meta import read_onnx_metadata
from catdog.runtime.engine.classifier import Classifier

SCRIPT = Path(__file__).parents[2] / "scripts" / "requantize.py"


def test_requantize_rebuilds_the_cpu_int8_from_the_fp32_onnx(exported, photo_dir, tmp_path):
    out, *_ = exported("efficientnet_lite0")
    dst = tmp_path / "model.int8.onnx"
    evaluation = tmp_path / "eval"
    evaluation.mkdir()
    (evaluation / "cat.168.jpg").write_bytes((photo_dir / "cat.168.jpg").read_bytes())  # a copy: excluded by bytes
    res = subprocess.run([sys.executable, SCRIPT, out / "model.onnx", dst, "--calib", photo_dir, "--split",
                          "--exclude", evaluation, "--calib-count", "8"], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    fp32, int8 = read_onnx_metadata(out / "model.onnx"), read_onnx_metadata(dst)
    assert int8.precision == "int8" and int8.classes == fp32.classes and int8.spec == fp32.spec
    assert int8.checkpoint_sha256 == fp32.checkpoint_sha256
    assert int8.extra["int8"]["target_isa"] == "avx2" and int8.extra["int8"]["max_int8_weight"] <= 64
    choice = json.loads((tmp_path / "model.int8.onnx.choice.json").read_text())
    # the split of 12 photos: 10 to calibrate (8 used), 2 validation photos to choose on, minus the excluded copy
    assert choice["calib_images"] == 8 and 1 <= choice["held_out_images"] <= 2
    assert "--int8-target avx2 (the default)" in res.stdout
    ref, got = (Classifier.from_file(p, provider="cpu", log=None) for p in (out / "model.onnx", dst))
    photos = sorted(photo_dir.iterdir())
    same = [ref.predict(p).label == got.predict(p).label for p in photos]
    assert np.mean(same) >= 0.9


def test_requantize_refuses_a_model_that_is_not_fp32(exported, photo_dir, tmp_path):
    out, *_ = exported("efficientnet_lite0")
    res = subprocess.run([sys.executable, SCRIPT, out / "model.int8.onnx", tmp_path / "x.onnx", "--calib", photo_dir],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "is int8, not an fp32 model; pass the fp32 ONNX" in res.stderr
    assert not (tmp_path / "x.onnx").exists()
