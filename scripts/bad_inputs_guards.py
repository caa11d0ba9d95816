"""scripts/bad_inputs.py's rows for issue 32's shared guards (#2, #4, #12, #13, #14): hostile images in
the messy folder (1x1, 1x2000, 8x20000, damaged JPEGs: one row each, refused), a camera URL whose
credentials must not be shown, a model whose metadata says `output: probs` but gives logits, and JSON
nested 100000 deep in a model's metadata and in a --labels file. Imports catdog only."""

from __future__ import annotations

from pathlib import Path


def corpus_guards(t: Path, p: dict[str, Path]) -> None:
    """Adds to bad_inputs.build_corpus's folder `t` (its messy/ folder and tiny photos are used)."""
    import cv2
    import numpy as np
    import onnx
    from onnx import helper
    from synthetic import build_model, meta  # scripts/, beside this file

    from catdog.runtime.spine.metadata import METADATA_KEY

    messy = p["messy"]
    for name, (h, w) in {"pixel.png": (1, 1), "thin.png": (2000, 1), "strip.png": (20000, 8)}.items():
        cv2.imwrite(str(messy / name), np.zeros((h, w, 3), np.uint8))
    jpg = p["photo"].read_bytes()
    mid = len(jpg) // 2
    (messy / "damaged.jpg").write_bytes(jpg[:mid] + jpg[mid + 300:])  # 300 bytes of scan data lost
    (messy / "cut-scan.jpg").write_bytes(jpg[:mid] + b"\xff\xd9")  # the scan ends half way
    build_model(t / "liar.onnx", metadata=meta(output="probs"), fc_b=np.array([5.0, -5.0], np.float32))
    deep = "[" * 100_000 + "]" * 100_000
    model = onnx.load(str(build_model(t / "deepmeta.onnx", metadata=meta())))
    del model.metadata_props[:]
    helper.set_model_props(model, {METADATA_KEY: deep})
    onnx.save(model, str(t / "deepmeta.onnx"))
    (t / "deep.json").write_text(deep)


def cases_guards(t: Path, p: dict[str, Path]) -> list[tuple[str, list, dict]]:
    rt, photo = ["catdog-runtime"], p["photo"]
    return [
        ("camera URL with a password that never connects (shown redacted)",
         rt + ["rtsp://admin:hunter2@127.0.0.1:9/live?token=s3cr3t", "--model", p["model"], "--reconnects", "0"], {}),
        ("metadata says output: probs, the graph gives logits", rt + [photo, "--model", t / "liar.onnx"], {}),
        ("metadata JSON nested 100000 deep", rt + [photo, "--model", t / "deepmeta.onnx"], {}),
        ("--labels JSON nested 100000 deep",
         rt + [photo, "--model", t / "nometa.onnx", "--labels", t / "deep.json"], {}),
    ]
