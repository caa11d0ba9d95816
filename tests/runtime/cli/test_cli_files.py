"""catdog-runtime on photos, folders and globs, run as a real subprocess: table, JSON lines, CSV,
and a folder of bad files where every bad item is named with its reason and the rest still run."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from testkit.runtime import png_header_bomb, run_cli, with_exif_orientation

from catdog.runtime.engine.classifier import Classifier
from catdog.runtime.engine.session import INSTALL_HINTS, available_providers
from catdog.runtime.engine.shipped import SHIPPED, default_name, int8_for_this_cpu, resolve_model, shipped_model
from catdog.runtime.spine.images import read_image

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def json_rows(stdout: str) -> list[dict]:
    rows = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    for r in rows:
        assert set(r) in ({"source", "label", "score", "probs"}, {"source", "error"}), r
        if "label" in r:
            assert isinstance(r["score"], float) and r["label"] in r["probs"]
            assert all(isinstance(v, float) for v in r["probs"].values())
    return rows


def test_folder_table(models, photos, tmp_path):
    """Piped, the table keeps every path whole on one line however long (an 80-column fold once
    split file names and made this test depend on the length of pytest's temp dir)."""
    deep = tmp_path / ("a-long-folder-name-" * 5) / "photos"
    deep.mkdir(parents=True)
    for p in photos:
        shutil.copy(p, deep)
    r = run_cli(deep, "--model", models["float"])
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    for p in photos:
        assert any(str(deep / p.name) in line for line in lines), r.stdout
    assert "provider: cpu" in r.stderr and "inference" in r.stderr and "6 ok, 0 failed" in r.stderr


def test_table_prints_bracketed_paths_as_text(models, photos, tmp_path):
    """File and folder names are never rich markup: `[bold]` and `[red]` are shown as typed, and a
    path holding `[/x]` (folder `a[`, file `x].jpg`), once a MarkupError traceback, is a plain row."""
    folder = tmp_path / "pets[red]" / "a["
    folder.mkdir(parents=True)
    names = ["cat[bold]x.jpg", "x].jpg", "dog[link=file:x]y.jpg"]
    for name, src in zip(names, photos, strict=False):
        shutil.copy(src, folder / name)
    (folder / "broken[bold].jpg").write_bytes(b"not a jpeg")  # an error row quotes the path too
    r = run_cli(folder, "--model", models["float"])
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    for name in [*names, "broken[bold].jpg"]:
        assert str(folder / name) in r.stdout, r.stdout
    assert "\x1b[" not in r.stdout  # piped: no styling codes at all
    assert "3 ok, 1 failed" in r.stderr


def test_exclamation_mark_in_a_file_name_is_a_file(models, photos, tmp_path):
    """Only `gst:...` is a GStreamer pipeline; `wow!.jpg` and `a ! b.jpg` are files."""
    for name in ("wow!.jpg", "a ! b.jpg"):
        shutil.copy(photos[0], tmp_path / name)
        r = run_cli(tmp_path / name, "--model", models["float"], "--json")
        assert r.returncode == 0, r.stderr
        assert json_rows(r.stdout)[0]["source"] == str(tmp_path / name)
    r = run_cli("videotestsrc ! fakesink", "--model", models["float"])
    assert r.returncode == 2 and "a GStreamer pipeline needs the prefix: 'gst:videotestsrc ! fakesink'" in r.stderr


def test_hidden_files_are_not_images(models, photos, tmp_path):
    """macOS `._name.jpg` resource forks and dot-folders are skipped by the folder reader that every
    stage uses; a hidden file named explicitly is still classified."""
    shutil.copy(photos[0], tmp_path / "cat.1.jpg")
    shutil.copy(photos[1], tmp_path / "._cat.1.jpg")  # a real photo under a hidden name: still skipped
    (tmp_path / "._dog.2.jpg").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (tmp_path / ".thumbs").mkdir()
    shutil.copy(photos[2], tmp_path / ".thumbs" / "dog.3.jpg")
    for recursive in ([], ["--recursive"]):
        r = run_cli(tmp_path, "--model", models["float"], "--json", *recursive)
        assert r.returncode == 0, r.stderr
        assert [x["source"] for x in json_rows(r.stdout)] == [str(tmp_path / "cat.1.jpg")]
    r = run_cli(tmp_path / "._cat.1.jpg", "--model", models["float"], "--json")
    assert r.returncode == 0 and len(json_rows(r.stdout)) == 1, r.stderr


def test_folder_json_lines_match_the_api(models, photos, tmp_path):
    for p in photos:
        shutil.copy(p, tmp_path)
    r = run_cli(tmp_path, "--model", models["float"], "--json", "--batch", "4")
    assert r.returncode == 0, r.stderr
    rows = json_rows(r.stdout)
    assert [os.path.basename(x["source"]) for x in rows] == sorted(p.name for p in photos)
    clf = Classifier.from_file(models["float"], provider="cpu")
    for row in rows:
        pred = clf.predict(row["source"])
        assert row["label"] == pred.label and row["probs"] == pytest.approx(pred.probs, abs=1e-6)


def test_glob_and_csv(models, photos, tmp_path, data_dir):
    out = tmp_path / "out" / "results.csv"
    r = run_cli(str(data_dir / "cat.*.jpg"), "--model", models["float"], "--csv", out)
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 6 and all(os.path.basename(x["source"]).startswith("cat.") for x in rows)
    assert set(rows[0]) == {"source", "label", "index", "score", "error", "p_cat", "p_dog"}
    assert all(float(x["p_cat"]) + float(x["p_dog"]) == pytest.approx(1.0, abs=1e-5) for x in rows)
    assert not [p for p in out.parent.iterdir() if p.name != "results.csv"]  # no temp files left


def test_glob_without_matches_is_one_clear_error(models, tmp_path):
    r = run_cli(str(tmp_path / "*.jpg"), "--model", models["float"])
    assert r.returncode == 2 and "no image files match this pattern" in r.stderr and "Traceback" not in r.stderr


@pytest.fixture
def messy_folder(tmp_path, photos):
    d = tmp_path / "messy"
    d.mkdir()
    img = cv2.imread(str(photos[0]))
    jpg = photos[0].read_bytes()
    shutil.copy(photos[1], d / "good.jpg")
    (d / "zero.jpg").write_bytes(b"")
    (d / "truncated.jpg").write_bytes(jpg[: len(jpg) // 3])
    (d / "text.jpg").write_text("not a photo, just text\n")
    (d / "bomb.png").write_bytes(png_header_bomb())
    alpha = np.dstack([img, np.full(img.shape[:2], 128, np.uint8)])
    cv2.imwrite(str(d / "alpha.png"), alpha)
    cv2.imwrite(str(d / "deep16.png"), img.astype(np.uint16) * 257)
    cv2.imwrite(str(d / "gray.jpg"), cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))
    (d / "exif_rot.jpg").write_bytes(with_exif_orientation(jpg, 6))
    sub = d / "sub dir ñandú"
    sub.mkdir()
    shutil.copy(photos[2], sub / "gato ñ 猫.jpg")
    (sub / "loop").symlink_to(d, target_is_directory=True)  # a symlink loop back to the top
    locked = d / "locked.jpg"
    shutil.copy(photos[3], locked)
    locked.chmod(0)
    yield d
    locked.chmod(0o644)


EXPECTED_ERRORS = {
    "zero.jpg": "empty file",
    "truncated.jpg": "not a readable image",
    "text.jpg": "not a readable image",
    "bomb.png": "header claims 30000x30000 pixels",
}


def test_bad_files_are_reported_and_the_rest_run(models, messy_folder):
    r = run_cli(messy_folder, "--model", models["float"], "--json", "--recursive")
    assert r.returncode == 1, r.stderr  # something failed
    assert "Traceback" not in r.stderr
    rows = {os.path.relpath(x["source"], messy_folder): x for x in json_rows(r.stdout)}
    for name, reason in EXPECTED_ERRORS.items():
        assert reason in rows[name]["error"] and name in rows[name]["error"], rows[name]
    for name in ("good.jpg", "alpha.png", "deep16.png", "gray.jpg", "exif_rot.jpg", "sub dir ñandú/gato ñ 猫.jpg"):
        assert "label" in rows[name], rows[name]
    # The symlink loop is not followed: its target (the top folder) was already walked.
    assert not [k for k in rows if "loop" in k]
    # An unreadable file is an error for a normal user; root reads through chmod 000, so there it runs.
    locked = rows["locked.jpg"]
    assert ("label" in locked) if IS_ROOT else ("permission denied" in locked["error"])
    assert len(rows) == len(EXPECTED_ERRORS) + 6 + 1


def test_bad_files_table_names_each_failure(models, messy_folder):
    r = run_cli(messy_folder, "--model", models["float"])
    assert r.returncode == 1 and "Traceback" not in r.stderr
    out = " ".join(r.stdout.split())
    for name in EXPECTED_ERRORS:
        assert name in out
    assert "failed" in r.stderr and f"{len(EXPECTED_ERRORS) + (0 if IS_ROOT else 1)} failed" in r.stderr


def test_exif_orientation_is_applied_before_classifying(models, photos, tmp_path):
    raw = cv2.imread(str(photos[0]), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    rotated_file = tmp_path / "rot.jpg"
    rotated_file.write_bytes(with_exif_orientation(photos[0].read_bytes(), 6))
    img = read_image(rotated_file)
    assert img.shape[:2] == raw.shape[1::-1]  # width and height swapped: orientation honoured
    clf = Classifier.from_file(models["float"], provider="cpu")
    # The classifier decodes at libjpeg's reduced scale for its spec: rotate that same decode.
    want = clf.predict(cv2.rotate(read_image(photos[0], clf.spec), cv2.ROTATE_90_CLOCKWISE))
    assert clf.predict(rotated_file).probs == pytest.approx(want.probs, abs=1e-6)


@pytest.mark.parametrize("case", ["text", "truncated", "rank", "nometa", "newer", "missing"])
def test_model_file_errors_are_one_actionable_line(case, models, tmp_path, dog_jpg):
    from testkit.runtime import build_model, meta

    if case == "text":
        model, expect = tmp_path / "readme.onnx", "readme.onnx: not a valid ONNX model"
        model.write_text("# not a model\n")
    elif case == "truncated":
        data = models["float"].read_bytes()
        model, expect = tmp_path / "cut.onnx", "cut.onnx: not a valid ONNX model"
        model.write_bytes(data[: len(data) * 2 // 3])
    elif case == "rank":
        model = build_model(tmp_path / "flat.onnx", metadata=meta(), rank2=True)
        expect = "flat.onnx: input 'input' has rank 2"
    elif case == "nometa":
        model, expect = models["nometa"], "has no catdog-edge metadata (a third-party model?); pass --labels"
    elif case == "newer":
        model = build_model(tmp_path / "future.onnx", metadata=dict(meta().to_dict(), schema_version=3))
        expect = "future.onnx was exported by a newer catdog-edge (schema 3"
    else:
        model, expect = tmp_path / "nope.onnx", "nope.onnx: no such model file"
    r = run_cli(dog_jpg, "--model", model)
    assert r.returncode == 2
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expect in errors[0], r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""
    if case == "text":
        r = run_cli(dog_jpg, "--model", model, "--debug")
        assert r.returncode != 0 and "Traceback" in r.stderr and "ModelError" in r.stderr


def test_third_party_cli_with_labels_mean_std(imagenet_model, dog_jpg, data_dir):
    r = run_cli(dog_jpg, "--model", imagenet_model, "--labels", data_dir / "imagenet_classes.txt",
                "--mean", "0.5,0.5,0.5", "--std", "0.25", "--json")
    assert r.returncode == 0, r.stderr
    (row,) = json_rows(r.stdout)
    assert row["label"] == "Samoyed" and len(row["probs"]) == 1000


def test_explicit_provider_this_build_lacks_is_one_error_line_and_no_stdout(models, dog_jpg):
    # cuda on the CPU wheel; on onnxruntime-gpu, the first provider it lacks (it never has them all)
    name = next(p for p in ("cuda", "tensorrt", "openvino", "rocm", "dml", "coreml") if p not in available_providers())
    r = run_cli(dog_jpg, "--model", models["float"], "--provider", name, "--json")
    assert r.returncode == 2 and r.stdout == ""  # --json stays clean: nothing but results goes to stdout
    assert r.stderr.strip().splitlines() == [
        f"error: provider {name} is not available in this onnxruntime build (available: "
        f"{', '.join(available_providers())}); install: {INSTALL_HINTS[name]}"]


@pytest.mark.parametrize("which, used", [([], f"{SHIPPED[int8_for_this_cpu()]} (int8)"),
                                         (["--model", "fp32"], "model.onnx (fp32)"),
                                         (["--model", "int8-avx2"], "model.int8.onnx (int8)")],
                         ids=["default-for-cpu-is-this-cpus-int8", "fp32", "int8-avx2"])
def test_shipped_model_labels_real_photos(which, used, data_dir):
    """The shipped efficientnet_lite2 (no --model with --provider cpu: the INT8 for this CPU's
    integer path) on the real photos in tests/data."""
    r = run_cli(data_dir, "--json", "--provider", "cpu", *which)
    assert r.returncode == 0, r.stderr
    assert re.search(rf"model\s+{re.escape(used)}", r.stderr), r.stderr
    rows = [row for row in json_rows(r.stdout) if re.fullmatch(r"(cat|dog)\.\d+\.jpg", Path(row["source"]).name)]
    assert len(rows) == 12
    for row in rows:
        assert set(row["probs"]) == {"cat", "dog"}
        assert row["label"] == Path(row["source"]).name.split(".")[0], row


def test_shipped_precision_follows_the_provider():
    assert default_name("cpu") == "int8" and default_name("openvino") == "int8"
    assert default_name("cuda") == "fp32" and default_name("tensorrt") == "fp32"
    assert default_name("auto") == ("fp32" if {"cuda", "tensorrt"} & set(available_providers()) else "int8")
    assert resolve_model(None, "cuda").name == "model.onnx"
    assert resolve_model(None, "cpu") == resolve_model("int8") == shipped_model(int8_for_this_cpu())


def test_the_int8_for_a_cpu_follows_its_integer_path():
    """8-bit weights only where VNNI adds in int32; the 7-bit model everywhere else (AVX2 and AVX-512
    without VNNI would saturate the other). Both are shipped, with the metadata record saying which."""
    from catdog.runtime.spine.isa import ARM_DOT, ARM_NEON, AVX2, AVX512, AVX512_VNNI, AVX_VNNI

    assert [int8_for_this_cpu(p) for p in (AVX512_VNNI, AVX_VNNI)] == ["int8-vnni"] * 2
    assert [int8_for_this_cpu(p) for p in (AVX2, AVX512, ARM_DOT, ARM_NEON, "riscv64")] == ["int8-avx2"] * 5
    vnni = Classifier.from_file(shipped_model("int8-vnni"), provider="cpu", log=None).metadata.extra["int8"]
    assert vnni["target_isa"] == "vnni" and vnni["reduce_range"] is False and vnni["max_int8_weight"] > 64
    for name in SHIPPED:
        assert shipped_model(name).is_file() and resolve_model(name) == shipped_model(name)


def test_unknown_shipped_model_name_lists_the_known(dog_jpg):
    r = run_cli(dog_jpg, "--model", "int4")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "int4" in r.stderr and all(name in r.stderr for name in ("int8", *SHIPPED))


def test_runtime_never_imports_torch_and_cli_import_is_lazy(models, dog_jpg):
    code = (
        "import sys, runpy\n"
        "import catdog.runtime, catdog.runtime.cli\n"
        "assert 'onnxruntime' not in sys.modules and 'cv2' not in sys.modules, 'cli import is not lazy'\n"
        "import catdog.runtime.engine.classifier, catdog.runtime.engine.session\n"
        "import catdog.runtime.live.sources, catdog.runtime.live.capture\n"
        "import catdog.runtime.live.sinks, catdog.runtime.live.loop, catdog.runtime.spine.labels\n"
        f"sys.argv = ['catdog-runtime', {str(dog_jpg)!r}, '--model', {str(models['float'])!r}, '--json']\n"
        "try:\n    runpy.run_module('catdog.runtime', run_name='__main__')\n"
        "except SystemExit as e:\n    assert e.code == 0, e.code\n"
        "upper = ('torch.', 'catdog.train', 'catdog.export', 'catdog.benchmarks')\n"
        "bad = [m for m in sys.modules if m == 'torch' or m.startswith(upper)]\n"
        "assert not bad, bad\n"
    )
    import subprocess

    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json_rows(r.stdout)[0]["label"] in ("cat", "dog")


def test_cmyk_jpeg_decodes_to_the_right_colours_and_classifies(models, data_dir):
    """tests/data/cmyk.jpg is cat.93.jpg at 100 px saved by Pillow as a 4-channel CMYK JPEG with
    the Adobe APP14 marker and inverted (Photoshop-convention) samples, the kind phones' editing
    apps and print workflows produce. OpenCV's libjpeg must undo the inversion: an inverted decode
    would anti-correlate with the RGB original."""
    cmyk = data_dir / "cmyk.jpg"
    data = cmyk.read_bytes()
    sof = data.index(b"\xff\xc0")
    assert data[sof + 9] == 4 and b"Adobe" in data  # really 4 components, Adobe-marked
    img = read_image(cmyk)
    assert img.shape == (100, 100, 3) and img.dtype == np.uint8
    original = cv2.resize(cv2.imread(str(data_dir / "cat.93.jpg")), (100, 100), interpolation=cv2.INTER_AREA)
    mean_got, mean_want = img.reshape(-1, 3).mean(0), original.reshape(-1, 3).mean(0)
    assert np.abs(mean_got - mean_want).max() < 4, (mean_got, mean_want)
    gray = [cv2.cvtColor(x, cv2.COLOR_BGR2GRAY).ravel().astype(float) for x in (img, original)]
    assert np.corrcoef(*gray)[0, 1] > 0.9  # same picture, not its negative
    r = run_cli(cmyk, "--model", models["float"], "--json")
    assert r.returncode == 0, r.stderr
    (row,) = json_rows(r.stdout)
    clf = Classifier.from_file(models["float"], provider="cpu")
    assert row["probs"] == pytest.approx(clf.predict(read_image(cmyk, clf.spec)).probs, abs=1e-6)
