"""INT8 per-layer sensitivity (export/int8/sensitivity.py) on a tiny conv net built here, on real photos
and real ONNX Runtime sessions: a layer made deliberately sensitive (its input carries one channel
of constant 1000, so uint8 steps of ~4 wipe out the small channels that decide the class) ranks
first and is kept in fp32, which restores the agreement with fp32; with no such layer nothing is
kept; and the figures are the chosen QDQ model's own quantization, one layer at a time."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from testkit.export import photos

from catdog.export.builders.simplify import run_onnx
from catdog.export.int8.int8_choice import choose_int8
from catdog.export.int8.qdq_surgery import OneLayer, fold_weights
from catdog.export.int8.quantize import Int8Quantizer
from catdog.export.int8.sensitivity import SensitivityConfig, fake_quant_run, figures, sweep, worst_images
from catdog.runtime.spine.errors import InputError
from catdog.runtime.spine.images import read_image
from catdog.runtime.spine.preprocess import preprocess_batch
from catdog.runtime.spine.spec import PreprocessSpec

SIZE = 24
SENSITIVE = "conv2"


def _images(data_dir) -> np.ndarray:
    """The 12 photos and their mirror images, crops from two sizes: 48 real preprocessed inputs."""
    out = []
    for resize in (SIZE, SIZE + 8):
        spec = PreprocessSpec(size=SIZE, resize=resize, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
        x = preprocess_batch([read_image(p) for p in photos(data_dir)], spec)
        out += [x, x[:, :, :, ::-1]]
    return np.ascontiguousarray(np.concatenate(out)).astype(np.float32)


def _graph(w: dict[str, np.ndarray], head: tuple[np.ndarray, np.ndarray] | None) -> onnx.ModelProto:
    """conv1 3x3 -> Relu -> conv2 3x3 -> Relu -> conv3 1x1 -> Relu -> GAP -> (fc: Gemm to 2 logits)."""
    nodes, inits = [], []
    x = "input"
    for name in ("conv1", "conv2", "conv3"):
        k = w[f"{name}.w"].shape[-1]
        nodes += [helper.make_node("Conv", [x, f"{name}.w", f"{name}.b"], [f"{name}.out"], name=name,
                                   pads=[k // 2] * 4),
                  helper.make_node("Relu", [f"{name}.out"], [f"{name}.act"], name=f"{name}.relu")]
        inits += [numpy_helper.from_array(w[f"{name}.{p}"], f"{name}.{p}") for p in "wb"]
        x = f"{name}.act"
    nodes += [helper.make_node("GlobalAveragePool", [x], ["gap"], name="gap"),
              helper.make_node("Flatten", ["gap"], ["feat"], name="flatten")]
    out, width = "feat", w["conv3.w"].shape[0]
    if head is not None:
        inits += [numpy_helper.from_array(head[0], "fc.w"), numpy_helper.from_array(head[1], "fc.b")]
        nodes.append(helper.make_node("Gemm", ["feat", "fc.w", "fc.b"], ["logits"], name="fc", transB=1))
        out, width = "logits", 2
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                            ["N", 3, SIZE, SIZE])],
                              [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["N", width])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def tiny_net(x: np.ndarray, outlier: bool) -> onnx.ModelProto:
    """With `outlier`, conv1's channel 0 is a constant 1000 that conv2 ignores (zero weights): the
    uint8 range of conv2's input is then [0, 1000]. The head splits the images in the widest gap
    of the features' first principal component, the closest image 4 logits from the boundary."""
    rng = np.random.default_rng(0)
    # distinct biases: the quantizer's pre-processing merges equal initializers across layers
    w = {"conv1.w": rng.normal(0, 0.3, (6, 3, 3, 3)), "conv1.b": rng.normal(0.1, 0.02, 6),
         "conv2.w": rng.normal(0, 0.3, (6, 6, 3, 3)), "conv2.b": rng.normal(0.1, 0.02, 6),
         "conv3.w": rng.normal(0, 0.5, (6, 6, 1, 1)), "conv3.b": rng.normal(0.1, 0.02, 6)}
    if outlier:
        w["conv1.w"][0], w["conv1.b"][0], w["conv2.w"][:, 0] = 0.0, 1000.0, 0.0
    w = {k: v.astype(np.float32) for k, v in w.items()}
    f = run_onnx(_graph(w, None), x).astype(np.float64)
    mu = f.mean(0)
    u = np.linalg.svd(f - mu, full_matrices=False)[2][0]
    p = np.sort((f - mu) @ u)
    lo, hi = len(p) // 4, 3 * len(p) // 4  # a gap with at least a quarter of the images on each side
    gap = lo + int(np.argmax(p[lo + 1 : hi] - p[lo : hi - 1]))
    t, alpha = (p[gap] + p[gap + 1]) / 2, 4.0 / ((p[gap + 1] - p[gap]) / 2)
    row = alpha / 2 * u
    head = np.stack([-row, row]).astype(np.float32), np.array([1, -1], np.float32) * alpha / 2 * (mu @ u + t)
    return _graph(w, (head[0], head[1].astype(np.float32)))


