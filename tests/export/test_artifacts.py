"""A full export of a small efficientnet_lite0 (real photos, real ONNX Runtime sessions): every
artifact is published and passes its gates, carries identical metadata, and has the promised form."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, numpy_helper
from testkit.export import quantize_int8

from catdog.export.artifacts.formats import FORMATS
from catdog.export.builders.meta import read_onnx_metadata, set_onnx_metadata
from catdog.export.builders.torchscript import load_torchscript
from catdog.export.int8.quantize import qdq_summary, symmetric_qdq_problems
from catdog.runtime.engine.classifier import Classifier
from catdog.runtime.engine.trt import check_trt_int8
from catdog.runtime.spine.artifacts import ARTIFACTS
from catdog.runtime.spine.errors import ProviderError
from catdog.runtime.spine.fileio import file_sha256
from catdog.runtime.spine.images import read_image
from catdog.runtime.spine.isa import int8_path, saturates
from catdog.runtime.spine.metadata import METADATA_KEY, ModelMetadata, from_metadata_map
from catdog.runtime.spine.preprocess import preprocess_batch, resize_crop
from catdog.train.models.checkpoint import load_checkpoint

ARCH = "efficientnet_lite0"
ONNX_FORMATS = [f for f in FORMATS.values() if f.kind == "onnx"]


def session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def lite(exported):
    return exported(ARCH)


@pytest.fixture(scope="module")
def images(photo_dir):
    return [read_image(p) for p in sorted(photo_dir.iterdir())]


def test_every_artifact_published_and_passes_its_gates(lite):
    out, report, _ = lite
    assert report.passed and report.published
    for fmt in FORMATS.values():
        assert (out / fmt.filename).stat().st_size > 0, fmt.name
    assert not list(out.glob(".*.tmp")), "temp files left behind"
    data = json.loads((out / "export-report.json").read_text())
    assert data["passed"] and [a["name"] for a in data["artifacts"]] == list(FORMATS)
    for a in data["artifacts"]:
        assert a["size_mb"] > 0 and a["latency_ms"] > 0 and a["passed"] is True and a["reasons"] == []
    [parity] = data["parity_sets"]
    assert parity["images"] == 12 and [a["name"] for a in parity["artifacts"]] == list(FORMATS)
    for a in parity["artifacts"]:
        assert a["n_images"] == 12 and a["accuracy"]["n"] == 12, a
        # every gate was evaluated (labels come from the names) and passed
        assert a["gates"] and all(g["passed"] is True for g in a["gates"]), a
    md = (out / "export-report.md").read_text()
    for fmt in FORMATS.values():
        assert f"| {fmt.name} | {fmt.filename} |" in md


def test_formats_are_the_runtime_artifact_table():
    """One artifact table: export's rows are the runtime's, by name (file, kind, precision, input)."""
    assert list(FORMATS) == list(ARTIFACTS)
    for name, fmt in FORMATS.items():
        row = ARTIFACTS[name]
        assert fmt.file is row
        assert (fmt.name, fmt.filename, fmt.kind, fmt.precision, fmt.input_format) == (
            row.name, row.filename, row.kind, row.precision, row.input_format)


def test_metadata_identical_in_every_artifact_except_precision_and_input_format(lite):
    out, _, ckpt_path = lite
    ckpt = load_checkpoint(ckpt_path)
    metas = {f.name: read_onnx_metadata(out / f.filename) for f in ONNX_FORMATS}
    _, metas["torchscript"] = load_torchscript(out / "model.ts")
    for name, meta in metas.items():
        fmt = FORMATS[name]
        assert (meta.precision, meta.input_format) == (fmt.precision, fmt.input_format), name
    expected = {"int8": "int8", "int8-trt": "int8", "fp16": "fp16", "baked": "fp32", "onnx": "fp32",
                "torchscript": "fp32"}
    assert {n: m.precision for n, m in metas.items()} == expected
    assert metas["baked"].input_format == "uint8"
    # the INT8 artifacts also say which target their quantization is for (--trt-int8 reads it), and
    # their largest |int8 weight| (runtime/spine/isa.py: what decides saturation on x86 without VNNI)
    assert metas["int8"].extra["int8"] == {"for": "cpu", "target_isa": "avx2", "activations": "uint8",
                                           "reduce_range": True, "symmetric": False, "max_int8_weight": 64,
                                           "kept_fp32_layers": []}  # reduce_range: 7-bit weights
    trt = metas["int8-trt"].extra["int8"]
    assert {k: v for k, v in trt.items() if k != "max_int8_weight"} == {
        "for": "tensorrt", "activations": "int8", "weights": "int8 per-channel", "symmetric": True}
    assert 64 < trt["max_int8_weight"] <= 127  # full-range symmetric weights

    def common(m):
        d = {k: v for k, v in m.to_dict().items() if k not in ("precision", "input_format")}
        return {**d, "extra": {k: v for k, v in d["extra"].items() if k != "int8"}}

    assert all(common(m) == common(metas["onnx"]) for m in metas.values())
    meta = metas["onnx"]
    assert meta.classes == ("cat", "dog") and meta.arch == ARCH and meta.spec == ckpt.spec
    assert meta.checkpoint_sha256 == file_sha256(ckpt_path)
    assert meta.accuracy == {"val_acc": 1.0, "n": 12}
    assert meta.versions["onnxruntime"] == ort.__version__
    # A checkpoint from before calibration: plain softmax scores, and nothing claimed about them.
    assert "temperature" not in torch.load(ckpt_path, weights_only=True) and meta.temperature == 1.0
    assert "calibration" not in meta.extra and "tta" not in meta.extra


def test_metadata_round_trip_through_onnxruntime(lite):
    """What the torch-free runtime will do: read custom_metadata_map from an ORT session."""
    out, _, _ = lite
    for fmt in ONNX_FORMATS:
        props = session(out / fmt.filename).get_modelmeta().custom_metadata_map
        meta = from_metadata_map(props, fmt.filename)
        assert meta == read_onnx_metadata(out / fmt.filename)
        assert ModelMetadata.from_json(meta.to_json()) == meta
        keys = [p.key for p in onnx.load(str(out / fmt.filename)).metadata_props]
        assert keys.count(METADATA_KEY) == 1


def test_set_metadata_replaces_never_duplicates(lite):
    out, _, _ = lite
    model = onnx.load(str(out / "model.onnx"))
    meta = read_onnx_metadata(out / "model.onnx")
    set_onnx_metadata(model, meta.with_(precision="fp16"))
    assert [p.key for p in model.metadata_props].count(METADATA_KEY) == 1
    assert from_metadata_map({p.key: p.value for p in model.metadata_props}).precision == "fp16"


def test_baked_variant_matches_fp32_on_the_same_photos(lite, images):
    out, _, _ = lite
    spec = read_onnx_metadata(out / "model.baked.onnx").spec
    baked = session(out / "model.baked.onnx")
    inp = baked.get_inputs()[0]
    assert inp.type == "tensor(uint8)" and inp.shape[1:] == [spec.size, spec.size, 3]
    crops = np.stack([resize_crop(im, spec) for im in images])
    got = baked.run(None, {inp.name: crops})[0]
    ref = session(out / "model.onnx").run(None, {"input": preprocess_batch(images, spec)})[0]
    np.testing.assert_allclose(got, ref, atol=1e-5, rtol=0)
    # The declared channel order matters: swapped crops give other logits.
    swapped = baked.run(None, {inp.name: np.ascontiguousarray(crops[..., ::-1])})[0]
    assert np.max(np.abs(swapped - ref)) > 1e-3


def test_int8_is_qdq_with_per_channel_weights(lite):
    out, report, _ = lite
    model = onnx.load(str(out / "model.int8.onnx"))
    ops = {n.op_type for n in model.graph.node}
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    assert not ops & {"QLinearConv", "QLinearMatMul", "ConvInteger"}, "QOperator format, not QDQ"
    producers = {o: n for n in model.graph.node for o in n.output}
    inits = {t.name: t for t in model.graph.initializer}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    stem = [n for n in convs if n.input[0] in {i.name for i in model.graph.input}]
    assert len(stem) == 1 and stem[0].input[1] in inits, "the stem conv stays fp32 (boundary_nodes)"
    assert inits[stem[0].input[1]].data_type == TensorProto.FLOAT
    convs = [n for n in convs if n not in stem]
    assert convs
    for conv in convs:
        dq = producers[conv.input[1]]
        assert dq.op_type == "DequantizeLinear", conv.name
        assert inits[dq.input[0]].data_type == TensorProto.INT8
        scale = inits[dq.input[1]]
        assert list(scale.dims) == [inits[dq.input[0]].dims[0]], "per-channel: one scale per output channel"
    summary = qdq_summary(model)
    assert summary["per_channel_weights"] >= len(convs)
    assert report.details["int8"]["calib_images"] == 12
    # --calib and --parity are one folder here: no image is left to choose on, so nothing is chosen
    choice = report.details["int8_choice"]
    assert choice["held_out"] == 0 and choice["candidates"] == [] and "nothing chosen" in choice["how"]
    assert (choice["method"], choice["keep_fp32"]) == ("minmax", "stem+classifier")
    # Default U8S8: uint8 activations (what ORT's AVX2 kernels are fast at), int8 weights.
    assert report.details["int8"]["activations"] == "uint8"
    q = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert q and all(inits[n.input[2]].data_type == TensorProto.UINT8 for n in q)


def test_int8_for_tensorrt_is_symmetric_qdq_and_gated_like_int8(lite, images):
    """TensorRT takes int8 Q/DQ with zero point 0 and per-channel weights only: the artifact is
    checked on its graph, passes INT8's gates, and is the only one --trt-int8 accepts."""
    out, report, _ = lite
    model = onnx.load(str(out / "model.int8-trt.onnx"))
    assert symmetric_qdq_problems(model) == []
    inits = {t.name: t for t in model.graph.initializer}
    qdq = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert len(qdq) > 20
    for n in qdq:
        zp = inits[n.input[2]]
        assert zp.data_type == TensorProto.INT8 and not numpy_helper.to_array(zp).any(), n.name
    assert qdq_summary(model)["per_channel_weights"] >= 10
    # the CPU INT8 is asymmetric (U8S8): the check names why TensorRT would refuse it
    cpu_problems = symmetric_qdq_problems(onnx.load(str(out / "model.int8.onnx")), most=10_000)
    assert any("not INT8" in p and "UINT8" in p for p in cpu_problems)
    [parity] = report.parity_sets
    trt = {a.name: a for a in parity.artifacts}["int8-trt"]
    assert [g.name for g in trt.gates] == ["int8-trt.agreement", "int8-trt.acc_drop"]
    assert all(g.passed for g in trt.gates) and trt.top1_agreement >= 0.99
    check_trt_int8(read_onnx_metadata(out / "model.int8-trt.onnx"), out / "model.int8-trt.onnx")
    for name in ("model.int8.onnx", "model.onnx"):
        with pytest.raises(ProviderError, match=f"--trt-int8: {name} is .*catdog-export --int8-for tensorrt"):
            check_trt_int8(read_onnx_metadata(out / name), out / name)
    said: list[str] = []  # it runs anywhere, not only on TensorRT; where this CPU's kernels saturate it, it says so
    clf = Classifier.from_file(out / "model.int8-trt.onnx", provider="cpu", log=said.append)
    ref = Classifier.from_file(out / "model.onnx", provider="cpu")
    labels = [clf.predict(im).label for im in images]
    if saturates(int8_path(), read_onnx_metadata(out / "model.int8-trt.onnx").extra["int8"]["max_int8_weight"]):
        assert any("can saturate" in line and int8_path() in line and "--int8" in line for line in said), said
        assert set(labels) <= {"cat", "dog"}
    else:
        assert not any("saturate" in line for line in said), said
        assert labels == [ref.predict(im).label for im in images]


