"""The quick command-line parser (cold start without typer) against the typer command both are
built from: every line the quick parser takes gives the same RunOptions typer gives; everything
else is handed to typer; and a one-photo run loads neither typer, click nor rich."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import catdog.runtime.cli.app as cli_app
from catdog.runtime.cli import quick_options
from catdog.runtime.options import RunOptions, option_table

TAKEN = [
    ["photo.jpg"],
    ["photo.jpg", "--json"],
    ["--json", "photo.jpg", "-m", "int8"],
    ["photos/", "-r", "--model", "m.onnx", "--provider", "cpu", "--threads", "2", "--batch", "8"],
    ["photos/", "--recursive", "--workers", "1", "--csv", "out.csv", "--labels", "names.txt", "--size", "240"],
    ["x.jpg", "--mean", "0.5,0.5,0.5", "--std", "0.25", "--bgr", "--scale", "0.5"],
    ["clip.mp4", "--save", "o.mp4", "--smooth", "3", "--topk", "2", "--realtime", "--max-frames", "9"],
    ["rtsp://cam/s", "--json", "--timings"],
    ["0", "--reconnects", "0", "--show", "--trt-fp16", "--trt-int8", "--trt-cache", "c", "--device-id", "1"],
    ["x.jpg", "--unsure-below", "0.8", "--full-decode"],
    ["x.jpg", "--unsure-below", "1"],
    ["x.jpg", "--csi", "0"],
    ["photos/", "--ray", "head:6379", "--out", "r.parquet", "--resume", "--actors", "2", "--gpus-per-actor", "0.5"],
    ["clip.mp4", "--serve", "0.0.0.0:8080", "--token", "t", "--max-viewers", "4", "--max-body-mb", "5",
     "--request-timeout", "3", "--batch-wait-ms", "2", "--cors", "http://x"],
    ["0", "--serve", "8080", "--no-auth", "--stream-fps", "10"],
    ["0", "--serve", "8080", "--token-file", "tok", "--allow-host", "cam.lan", "--allow-host", "pi.local",
     "--idle-timeout", "2"],
]
HANDED_OVER = [
    [], ["--help"], ["x.jpg", "--model=m.onnx"], ["x.jpg", "--batch", "0"], ["x.jpg", "--batch", "-1"],
    ["a.jpg", "b.jpg"], ["x.jpg", "-rm", "m.onnx"], ["x.jpg", "--json", "--json"], ["x.jpg", "--threads", "two"],
    ["x.jpg", "--unsure-below", "1.5"], ["x.jpg", "--model"], ["x.jpg", "--no-such-flag"], ["-"],
    ["x.jpg", "--", "y.jpg"], ["--csi", "0"],
]


def typer_options(argv: list[str], monkeypatch) -> RunOptions:
    seen: list[RunOptions] = []
    monkeypatch.setattr(cli_app, "run", lambda o: seen.append(o) or 0)
    r = CliRunner().invoke(cli_app.app, argv)
    assert r.exit_code == 0, r.output
    return seen[0]


@pytest.mark.parametrize("argv", TAKEN, ids=lambda a: " ".join(a))
def test_quick_parser_agrees_with_typer(argv, monkeypatch):
    quick = quick_options(argv)
    assert quick is not None, argv
    opts, debug = quick
    assert not debug
    assert opts == typer_options(argv, monkeypatch)
    assert opts != RunOptions(source=opts.source) or argv == ["photo.jpg"]  # the flags were read


@pytest.mark.parametrize("argv", HANDED_OVER, ids=lambda a: " ".join(a) or "(none)")
def test_everything_else_is_typers(argv):
    assert quick_options(argv) is None


def test_every_option_is_quick_parsable():
    flags = [f for o in option_table().values() for f in o.flags]
    assert {f for argv in TAKEN for f in argv if f.startswith("-")} == set(flags)  # TAKEN covers them all


def test_debug_on_the_quick_path(tmp_path):
    assert quick_options(["x.jpg", "--debug"]) == (RunOptions(source="x.jpg"), True)
    r = subprocess.run([sys.executable, "-m", "catdog.runtime", str(tmp_path / "gone.jpg"), "--debug"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" in r.stderr and r.stderr.strip().endswith("(nor a camera index or URL)")
    r = subprocess.run([sys.executable, "-m", "catdog.runtime", str(tmp_path / "gone.jpg")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'gone.jpg'}: no such file or folder (nor a camera index or URL)"]


@pytest.mark.parametrize("extra", [[], ["--json"]], ids=["table", "json"])
def test_one_photo_run_loads_no_typer_click_or_rich(extra, models, photos):
    code = ("import runpy, sys\n"
            f"sys.argv = ['catdog-runtime', {str(photos[0])!r}, '--model', {str(models['float'])!r}, *{extra!r}, "
            "'--provider', 'cpu']\n"
            "try:\n    runpy.run_module('catdog.runtime', run_name='__main__')\n"
            "except SystemExit as e:\n    assert e.code == 0, e.code\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('typer', 'click', 'rich')))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parent)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "[]"