@pytest.fixture(scope="module")
def images(data_dir):
    x = _images(data_dir)
    return x[::3], np.delete(x, np.s_[::3], axis=0)  # calibration (16), held-out (32)


def _choose(model, images, **cfg):
    calib, held = images
    with Int8Quantizer(model, calib) as q:
        chosen, choice = choose_int8(q, model, held, "minmax", sensitivity=SensitivityConfig(**cfg))
        return chosen, choice, q.layers


def test_a_sensitive_layer_ranks_first_and_is_kept_in_fp32(images):
    model = tiny_net(np.concatenate(images), outlier=True)
    held = images[1]
    ref = run_onnx(model, held)
    assert 0.25 <= np.mean(ref.argmax(1)) <= 0.75  # both classes among the held-out images
    chosen, choice, _ = _choose(model, images)
    sens = choice.sensitivity
    assert sens is not None and sens.images == 16
    assert sens.layers[0].node == SENSITIVE and sens.layers[0].share > 0.9
    assert sens.layers[0].alone.sqnr_db < min(r.alone.sqnr_db for r in sens.layers[1:]) - 10
    assert sens.kept == [SENSITIVE] == choice.kept_layers and [r.node for r in sens.layers if r.kept] == [SENSITIVE]
    assert [t["k"] for t in sens.tried] == [0, 1] and sens.tried[0]["agree"] < sens.tried[1]["agree"] == len(held)
    assert sens.latency is not None and sens.latency["chosen_ms"] > 0 and sens.sweep_s <= sens.total_s
    assert f"also kept 1 layer(s) in fp32: {SENSITIVE}" in choice.how
    # the returned model is the kept one: conv2 reads float input and weights, and agrees with fp32
    got = run_onnx(chosen, held)
    assert np.mean(got.argmax(1) == ref.argmax(1)) == 1.0
    producer = {o: n.op_type for n in chosen.graph.node for o in n.output}
    conv2 = next(n for n in chosen.graph.node if n.name == SENSITIVE)
    assert [producer.get(i) for i in conv2.input] == ["Relu", None, None]  # the removed Relu, back; float weights
    d = json.loads(json.dumps(choice.to_dict()))
    assert d["kept_layers"] == [SENSITIVE] and d["sensitivity"]["k"] == 1 and d["sensitivity"]["layers"][0]["kept"]


def test_nothing_is_kept_when_no_layer_matters(images):
    model = tiny_net(np.concatenate(images), outlier=False)
    _, choice, pre = _choose(model, images)
    sens = choice.sensitivity
    assert sens.kept == [] and [t["k"] for t in sens.tried] == [0] and sens.latency is None
    assert sens.tried[0]["agree"] == sens.tried[0]["n"] and "already agrees" in sens.how
    # every quantized layer, boundary layers too where their input is still quantized (fc: Flatten's output)
    stem = "stem" in choice.keep_fp32
    assert {r.node for r in sens.layers} == {"conv1", "conv2", "conv3", "fc"} - ({"conv1"} if stem else set())
    assert {r.node: r.quantized for r in sens.layers}["fc"] == ("input" if "classifier" in choice.keep_fp32
                                                                else "weights+input")
    # every layer's figures are that layer alone quantized as in the chosen model, against fp32, on
    # the held-out images the INT8 model gets most wrong
    with Int8Quantizer(model, images[0]) as q:
        qdq = q.build(choice.method, choice.keep_fp32)
    worst = worst_images(qdq, pre, images[1], 16)
    x = images[1][worst]
    if len(images[1]) > 16:
        ref, got = fake_quant_run(pre, images[1]), fake_quant_run(fold_weights(qdq)[0], images[1])
        err = np.abs(got - ref).max(1)
        assert err[worst].min() >= np.delete(err, worst).max()  # none left out is further from fp32
    one = OneLayer(qdq, pre)
    for r in sens.layers:
        assert figures(fake_quant_run(pre, x), fake_quant_run(one.only(r.node), x)) == r.alone
    again = sweep(qdq, pre, x)[1]
    assert [r.node for r in again] == [r.node for r in sens.layers]


def test_switched_off_or_without_held_out_images_nothing_is_measured(images):
    model = tiny_net(np.concatenate(images), outlier=True)
    _, off, _ = _choose(model, images, enabled=False)
    assert off.sensitivity is None and "switched off" in off.sensitivity_why and off.kept_layers == []
    with Int8Quantizer(model, images[0]) as q:
        _, none = choose_int8(q, model, None, None, "--no-int8-select")
    assert none.sensitivity is None and none.sensitivity_why == "not measured: nothing chosen (--no-int8-select)"
    with pytest.raises(InputError, match="--sensitivity-count must be at least 1"):
        SensitivityConfig(images=0)