def test_int8_activations_option_gives_s8s8_that_runs(lite, images):
    out, report, _ = lite
    fp32 = onnx.load(str(out / "model.onnx"))
    spec = read_onnx_metadata(out / "model.onnx").spec
    x = preprocess_batch(images[:4], spec)
    model = quantize_int8(fp32, x, activations="int8")
    inits = {t.name: t for t in model.graph.initializer}
    q = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert q and all(inits[n.input[2]].data_type == TensorProto.INT8 for n in q)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    logits = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    assert logits.shape == (4, 2) and np.isfinite(logits).all()


def test_fp16_keeps_fp32_io_and_runs_on_cpu(lite, images):
    out, _, _ = lite
    model = onnx.load(str(out / "model.fp16.onnx"))
    assert [i.type.tensor_type.elem_type for i in model.graph.input] == [TensorProto.FLOAT]
    assert [o.type.tensor_type.elem_type for o in model.graph.output] == [TensorProto.FLOAT]
    types = [t.data_type for t in model.graph.initializer]
    assert types.count(TensorProto.FLOAT16) > 10 and TensorProto.FLOAT not in types
    spec = read_onnx_metadata(out / "model.fp16.onnx").spec
    x = preprocess_batch(images, spec)
    got = session(out / "model.fp16.onnx").run(None, {"input": x})[0]
    ref = session(out / "model.onnx").run(None, {"input": x})[0]
    assert got.dtype == np.float32 and (got.argmax(1) == ref.argmax(1)).all()


@pytest.mark.parametrize("name", ["onnx", "int8", "fp16", "baked"])
def test_dynamic_batch_axis(lite, images, name):
    out, _, _ = lite
    fmt = FORMATS[name]
    sess = session(out / fmt.filename)
    spec = read_onnx_metadata(out / fmt.filename).spec
    if fmt.input_format == "uint8":
        x = np.stack([resize_crop(im, spec) for im in images[:5]])
    else:
        x = preprocess_batch(images[:5], spec)
    batched = sess.run(None, {"input": x})[0]
    single = np.concatenate([sess.run(None, {"input": x[i : i + 1]})[0] for i in range(5)])
    assert batched.shape == (5, 2)
    np.testing.assert_allclose(batched, single, atol=1e-4)


def test_torchscript_is_traced_frozen_and_carries_metadata(lite, images):
    out, _, _ = lite
    module, meta = load_torchscript(out / "model.ts")
    assert meta is not None and meta.arch == ARCH
    assert list(module.parameters()) == [], "frozen: weights are inlined constants"
