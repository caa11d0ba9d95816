"""Inputs that used to hang a run, end it, or get a confident wrong answer: FIFOs, devices and
looping links in a folder, a model whose weights are NaN, file names that are not UTF-8, a 1x1
image, a stream that never answers. Real files, real processes, real ONNX sessions."""

from __future__ import annotations

import csv
import json
import os
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from testkit.runtime import build_model, copy_photos, meta, run_cli


@pytest.fixture
def folder(tmp_path, photos):
    return copy_photos(tmp_path / "in", photos, 2)


def _rows(stdout: str) -> dict[str, dict]:
    return {row["source"]: row for row in map(json.loads, stdout.splitlines())}


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
def test_fifo_device_and_looping_link_are_per_file_errors_not_a_hang(models, folder):
    os.mkfifo(folder / "b.jpg")
    (folder / "zero.jpg").symlink_to("/dev/zero")
    (folder / "x.jpg").symlink_to("x.jpg")  # links to itself
    r = run_cli(folder, "--model", models["float"], "--json", timeout=60)
    rows = _rows(r.stdout)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "is a FIFO, not an image file" in rows[str(folder / "b.jpg")]["error"]
    assert "is a device, not an image file" in rows[str(folder / "zero.jpg")]["error"]
    assert "Too many levels of symbolic links" in rows[str(folder / "x.jpg")]["error"]
    assert sum("label" in row for row in rows.values()) == 2  # the good photos were classified
    assert "2 ok, 3 failed" in r.stderr


def test_a_nan_model_never_reports_success(tmp_path, folder):
    path = build_model(tmp_path / "nan.onnx", metadata=meta())
    model = onnx.load(str(path))
    for t in model.graph.initializer:
        if t.name == "fc_w":
            t.CopyFrom(numpy_helper.from_array(np.full(numpy_helper.to_array(t).shape, np.nan, np.float32), t.name))
    onnx.save(model, str(path))
    r = run_cli(folder, "--model", path, "--json", "--csv", tmp_path / "o.csv")
    assert r.returncode == 1, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]  # strict JSON: NaN would not parse
    assert len(rows) == 2 and all("NaN/inf scores" in row["error"] and "label" not in row for row in rows)
    assert "0 ok, 2 failed" in r.stderr and "accuracy" not in r.stderr
    table = list(csv.reader((tmp_path / "o.csv").open()))
    assert all(row[1] == "" and "NaN/inf" in row[4] for row in table[1:])
    one = run_cli(folder / "cat.168.jpg", "--model", path)
    assert one.returncode == 1 and "NaN/inf scores" in one.stdout + one.stderr


@pytest.mark.skipif(sys.platform == "darwin", reason="macOS file systems refuse names that are not UTF-8")
def test_names_that_are_not_utf8_come_out_as_valid_utf8(models, folder, tmp_path, photos):
    raw = os.fsencode(folder) + b"/caf\xe9\xff.jpg"
    shutil.copy(photos[0], raw)
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict"}  # a strict UTF-8 stdout must not kill the run
    out = tmp_path / "o.csv"
    r = subprocess.run([sys.executable, "-m", "catdog.runtime", str(folder), "--model", str(models["float"]),
                        "--json", "--csv", str(out), "--provider", "cpu"], capture_output=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    lines = r.stdout.decode("utf-8").splitlines()  # strict: raises on any byte that is not UTF-8
    sources = [json.loads(line)["source"] for line in lines]
    assert f"{folder}/caf\\xe9\\xff.jpg" in sources
    text = out.read_bytes().decode("utf-8")
    assert "caf\\xe9\\xff.jpg" in text and len(list(csv.reader(text.splitlines()))) == 4
    table = run_cli(folder, "--model", models["float"])  # the plain table too
    assert table.returncode == 0 and "caf\\xe9\\xff.jpg" in table.stdout


def test_a_one_pixel_image_is_refused_not_labelled(models, folder):
    import cv2

    cv2.imwrite(str(folder / "pixel.png"), np.full((1, 1, 3), 200, np.uint8))
    r = run_cli(folder, "--model", models["float"], "--json")
    rows = _rows(r.stdout)
    assert r.returncode == 1
    assert "1x1 pixels is too small to classify" in rows[str(folder / "pixel.png")]["error"]


def test_a_stream_that_never_answers_says_it_is_waiting(models):
    """A server that accepts the connection and then says nothing: the run must say what it waits for."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    url = f"http://127.0.0.1:{srv.getsockname()[1]}/stream.mjpg"
    p = subprocess.Popen([sys.executable, "-m", "catdog.runtime", url, "--model", str(models["float"]),
                          "--provider", "cpu", "--reconnects", "0"], stderr=subprocess.PIPE, text=True)
    try:
        t0, seen = time.monotonic(), ""
        while time.monotonic() - t0 < 60 and "waiting for the stream" not in seen:
            line = p.stderr.readline()
            if not line:
                break
            seen += line
        assert "connecting; waiting for the stream to answer (up to 30 s per attempt)" in seen, seen
    finally:
        p.kill()
        p.wait(10)
        srv.close()
