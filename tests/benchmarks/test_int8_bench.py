"""catdog-bench int8 on the tiny export (real ORT sessions, real photos): errors per set against
the truth of the photos' names, every (threads, batch, spin) row for each model with its ratio to
fp32, the targets named by this CPU's integer path, and the profile of both graphs."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from catdog.benchmarks.cli import app
from catdog.benchmarks.int8.bench import Int8BenchConfig, run_int8_bench
from catdog.benchmarks.int8.report import target_for
from catdog.runtime.engine.classifier import Classifier
from catdog.runtime.spine.isa import int8_path


def test_int8_bench_counts_errors_and_times_every_configuration(tiny_export, labeled_dir, tmp_path):
    cfg = Int8BenchConfig(tiny_export / "model.onnx", (tiny_export / "model.int8.onnx",), (labeled_dir,),
                          tmp_path / "rep", batches=(1, 2), threads=(1, 2), iters=4, command="test",
                          names=("int8",))
    report = run_int8_bench(cfg)
    [acc] = report["accuracy"]
    truth = {p.name: p.name.split(".")[0] for p in labeled_dir.iterdir()}
    for name, path in (("fp32", tiny_export / "model.onnx"), ("int8", tiny_export / "model.int8.onnx")):
        clf = Classifier.from_file(path, provider="cpu", log=None)
        wrong = sorted(p.name for p in labeled_dir.iterdir() if clf.predict(p).label != truth[p.name])
        assert acc["models"][name]["wrong"] == wrong and acc["models"][name]["errors"] == len(wrong)
    assert acc["n"] == len(truth)
    keys = {(r["model"], r["threads"], r["batch"], r["spinning"]) for r in report["speed"]}
    # 1 thread: no pool to spin; 2 threads: spin-wait on and off, each batch, both models
    want = {(m, 1, b, True) for m in ("fp32", "int8") for b in (1, 2)}
    want |= {(m, 2, b, s) for m in ("fp32", "int8") for b in (1, 2) for s in (True, False)}
    assert keys == want
    for r in report["speed"]:
        fp = next(f for f in report["speed"] if f["model"] == "fp32" and
                  (f["threads"], f["batch"], f["spinning"]) == (r["threads"], r["batch"], r["spinning"]))
        assert r["p50_ms"] > 0 and abs(r["speedup_vs_fp32"] - fp["p50_ms"] / r["p50_ms"]) < 1e-9
    assert set(report["profile"]["ops"]) == {"fp32", "int8"}
    assert "QLinearConv" in report["profile"]["ops"]["int8"] or "QLinearMatMul" in str(report["profile"]["ops"])
    md = (tmp_path / "rep" / "report.md").read_text()
    assert f"integer path: {int8_path()}" in md and f"INT8 >= {target_for(int8_path())}x fp32" in md
    assert "| threads | batch | spin-wait | fp32 ms | int8 |" in md
    assert json.loads((tmp_path / "rep" / "report.json").read_text())["int8_path"] == int8_path()


def test_int8_bench_cli_names_the_targets(tiny_export, labeled_dir, tmp_path):
    res = CliRunner().invoke(app, ["int8", str(labeled_dir), "--fp32", str(tiny_export / "model.onnx"),
                                   "--int8", str(tiny_export / "model.int8.onnx"), "--batches", "1",
                                   "--threads", "1", "--iters", "4", "--name", "t", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert f"({int8_path()})" in res.output and "errors vs fp32" in res.output
    assert (tmp_path / "t" / "report.md").is_file()
    bad = CliRunner().invoke(app, ["int8", str(labeled_dir), "--fp32", str(tiny_export / "model.onnx"),
                                   "--label", "a", "--label", "b", "--out", str(tmp_path)])
    assert bad.exit_code != 0 and "--label is given 2 times for 1 INT8 model(s)" in bad.output


def test_int8_bench_shows_each_disagreement_in_a_table_and_a_grid(tiny_export, labeled_dir, tmp_path):
    """A model whose classifier is negated disagrees with fp32 on every photo: each is a row (both
    answers, the true label) and a tile of the grid, which decodes."""
    import cv2
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(tiny_export / "model.onnx"))
    for t in m.graph.initializer:
        if t.name in ("fc_w", "fc_b"):
            t.CopyFrom(numpy_helper.from_array(-numpy_helper.to_array(t), t.name))
    flipped = tmp_path / "flipped.onnx"
    flipped.write_bytes(m.SerializeToString())
    cfg = Int8BenchConfig(tiny_export / "model.onnx", (flipped,), (labeled_dir,), tmp_path / "rep",
                          batches=(1,), threads=(1,), iters=4, names=("flipped",))
    report = run_int8_bench(cfg)
    rec = report["accuracy"][0]["models"]["flipped"]
    n = len(list(labeled_dir.iterdir()))
    assert rec["disagree_with_fp32"] == n and len(rec["disagreements"]) == n
    for r in rec["disagreements"]:
        assert r["fp32"]["class"] != r["int8"]["class"] and r["label"] == r["file"].split(".")[0]
    png = cv2.imread(str(tmp_path / "rep" / rec["gallery"]))
    assert png is not None and png.shape[0] > 0 and png.shape[1] >= min(n, 6) * 100
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "## Where INT8 and fp32 disagree" in md and all(r["file"] in md for r in rec["disagreements"])


def _three_kind_model(path):
    """stem 3x3 (3 -> 16 channels), depthwise 3x3 (16 groups), pointwise 1x1 (16 -> 32): one of each kind."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = {"w_stem": (16, 3, 3, 3), "w_dw": (16, 1, 3, 3), "w_pw": (32, 16, 1, 1)}
    inits = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32) * 0.3, n) for n, s in w.items()]
    nodes = [helper.make_node("Conv", ["input", "w_stem"], ["a"], name="stem", kernel_shape=[3, 3], pads=[1] * 4),
             helper.make_node("Relu", ["a"], ["ar"]),
             helper.make_node("Conv", ["ar", "w_dw"], ["b"], name="dw", kernel_shape=[3, 3], pads=[1] * 4, group=16),
             helper.make_node("Relu", ["b"], ["br"]),
             helper.make_node("Conv", ["br", "w_pw"], ["logits"], name="pw", kernel_shape=[1, 1])]
    g = helper.make_graph(nodes, "kinds", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 32, 32])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, None)], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def test_profile_times_each_conv_kind_in_fp32_and_int8(tmp_path):
    """The profile's per-kind table finds the stem, the depthwise and the pointwise layer in both the
    fp32 graph (ORT's NCHWc convs, named after their outputs) and the INT8 one (QLinearConv nodes,
    named after their source convs), each timed, and the report shows the kind rows."""
    import numpy as np
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    from catdog.benchmarks.int8.bench import conv_kind, profiles
    from catdog.benchmarks.int8.report import conv_kind_lines

    _three_kind_model(tmp_path / "fp32.onnx")

    class Calib(CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(1)
            self.it = iter([{"input": rng.standard_normal((1, 3, 32, 32)).astype(np.float32)} for _ in range(4)])

        def get_next(self):
            return next(self.it, None)

    quantize_static(str(tmp_path / "fp32.onnx"), str(tmp_path / "int8.onnx"), Calib(), quant_format=QuantFormat.QDQ,
                    per_channel=True)
    x = np.random.default_rng(2).standard_normal((1, 3, 32, 32)).astype(np.float32)
    prof = profiles({"fp32": tmp_path / "fp32.onnx", "int8": tmp_path / "int8.onnx"}, x)
    assert (prof["depthwise_convs"], prof["other_convs"]) == (1, 2)
    for name in ("fp32", "int8"):
        kinds = prof["conv_kinds"][name]
        assert set(kinds) == {"stem", "depthwise", "pointwise"}, (name, kinds)
        assert all(k["layers"] == 1 and k["ms"] > 0 for k in kinds.values()), (name, kinds)
    assert "QLinearConv" in prof["ops"]["int8"]
    md = "\n".join(conv_kind_lines(prof["conv_kinds"]))
    assert "| depthwise | 1/1 |" in md and "| pointwise | 1/1 |" in md and "| stem | 1/1 |" in md
    assert conv_kind([8, 8, 3, 3], 1) == "other" and conv_kind([8, 4, 1, 1], 1) == "stem"
