"""SIGTERM (systemd, docker stop, Kubernetes) stops a run as cleanly as Ctrl-C: the results so far
in the CSV, the summary printed, an annotated video finalised and playable, exit 143. Real
processes and real signals."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys

import cv2
import pytest
from testkit.runtime import write_video


def _start(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "catdog.runtime", *map(str, args), "--provider", "cpu"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _term_after(p: subprocess.Popen, lines: int) -> tuple[list[str], str]:
    got = [p.stdout.readline() for _ in range(lines)]
    assert all(got), "the run ended before it could be stopped"
    p.send_signal(signal.SIGTERM)
    # read through the same buffered pipe as readline() (communicate() would skip what it holds)
    out, err = p.stdout.read(), p.stderr.read()
    p.wait(60)
    return got + out.splitlines(), err


@pytest.fixture
def big_folder(tmp_path, photos):
    """3,000 photos (hard links of six real ones): a run that lasts long enough to be stopped."""
    d = tmp_path / "many"
    d.mkdir()
    for i in range(3000):
        os.link(photos[i % len(photos)], d / f"{i:04d}.{photos[i % len(photos)].name}")
    return d


def test_sigterm_on_a_folder_writes_the_csv_and_the_summary(models, big_folder, tmp_path):
    out = tmp_path / "o.csv"
    p = _start(big_folder, "--model", models["float"], "--json", "--csv", out, "--batch", "1", "--workers", "1")
    lines, err = _term_after(p, 3)
    assert p.returncode == 143, err
    results = [json.loads(line) for line in lines if line.strip()]
    assert 3 <= len(results) < 3000
    rows = list(csv.reader(out.open()))
    assert [r[0] for r in rows[1:]] == [r["source"] for r in results]  # every result printed is in the CSV
    assert "-- interrupted (SIGTERM)" in err and f"{len(results)} ok" in err


def test_sigterm_on_a_stream_leaves_a_playable_video(models, photos, tmp_path):
    clip = write_video(tmp_path / "cam.avi", photos, 300, fps=20)
    out = tmp_path / "out.mp4"
    p = _start(clip, "--model", models["float"], "--json", "--realtime", "--save", out)  # a camera's pace
    lines, err = _term_after(p, 5)
    assert p.returncode == 143, err
    frames = len([line for line in lines if line.strip()])
    cap = cv2.VideoCapture(str(out))
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    ok, _ = cap.read()
    cap.release()
    assert ok and count == frames  # finalised (moov atom written), holding every frame that was reported
    assert not list(tmp_path.glob(".out.partial*"))
    assert "stopped by    SIGTERM" in err
