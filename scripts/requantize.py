#!/usr/bin/env python3
"""Re-quantize a published fp32 ONNX model into its CPU INT8, without its checkpoint: the same
builder catdog-export runs (export/artifacts/formats.py build_int8: --int8-target format, calibration method
and fp32 layers chosen on held-out calibration photos, per-layer sensitivity), fed the fp32 graph
and its metadata instead of a PyTorch model. Evaluation folders given with --exclude are never
calibration or choice photos (by path or by bytes). Writes OUT atomically and OUT's choices as
<OUT>.choice.json. Used to rebuild runtime/assets/model.int8.onnx from runtime/assets/model.onnx:

  python scripts/requantize.py runtime/assets/model.onnx /tmp/model.int8.onnx \\
      --calib ../shared/datasets/dogs-vs-cats/train --exclude ../shared/datasets/dogs-vs-cats/test \\
      --exclude ../shared/datasets/pet-breeds-dev --split --select-count 400

--split: calibrate on the training part of the reference run's split of --calib (train/data/datasets.py
split, seed 0, 20%), choose on its 400 validation photos, which the model never trained on. The
shipped runtime/assets/model.int8-vnni.onnx is the same command with --int8-target vnni
--calib-count 1600 (on a CPU without VNNI its choices are scored by simulated quantization).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import onnx

from catdog.export.artifacts.formats import FORMATS, BuildContext
from catdog.export.builders.meta import read_onnx_metadata
from catdog.export.verify.images import held_out, load_images
from catdog.runtime.spine.errors import CatdogError
from catdog.runtime.spine.fileio import atomic_write
from catdog.runtime.spine.folders import list_images
from catdog.runtime.spine.preprocess import preprocess_batch


def requantize(fp32_path: Path, out: Path, calib: Path, exclude: list[Path], target: str = "avx2",
               calib_count: int = 200, select_count: int = 100, held_dir: Path | None = None,
               calib_method: str | None = None) -> dict:
    meta = read_onnx_metadata(fp32_path)
    if meta.precision != "fp32":
        raise CatdogError(f"{fp32_path}: is {meta.precision}, not an fp32 model; pass the fp32 ONNX")
    spec = meta.spec
    calib_set = load_images(calib, calib_count, spec=spec)
    never = [p for folder in exclude for p in list_images(folder, recursive=True)]
    # The photos INT8's choices are made on: --held-out DIR (the training run's validation split, which
    # the model never trained on, so INT8's errors show there as on new photos), else calibration-folder
    # photos that are not calibration images.
    held = held_out(held_dir or calib, select_count, list(calib_set.paths) + never, spec)
    ctx = BuildContext(model=None, example=None, check_inputs=None, meta=meta, spec=spec, opset=0,
                       calib=preprocess_batch(list(calib_set.images), spec), int8_target=target,
                       calib_method=calib_method,
                       held_out=preprocess_batch(list(held.images), spec) if held.images else None,
                       held_out_why="" if held.images else f"no held-out images left in {calib}")
    fmt = FORMATS["int8"]
    start = time.perf_counter()
    tmp = out.with_name(out.name + ".tmp")
    fmt.builder(ctx, tmp, fmt.metadata(meta), onnx.load(str(fp32_path)))
    tmp.replace(out)
    choice = {"fp32": str(fp32_path), "calib": str(calib), "calib_images": len(calib_set.paths),
              "held_out_from": str(held_dir or calib),
              "held_out_images": len(held.paths), "excluded_folders": [str(p) for p in exclude],
              "seconds": round(time.perf_counter() - start, 1), "note": ctx.notes.get("int8"),
              "details": ctx.details}
    atomic_write(out.with_name(out.name + ".choice.json"), json.dumps(choice, indent=2, default=str) + "\n")
    return choice


def split_folders(folder: Path, tmp: Path, val_fraction: float = 0.2, seed: int = 0) -> tuple[Path, Path]:
    """(train, val) folders of links to the photos of train/data/datasets.py's split of `folder`."""
    from catdog.runtime.spine.folders import scan
    from catdog.train.data.datasets import split

    parts = dict(zip(("train", "val"), split(scan(folder), val_fraction, seed), strict=True))
    for name, part in parts.items():
        (tmp / name).mkdir()
        for p, _ in part.samples:
            (tmp / name / Path(p).name).symlink_to(Path(p).resolve())
    return tmp / "train", tmp / "val"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("fp32", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--calib", type=Path, required=True)
    ap.add_argument("--exclude", type=Path, action="append", default=[])
    ap.add_argument("--split", action="store_true",
                    help="calibrate on the training split, choose on the validation one")
    ap.add_argument("--int8-target", default="avx2")
    ap.add_argument("--calib-count", type=int, default=200)
    ap.add_argument("--select-count", type=int, default=100)
    ap.add_argument("--calib-method", default=None, help="minmax | entropy | percentile (default: chosen)")
    a = ap.parse_args()
    try:
        with tempfile.TemporaryDirectory(prefix="catdog-split-") as tmp:
            calib, held = split_folders(a.calib, Path(tmp)) if a.split else (a.calib, None)
            choice = requantize(a.fp32, a.out, calib, a.exclude, a.int8_target, a.calib_count, a.select_count, held,
                                a.calib_method)
    except CatdogError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(choice["note"])
    print(f"wrote {a.out} ({choice['seconds']} s) and {a.out.name}.choice.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
