"""The bad-inputs table: build a corpus of bad inputs from tests/data photos in a temp dir, run
each case through the real console scripts (catdog-runtime, catdog-train, catdog-export) and print
a Markdown table: case | command | what the user sees | exit code.

    .venv/bin/python scripts/bad_inputs.py [--out FILE.md]

Needs the full install (torch for the train/export rows). The ONNX models, videos and crafted
image bytes come from scripts/synthetic.py (the same ones the tests use), the checkpoints from
catdog.train's own save_checkpoint. Disk-full rows use a real filled tmpfs (scripts/fulldisk.py)
where the kernel allows user namespaces. It imports catdog and its neighbours in scripts/, never
the tests: tests/data is read as data."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bad_inputs_guards import cases_guards, corpus_guards  # scripts/, beside this file
from bad_inputs_issue32 import cases_issue32, corpus_issue32  # scripts/, beside this file

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
BIN = Path(sys.executable).parent

LONG_FAULTS = [  # too slow for this table; each is a test in the suite
    ("kill -9 during training, then --resume",
     "tests/train/test_fit.py::test_kill_9_leaves_loadable_checkpoints_and_resume_works"),
    ("Ctrl-C mid-epoch (train), then --resume",
     "tests/train/test_faults.py::test_ctrl_c_mid_epoch_stops_cleanly_and_resumes"),
    ("kill -9 during export", "tests/export/test_robustness.py::test_kill_9_mid_export_leaves_no_final_named_file"),
    ("Ctrl-C during export",
     "tests/export/test_robustness.py::test_ctrl_c_mid_export_publishes_nothing_and_keeps_the_previous_export"),
    ("Ctrl-C on a live video run (--save)",
     "tests/runtime/live/test_video.py::test_ctrl_c_stops_cleanly_with_summary_and_saved_video"),
    ("stream that drops mid-run (HTTP MJPEG)",
     "tests/runtime/live/test_video.py::test_http_mjpeg_stream_that_drops_mid_run_reconnects_then_ends_cleanly"),
    ("--serve: a burst of POSTs past --request-timeout (504s), then normal requests",
     "tests/runtime/serve/test_serve_faults.py::test_timeouts_leave_the_api_alive"),
    ("--serve: the prediction thread stopped (/healthz 503)",
     "tests/runtime/serve/test_serve_faults.py::test_healthz_says_so_when_the_batcher_has_stopped"),
    ("--serve: chunked multipart body over --max-body-mb",
     "tests/runtime/serve/test_serve_faults.py::test_a_chunked_multipart_body_over_the_limit_is_413"),
    ("--serve: a foreign Host: (DNS rebinding)",
     "tests/runtime/serve/test_serve_faults.py::test_only_this_servers_names_are_answered"),
    ("--serve: stream viewers that never read",
     "tests/runtime/serve/test_serve_faults.py::test_viewers_that_never_read_give_their_slots_back"),
    ("--serve: half-open, half-head, idle and stalled-body connections",
     "tests/runtime/serve/test_serve_faults.py::test_half_open_and_idle_connections_are_closed"),
    ("--serve: file names that are not UTF-8",
     "tests/runtime/serve/test_serve_faults.py::test_a_non_utf8_file_name_is_shown_safely"),
    ("--serve: uploads cut short",
     "tests/runtime/serve/test_serve_faults.py::test_aborted_uploads_are_counted_without_a_traceback"),
    ("--serve without the [serve] extra",
     "tests/runtime/serve/test_serve_faults.py::test_serve_without_the_extra_says_which_to_install"),
    ("--serve fault mix: timeouts, aborted uploads, idle viewers, half-open sockets at once",
     "tests/benchmarks/test_serve_bench.py::test_a_short_fault_soak_keeps_the_server_honest"),
]


def build_corpus(t: Path) -> dict[str, Path]:
    import cv2
    import numpy as np
    import torch
    from synthetic import build_model, meta, png_header_bomb, with_exif_orientation, write_video  # scripts/

    from catdog.train.models import get_entry, get_model
    from catdog.train.models.checkpoint import save_checkpoint

    photos = sorted(DATA.glob("*.*.jpg"))[:6]
    p: dict[str, Path] = {"photo": photos[0]}
    messy = t / "messy"
    messy.mkdir()
    img, jpg = cv2.imread(str(photos[0])), photos[0].read_bytes()
    shutil.copy(photos[1], messy / "good.jpg")
    (messy / "zero.jpg").write_bytes(b"")
    (messy / "truncated.jpg").write_bytes(jpg[: len(jpg) // 3])
    (messy / "text.jpg").write_text("not a photo\n")
    (messy / "bomb.png").write_bytes(png_header_bomb())
    cv2.imwrite(str(messy / "alpha.png"), np.dstack([img, np.full(img.shape[:2], 128, np.uint8)]))
    cv2.imwrite(str(messy / "deep16.png"), img.astype(np.uint16) * 257)
    cv2.imwrite(str(messy / "gray.jpg"), cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))
    shutil.copy(DATA / "cmyk.jpg", messy / "cmyk.jpg")
    (messy / "exif_rot.jpg").write_bytes(with_exif_orientation(jpg, 6))
    sub = messy / "sub dir ñandú"
    sub.mkdir()
    shutil.copy(photos[2], sub / "gato ñ 猫.jpg")
    (sub / "loop").symlink_to(messy, target_is_directory=True)
    shutil.copy(photos[3], messy / "locked.jpg")
    (messy / "locked.jpg").chmod(0)
    p["messy"] = messy
    avi = write_video(t / "ok.avi", photos, 24).read_bytes()
    (t / "short.avi").write_bytes(avi[: len(avi) // 2])
    mp4 = write_video(t / "ok.mp4", photos, 24, fourcc="mp4v").read_bytes()
    (t / "cut.mp4").write_bytes(mp4[: len(mp4) // 2])
    p["video"] = t / "ok.avi"
    p["model"] = build_model(t / "tiny.onnx", metadata=meta())
    (t / "readme.onnx").write_text("# not a model\n")
    (t / "cut.onnx").write_bytes(p["model"].read_bytes()[:700])
    build_model(t / "flat.onnx", metadata=meta(), rank2=True)
    build_model(t / "nometa.onnx")
    build_model(t / "future.onnx", metadata=dict(meta().to_dict(), schema_version=3))
    (t / "a-file").write_text("a file where a folder should be")
    (t / "empty-token").write_text("\n")
    # Training data and checkpoints.
    flat = t / "flat"
    flat.mkdir()
    for ph in sorted(DATA.glob("*.*.jpg")):
        cv2.imwrite(str(flat / ph.name), cv2.resize(cv2.imread(str(ph)), (64, 64)))
    three = t / "three"
    for i, ph in enumerate(sorted(flat.iterdir())):
        (three / ("ant", "bee", "cow")[i % 3]).mkdir(parents=True, exist_ok=True)
        shutil.copy(ph, three / ("ant", "bee", "cow")[i % 3] / ph.name)
    (t / "empty").mkdir()
    spec = get_entry("mobilenet_v3_small").spec.with_(size=32, resize=36)
    base = dict(arch="mobilenet_v3_small", arch_kwargs={}, classes=["cat", "dog"], spec=spec, metrics={}, epoch=1,
                train_config={"data": str(flat), "arch": "mobilenet_v3_small", "size": 32, "epochs": 1,
                              "batch_size": 4, "workers": 0})
    run = t / "run"
    save_checkpoint(run / "last.pth", state_dict=get_model("mobilenet_v3_small", 2).state_dict(), **base)
    save_checkpoint(t / "other_arch.pth", **{**base, "arch": "resnet18"},
                    state_dict=get_model("mobilenet_v3_small", 2).state_dict())
    save_checkpoint(t / "three_classes.pth", **{**base, "classes": ["a", "b", "c"]},
                    state_dict=get_model("mobilenet_v3_small", 2).state_dict())
    torch.save(get_model("resnet18", 2).state_dict(), t / "r18_weights.pth")
    torch.save({"format": "catdog-checkpoint", "arch": _Payload(t / "code-ran")}, t / "evil.pth")
    corpus_issue32(t, p)
    corpus_guards(t, p)
    return p




class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def cases(t: Path, p: dict[str, Path]) -> list[tuple[str, list, dict]]:
    rt = ["catdog-runtime"]
    m = ["--model", p["model"]]
    tr = ["catdog-train"]
    ex = ["catdog-export"]
    tiny = ["--arch", "mobilenet_v3_small", "--size", "32", "--epochs", "1", "--workers", "0", "--quiet", "--no-plots"]
    return [
        ("folder of bad images (one row per file below)",
         rt + [p["messy"], *m, "--json", "--recursive"], {"per_file": True}),
        ("video that ends early", rt + [t / "short.avi", *m, "--json"], {"last_json": True}),
        ("video corrupt in the middle (mp4 index lost)", rt + [t / "cut.mp4", *m], {}),
        ("camera index that does not exist", rt + ["57", *m], {}),
        ("stream that never connects", rt + ["http://127.0.0.1:9/stream.mjpg", *m], {}),
        ("text file named .onnx", rt + [p["photo"], "--model", t / "readme.onnx"], {}),
        ("truncated ONNX", rt + [p["photo"], "--model", t / "cut.onnx"], {}),
        ("ONNX with another input rank", rt + [p["photo"], "--model", t / "flat.onnx"], {}),
        ("ONNX without metadata, no --labels", rt + [p["photo"], "--model", t / "nometa.onnx"], {}),
        ("metadata from a newer schema", rt + [p["photo"], "--model", t / "future.onnx"], {}),
        ("--provider cuda on a CPU build", rt + [p["photo"], *m, "--provider", "cuda"], {}),
        ("--csv in an unwritable folder", rt + [p["photo"], *m, "--csv", t / "a-file" / "r.csv"], {}),
        ("--save in an unwritable folder", rt + [p["video"], *m, "--save", t / "a-file" / "o.avi"], {}),
        ("--csv on a full disk", rt + [p["video"], *m, "--csv", "FULL/r.csv"], {"full": {"r.csv": b"old\n"}}),
        ("--save on a full disk", rt + [p["video"], *m, "--save", "FULL/o.avi"], {"full": {"o.avi": b"old"}}),
        ("--serve --token-file that does not exist",
         rt + ["--serve", "127.0.0.1:0", "--token-file", t / "no-token"], {}),
        ("--serve --token-file that is empty", rt + ["--serve", "127.0.0.1:0", "--token-file", t / "empty-token"], {}),
        ("train: empty data folder", tr + ["--data", t / "empty", "--out", t / "r1", *tiny], {}),
        ("train: unknown arch", tr + ["--data", t / "flat", "--out", t / "r2", "--arch", "vgg99"], {}),
        ("train: --weights of another arch",
         tr + ["--data", t / "flat", "--out", t / "r3", *tiny, "--weights", t / "r18_weights.pth"], {}),
        ("train: --resume with another --arch", tr + ["--resume", t / "run", "--arch", "resnet18"], {}),
        ("train: --val with another class count",
         tr + ["--data", t / "flat", "--val", t / "three", "--out", t / "r4", *tiny], {}),
        ("evaluate: checkpoint vs 3-class data",
         tr + ["evaluate", t / "run" / "last.pth", t / "three", "--workers", "0"], {}),
        ("train: unwritable --out", tr + ["--data", t / "flat", "--out", t / "a-file" / "run", *tiny], {}),
        ("train: full disk", tr + ["--data", t / "flat", "--out", "FULL/run", *tiny], {"full": {}}),
        ("export: checkpoint with pickled code",
         ex + ["--ckpt", t / "evil.pth", "--out", t / "e1", "--parity", t / "flat"], {}),
        ("export: checkpoint of another arch",
         ex + ["--ckpt", t / "other_arch.pth", "--out", t / "e2", "--parity", t / "flat"], {}),
        ("export: class count disagrees with weights",
         ex + ["--ckpt", t / "three_classes.pth", "--out", t / "e3", "--parity", t / "flat"], {}),
        ("export: text file as checkpoint",
         ex + ["--ckpt", t / "readme.onnx", "--out", t / "e4", "--parity", t / "flat"], {}),
        ("export: unwritable --out",
         ex + ["--ckpt", t / "run" / "last.pth", "--out", t / "a-file" / "x", "--parity", t / "flat"], {}),
        ("export: full disk",
         ex + ["--ckpt", t / "run" / "last.pth", "--out", "FULL", "--parity", t / "flat", "--latency-runs", "1"],
         {"full": {"model.onnx": b"old"}}),
    ] + cases_issue32(t, p, tiny) + cases_guards(t, p)


def run_case(t: Path, n: int, cmd: list, opt: dict) -> tuple[subprocess.CompletedProcess | None, str]:
    argv = [str(BIN / str(cmd[0])), *map(str, cmd[1:])]
    if "full" in opt:
        from fulldisk import available, run_on_full_disk  # scripts/, beside this file

        why = available()
        if why:
            return None, f"(not run: {why})"
        d = t / f"full{n}"
        d.mkdir()
        argv = [a.replace("FULL", str(d / "full")) for a in argv]
        r, left = run_on_full_disk(d, argv, previous=opt["full"])
        kept = all(left.get(k) == v for k, v in opt["full"].items())
        return r, "" if kept else " (PREVIOUS OUTPUT CHANGED)"
    return subprocess.run(argv, capture_output=True, text=True, timeout=300), ""


def seen(r: subprocess.CompletedProcess, opt: dict) -> str:
    if opt.get("last_json"):
        return json.loads(r.stdout.splitlines()[-1]).get("error", "")
    lines = [x for x in r.stderr.splitlines() if x.startswith("error:")]  # every CLI's boundary says "error: "
    return lines[-1].strip() if lines else (r.stderr.strip().splitlines() or ["(nothing on stderr)"])[-1]


def cell(text: str, t: Path, limit: int = 230) -> str:
    text = text.replace(str(t), "$T").replace(str(ROOT), ".").replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="also write the table to this Markdown file")
    args = ap.parse_args()
    rows = ["| case | command | what the user sees | exit |", "|---|---|---|---|"]
    with tempfile.TemporaryDirectory(prefix="bad-inputs-") as tmp:
        t = Path(tmp)
        p = build_corpus(t)
        for n, (name, cmd, opt) in enumerate(cases(t, p)):
            print(f"running: {name}", file=sys.stderr)
            r, note = run_case(t, n, cmd, opt)
            shown = " ".join(str(c) for c in cmd)
            if r is None:
                rows.append(f"| {name} | `{cell(shown, t)}` | {note} | - |")
            elif opt.get("per_file"):
                for row in map(json.loads, r.stdout.splitlines()):
                    rel = Path(row["source"]).relative_to(p["messy"])
                    what = row.get("error") or f"classified: {row['label']} {row['score']:.2f}"
                    if rel.name == "locked.jpg" and "label" in row:
                        what += " (run as root: chmod 000 does not stop root; users get 'permission denied')"
                    rows.append(f"| messy/{cell(str(rel), t)} | (folder run) | {cell(what, t)} | |")
                what = "(rows above; symlink loop walked once)"
                rows.append(f"| {name} | `{cell(shown, t)}` | {what} | {r.returncode} |")
            else:
                rows.append(f"| {name} | `{cell(shown, t)}` | {cell(seen(r, opt) + note, t)} | {r.returncode} |")
            assert r is None or "Traceback" not in r.stderr, (name, r.stderr[-2000:])
        (p["messy"] / "locked.jpg").chmod(0o644)
    rows += ["", "Long faults (each a test in the suite):", ""]
    rows += [f"- {name}: `{test}`" for name, test in LONG_FAULTS]
    text = "\n".join(rows) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
