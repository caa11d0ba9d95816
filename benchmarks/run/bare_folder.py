"""Reference baseline: a bare ~40-line onnxruntime folder classifier (2 decode threads, batch 16),
what a user would write by hand. catdog-bench compares the runtime's folder throughput with it.
Deliberately imports nothing from catdog. Usage: python bare_folder.py MODEL.onnx FOLDER"""

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

BATCH, WORKERS = 16, 2


def load(path, spec):
    img = cv2.imread(str(path))
    h, w = img.shape[:2]
    r = spec["resize"]
    nh, nw = (r, int(r * w / h)) if h <= w else (int(r * h / w), r)
    interp = cv2.INTER_CUBIC if spec["interpolation"] == "bicubic" else cv2.INTER_LINEAR
    img = cv2.resize(img, (nw, nh), interpolation=interp)
    top, left = round((nh - spec["size"]) / 2), round((nw - spec["size"]) / 2)
    img = img[top : top + spec["size"], left : left + spec["size"]]
    return img[:, :, ::-1] if spec["channel_order"] == "RGB" else img


def classify_folder(model, files, threads=None):
    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])
    meta = json.loads(sess.get_modelmeta().custom_metadata_map["catdog_edge"])
    spec, classes, name = meta["spec"], meta["classes"], sess.get_inputs()[0].name
    mean, std = np.float32(spec["mean"]), np.float32(spec["std"])
    labels = []
    with ThreadPoolExecutor(WORKERS) as pool:
        crops = pool.map(lambda p: load(p, spec), files)  # decodes run ahead of inference
        while batch := [c for _, c in zip(range(BATCH), crops, strict=False)]:
            x = (np.stack(batch).astype(np.float32) * spec["scale"] - mean) / std
            logits = sess.run(None, {name: np.ascontiguousarray(x.transpose(0, 3, 1, 2))})[0]
            labels += [classes[i] for i in logits.argmax(1)]
    return labels


if __name__ == "__main__":
    files = sorted(p for p in Path(sys.argv[2]).iterdir()
                   if p.suffix.lower() in (".jpg", ".jpeg", ".png") and not p.name.startswith("."))  # no ._cat.1.jpg
    for f, label in zip(files, classify_folder(sys.argv[1], files), strict=True):
        print(f"{f.name}\t{label}")
