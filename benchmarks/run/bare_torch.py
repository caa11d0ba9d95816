"""Reference baseline: the torch pipeline for one photo (import torch, load TorchScript model.ts
or rebuild the eager model from a catdog checkpoint, preprocess, forward). catdog-bench times its
cold start and peak RSS against the torch-free runtime. Usage: python bare_torch.py MODEL IMAGE"""

import sys

import torch

from catdog.runtime.spine.images import read_image
from catdog.runtime.spine.metadata import METADATA_FILE, ModelMetadata
from catdog.runtime.spine.preprocess import preprocess

model_path, image = sys.argv[1], sys.argv[2]
if model_path.endswith(".ts"):
    extra = {METADATA_FILE: ""}
    model = torch.jit.load(model_path, map_location="cpu", _extra_files=extra)
    meta = ModelMetadata.from_json(extra[METADATA_FILE])
    spec, classes = meta.spec, meta.classes
else:
    from catdog.train.models.checkpoint import build_model, load_checkpoint

    ckpt = load_checkpoint(model_path)
    model, spec, classes = build_model(ckpt), ckpt.spec, ckpt.classes
with torch.inference_mode():
    logits = model.eval()(torch.from_numpy(preprocess(read_image(image, spec), spec)))[0]
print(classes[int(logits.argmax())])
