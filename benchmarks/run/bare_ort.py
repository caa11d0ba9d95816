"""Reference baseline: the bare onnxruntime script a user would write by hand to classify one photo
(cv2.imread + numpy preprocessing + session.run). catdog-bench times it against the runtime CLI
for cold start and peak RSS. Deliberately imports nothing from catdog: it is the floor to beat.
Usage: python bare_ort.py MODEL.onnx IMAGE  (a float-input model carrying catdog metadata)"""

import json
import sys

import cv2
import numpy as np
import onnxruntime as ort

model, image = sys.argv[1], sys.argv[2]
sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
meta = json.loads(sess.get_modelmeta().custom_metadata_map["catdog_edge"])
spec, classes = meta["spec"], meta["classes"]
img = cv2.imread(image)  # BGR uint8
h, w = img.shape[:2]
nh, nw = (spec["resize"], int(spec["resize"] * w / h)) if h <= w else (int(spec["resize"] * h / w), spec["resize"])
interp = cv2.INTER_CUBIC if spec["interpolation"] == "bicubic" else cv2.INTER_LINEAR
img = cv2.resize(img, (nw, nh), interpolation=interp)
top, left = round((nh - spec["size"]) / 2), round((nw - spec["size"]) / 2)
img = img[top : top + spec["size"], left : left + spec["size"]]
if spec["channel_order"] == "RGB":
    img = img[:, :, ::-1]
x = (img.astype(np.float32) * spec["scale"] - np.float32(spec["mean"])) / np.float32(spec["std"])
x = np.ascontiguousarray(x.transpose(2, 0, 1)[None])
logits = sess.run(None, {sess.get_inputs()[0].name: x})[0][0]
print(classes[int(np.argmax(logits))])
