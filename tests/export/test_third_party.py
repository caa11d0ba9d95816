"""A third-party model on the real network: the 1000-class ImageNet efficientnet_lite0,
exported to ONNX and stripped of every metadata entry, runs in catdog-runtime through flags alone
(--labels --size --mean --std) and answers Samoyed for dog.jpg."""

import json
import subprocess
import sys

import onnx
import torch
from testkit.export import save_onnx

from catdog.export.builders.onnx_export import export_onnx
from catdog.runtime.spine.metadata import METADATA_KEY
from catdog.train.models import get_entry, get_model


def test_stripped_imagenet_lite0_answers_samoyed_through_flags(tmp_path, data_dir, dog_jpg):
    spec = get_entry("efficientnet_lite0").spec
    model = get_model("efficientnet_lite0", 1000, pretrained=True).eval()
    proto = export_onnx(model, torch.zeros(1, 3, spec.size, spec.size))
    del proto.metadata_props[:]  # a third-party file: no catdog metadata at all
    path = tmp_path / "stripped.onnx"
    save_onnx(proto, path)
    assert METADATA_KEY not in {p.key for p in onnx.load(str(path)).metadata_props}

    cmd = [sys.executable, "-m", "catdog.runtime", str(dog_jpg), "--model", str(path), "--json",
           "--labels", str(data_dir / "imagenet_classes.txt"), "--size", "224", "--mean", "0.498", "--std", "0.502",
           "--provider", "cpu"]  # the CPU's numbers on any box (the score's range below)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    row = json.loads(r.stdout.splitlines()[0])
    assert row["label"] == "Samoyed" and len(row["probs"]) == 1000
    assert 0.6 < row["score"] < 0.9  # ~0.77 with the spec's bicubic; the flags' default is bilinear

    # Without the flags that describe its preprocessing, the same file is a clear error, not a guess.
    r = subprocess.run(cmd[:6], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--labels" in r.stderr and "Traceback" not in r.stderr
