"""The one result record (spine/records.py) and its serializers (spine/serialize.py): each output's
shape from one Prediction and one Failure, and a Failure's kind kept from where it is made (a bad
file, a model's NaN, a live source) through the JSON lines, the CSV, the table and the API, on real
models, real files and a real server."""

from __future__ import annotations

import csv
import dataclasses
import io
import json

import numpy as np
import pytest
from testkit.runtime import build_model, meta, write_video
from testkit.serve import ServerProc

from catdog.runtime.engine.classifier import Classifier
from catdog.runtime.live.loop import LiveOptions, run_live
from catdog.runtime.live.sinks import AccuracySink, CsvSink, JsonSink, TableSink
from catdog.runtime.live.sources import open_source
from catdog.runtime.spine.errors import CatdogError, InputError, MetadataError, OutputError, ProviderError
from catdog.runtime.spine.records import UNSURE, Failure, Prediction, joined, kind_of
from catdog.runtime.spine.serialize import (
    api_error,
    api_json,
    csv_header,
    csv_row,
    json_line,
    live_record,
    parquet_row,
    table_lines,
)

PRED = Prediction("dog", 1, 0.75, {"cat": 0.25, "dog": 0.75})
FAIL = Failure("input", "x/bad.jpg: empty file", "x/bad.jpg")


@pytest.fixture(scope="module")
def nan_model(tmp_path_factory):
    return build_model(tmp_path_factory.mktemp("nan") / "nan.onnx", metadata=meta(), fc_b=np.full(2, np.nan))


def test_records_are_frozen_and_a_failure_takes_its_kind_from_the_error_class():
    with pytest.raises(dataclasses.FrozenInstanceError):
        FAIL.kind = "model"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        PRED.label = "cat"  # type: ignore[misc]
    assert kind_of(InputError("x")) == "input" and kind_of(MetadataError("x")) == "model"
    assert kind_of(ProviderError("x")) == "model" and kind_of(OutputError("x")) == "output"
    assert kind_of(ValueError("x")) == "input" and kind_of(CatdogError("x"), "stream") == "stream"
    assert Failure.of(OutputError("disk full"), "a.csv") == Failure("output", "disk full", "a.csv")
    assert joined("cam", [("model", None), ("stream", "dropped"), ("output", "disk full")]) == \
        Failure("stream", "dropped; disk full", "cam")
    assert joined("cam", [("model", None)]) is None
    assert Prediction("unsure", 0, 0.4, {}).unsure and UNSURE == "unsure"


def test_json_line_and_the_api_from_one_record():
    line = {"source": "a.jpg", "label": "dog", "score": 0.75, "probs": {"cat": 0.25, "dog": 0.75}}
    assert json.loads(json_line("a.jpg", PRED)) == line
    assert json_line("a.jpg", PRED) == api_json("a.jpg", PRED)  # the API answers what --json writes
    assert json.loads(json_line("a.jpg", PRED, {"timings": {"wait_ms": 1.0}}))["timings"] == {"wait_ms": 1.0}
    assert json.loads(json_line("x/bad.jpg", FAIL)) == {"source": "x/bad.jpg", "error": "x/bad.jpg: empty file"}
    assert api_error(FAIL) == (400, {"error": "x/bad.jpg: empty file"})  # the client's fault
    assert api_error(Failure("model", "NaN"))[0] == 500  # the server's
    name = "caf\udce9.jpg"  # a name that is not UTF-8 (a surrogate escape)
    assert json.loads(json_line(name, PRED))["source"] == "caf\\xe9.jpg"
    with pytest.raises(ValueError):  # NaN is never written as JSON
        json_line("a.jpg", Prediction("dog", 1, float("nan"), {}))


def test_csv_rows_are_as_wide_as_the_header():
    classes = ("cat", "dog")
    assert csv_header(classes) == ["source", "label", "index", "score", "error", "p_cat", "p_dog"]
    assert csv_row("a.jpg", PRED, classes) == ["a.jpg", "dog", 1, "0.750000", "", "0.250000", "0.750000"]
    assert csv_row("x/bad.jpg", FAIL, classes) == ["x/bad.jpg", "", "", "", "x/bad.jpg: empty file", "", ""]
    many = tuple(f"c{i}" for i in range(40))
    pred = Prediction("c3", 3, 0.5, {c: (0.5 if c == "c3" else 0.5 / 39) for c in many})
    assert csv_header(many)[-1] == "top5" and len(csv_row("x", FAIL, many)) == len(csv_header(many))
    assert csv_row("a", pred, many)[-1].startswith("c3=0.5000; c0=0.0128")


def test_table_lines_parquet_row_and_live_record():
    lines = table_lines([("a.jpg", PRED), ("x/bad.jpg", FAIL)])
    assert lines == ["source     label  score", "a.jpg      dog    0.750",
                     "x/bad.jpg  error  x/bad.jpg: empty file"]
    assert table_lines([("a\n.jpg", PRED)], topk=2)[1:] == ["a\\n.jpg  dog    0.750", "         cat    0.250"]
    assert parquet_row("a.jpg", PRED) == {"source": "a.jpg", "label": "dog", "score": 0.75,
                                          "probs": {"cat": 0.25, "dog": 0.75}, "error": None}
    assert parquet_row("x/bad.jpg", FAIL) == {"source": "x/bad.jpg", "label": None, "score": None, "probs": None,
                                              "error": "x/bad.jpg: empty file"}
    rec = live_record("cam#3", PRED, frame=3, time=1.5, fps=9.0, stage_ms={"decode": 1.0}, model="m",
                      provider="cpu", topk=1)
    assert rec == {"source": "cam#3", "frame": 3, "time": 1.5, "label": "dog", "score": 0.75,
                   "topk": [["dog", 0.75]], "probs": {"cat": 0.25, "dog": 0.75}, "unsure": False,
                   "stage_ms": {"decode": 1.0}, "fps": 9.0, "model": "m", "provider": "cpu"}


def test_a_failure_keeps_its_kind_from_the_classifier_to_every_output(models, nan_model, photos, tmp_path):
    """A real folder run's records: an unreadable file is an input Failure, a photo the model gives NaN
    for is a model Failure; each reaches the JSON lines, the CSV and the table as its error."""
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    clf = Classifier.from_file(nan_model, provider="cpu")
    out = io.StringIO()
    sinks = [JsonSink(out), CsvSink(tmp_path / "r.csv", clf.classes), TableSink(stream=io.StringIO()),
             AccuracySink(clf.classes)]
    records = list(clf.iter_predict([photos[0], bad]))
    assert [(type(r), r.kind, r.source) for _, r in records] == [(Failure, "model", str(photos[0])),
                                                                 (Failure, "input", str(bad))]
    for source, record in records:
        for sink in sinks:
            sink.add(source, record)
    for sink in sinks:
        sink.close()
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    assert [x["error"] for x in lines] == [r.message for _, r in records]
    assert "NaN/inf" in lines[0]["error"] and lines[1]["error"].startswith(str(bad))
    rows = list(csv.DictReader((tmp_path / "r.csv").open()))
    assert [r["error"] for r in rows] == [r.message for _, r in records] and not rows[0]["label"]
    assert [cells.split()[1] for cells in sinks[2].lines()[1:]] == ["error", "error"]
    with pytest.raises(Exception, match="NaN/inf"):  # the API-style call raises the model's error
        clf.predict(photos[0])


def test_a_live_run_ends_with_a_model_failure_in_its_outputs(nan_model, photos, tmp_path):
    clip = write_video(tmp_path / "clip.avi", photos, 4)
    clf = Classifier.from_file(nan_model, provider="cpu", batch_size=1)
    got: list[tuple[str, object]] = []

    class Keep:
        def add(self, source, result):
            got.append((source, result))

        def close(self):
            pass

    res = run_live(clf, open_source(str(clip)), LiveOptions(), [Keep()], log=lambda m: None)
    assert res.stop_reason == "model error" and len(got) == 1
    source, failure = got[0]
    assert isinstance(failure, Failure) and failure.kind == "model" and failure.source == source
    assert failure.message == res.error and "NaN/inf" in res.error


def test_the_api_answers_a_failure_by_its_kind(nan_model, photos, data_dir):
    """POST /api/predict on a real server: an unreadable upload is the client's 400, the model's NaN
    the server's 500, each a one-line JSON error and counted under its kind in /metrics."""
    s = ServerProc("--model", nan_model)
    try:
        jpeg = {"Content-Type": "image/jpeg"}
        status, err = s.json("POST", "/api/predict", b"not an image", jpeg)
        assert status == 400 and list(err) == ["error"] and "not a readable image" in err["error"]
        status, err = s.json("POST", "/api/predict", photos[0].read_bytes(), jpeg)
        assert status == 500 and list(err) == ["error"] and "NaN/inf" in err["error"]
        assert s.metric('catdog_errors_total{kind="model"}') == 1
        assert s.metric('catdog_errors_total{kind="bad_image"}') == 1
    finally:
        s.kill()
