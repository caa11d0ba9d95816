"""catdog-runtime's outputs at a git revision against the working tree, on the same inputs: the table,
--json, --csv (a 2-class and a 40-class model), a model that gives NaN (an error that is the model's),
a video's JSON lines, the API (POST /api/predict: a photo, a broken file, a NaN model), the live record
/api/latest serves (Serving.record) and the Parquet rows of a --ray actor. Timings, times and ports
are masked; everything else must match byte for byte. The old tree's runtime/ comes from `git
archive REV runtime` and is imported as catdog.runtime in place of the installed one (no second
venv). Prints a unified diff; exit 0 when there is none.

    python scripts/compare_outputs.py [--before REV] [--keep DIR]
"""

from __future__ import annotations

import argparse
import difflib
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from io import BytesIO
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
PHOTOS = ["cat.168.jpg", "cat.193.jpg", "cat.379.jpg", "dog.169.jpg", "dog.319.jpg", "dog.381.jpg"]

# Runs catdog.runtime from the tree in argv[1] ('-': the installed one), then the CLI, or `-c CODE`.
LAUNCH = r"""
import importlib.machinery, runpy, sys
root = sys.argv.pop(1)
if root != "-":
    class _Old:
        @classmethod
        def find_spec(cls, name, path=None, target=None):
            if name == "catdog.runtime":
                return importlib.machinery.PathFinder.find_spec(name, [root])
            return None
    sys.meta_path.insert(0, _Old)
if sys.argv[1] == "-c":
    exec(sys.argv[2])
else:
    sys.argv[0] = "catdog-runtime"
    runpy.run_module("catdog.runtime", run_name="__main__", alter_sys=True)
"""

RECORD = r"""
import json, numpy as np, sys
from catdog.runtime.engine.classifier import Classifier
from catdog.runtime.serve.server import Serving
clf = Classifier.from_file(sys.argv[3], provider="cpu")
pred = clf.predict(sys.argv[4])
s = Serving(None, None, None, None, None, "http://x/", "the model", "cpu", "cam")
rec = s.record("cam#3", pred, 3, 12.5, {"decode": 1.0}, 2)
rec["time"] = "T"
print(json.dumps(rec))
"""

PARQUET = r"""
import sys, numpy as np
from catdog.runtime.scale.actor import ClassifyBlock, _UriClassifier
from catdog.runtime.scale.parts import schema
b = ClassifyBlock.__new__(ClassifyBlock)
b.clf = _UriClassifier.from_file(sys.argv[3], provider="cpu", batch_size=4)
b.classes = b.clf.classes
b.schema = schema(b.classes)
t = b({"source": np.array(sys.argv[4:])})
print(t.schema)
for row in t.to_pylist():
    print(row)
"""


def make_inputs(d: Path) -> dict[str, Path]:
    import numpy as np
    from synthetic import build_model, meta, write_video  # scripts/, beside this file, as scripts/bad_inputs.py

    data = REPO / "tests" / "data"
    photos = d / "photos"
    photos.mkdir()
    for p in PHOTOS:
        shutil.copy(data / p, photos / p)
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    names = [f"class{i:02d}" for i in range(40)]
    return {
        "photos": photos,
        "model": build_model(d / "tiny.onnx", metadata=meta()),
        "many": build_model(d / "many.onnx", classes=40, metadata=meta(classes=names)),
        "nan": build_model(d / "nan.onnx", metadata=meta(), fc_b=np.full(2, np.nan)),
        "video": write_video(d / "clip.avi", [data / p for p in PHOTOS], 6),
    }


def mask(text: str) -> str:
    text = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", text)
    text = re.sub(r'"(time|fps)": [0-9.e+-]+', r'"\1": T', text)
    text = re.sub(r'"timings": \{[^}]*\}', '"timings": {T}', text)
    return text


def mask_err(text: str) -> str:
    """stderr: the summary's figures change from run to run."""
    return re.sub(r"\d+(\.\d+)?", "#", mask(text))


def cli(tree: str, args: list[str], cwd: Path) -> str:
    r = subprocess.run([PY, "-c", LAUNCH, tree, *args, "--provider", "cpu"], capture_output=True, text=True,
                       cwd=cwd, timeout=300)
    out = f"$ catdog-runtime {' '.join(args)}\nrc {r.returncode}\n--- stdout\n{mask(r.stdout)}--- stderr\n"
    return out + mask_err(r.stderr)


def code(tree: str, snippet: str, args: list[str], cwd: Path) -> str:
    r = subprocess.run([PY, "-c", LAUNCH, tree, "-c", snippet, *args], capture_output=True, text=True, cwd=cwd,
                       timeout=300)
    return f"rc {r.returncode}\n{mask(r.stdout)}{r.stderr[-2000:] if r.returncode else ''}"


def api(tree: str, model: Path, uploads: list[tuple[str, bytes]], cwd: Path) -> str:
    p = subprocess.Popen([PY, "-c", LAUNCH, tree, "--serve", "127.0.0.1:0", "--model", str(model), "--provider",
                          "cpu"], stderr=subprocess.PIPE, text=True, cwd=cwd)
    url, seen = None, []
    deadline = time.monotonic() + 120
    while url is None and time.monotonic() < deadline:
        line = p.stderr.readline()
        if not line:
            break
        seen.append(line)
        m = re.search(r"serving on (http://\S+)", line)
        url = m.group(1) if m else None
    out = [f"$ catdog-runtime --serve 127.0.0.1:0 --model {model.name}"]
    if url is None:
        p.kill()
        return "\n".join(out + ["no server", *seen])
    for name, body in uploads:
        req = urllib.request.Request(url + "api/predict", data=body, method="POST",
                                     headers={"Content-Type": "application/octet-stream", "X-Filename": name})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                out.append(f"POST {name}: {r.status} {r.read().decode()}")
        except urllib.error.HTTPError as e:
            out.append(f"POST {name}: {e.code} {e.read().decode()}")
    for path in ("api/latest", "healthz"):
        try:
            with urllib.request.urlopen(url + path, timeout=30) as r:
                out.append(f"GET {path}: {r.status} {r.read().decode()}")
        except urllib.error.HTTPError as e:
            out.append(f"GET {path}: {e.code} {e.read().decode()}")
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    out.append(f"rc {p.returncode}\n--- stderr\n{mask_err(''.join(seen[1:]) + err)}")
    return mask("\n".join(out))


def outputs(tree: str, inp: dict[str, Path], work: Path) -> str:
    photos = sorted(str(p) for p in inp["photos"].iterdir())
    folder = [str(inp["photos"])]  # SOURCE is one argument: the folder (a bad file among good ones)
    m, many, nan = str(inp["model"]), str(inp["many"]), str(inp["nan"])
    parts = []
    for args in ([*folder, "--model", m], [*folder, "--model", m, "--topk", "2"], [*folder, "--model", m, "--json"],
                 [*folder, "--model", nan], [*folder, "--model", nan, "--json"], [photos[1], "--model", m, "--json"],
                 [str(inp["video"]), "--model", m, "--json"], [str(inp["video"]), "--model", m, "--json", "--timings"],
                 [str(inp["video"]), "--model", nan, "--json"]):
        parts.append(cli(tree, args, work))
    for name, model in (("two.csv", m), ("many.csv", many), ("nan.csv", nan), ("video.csv", m)):
        src = [str(inp["video"])] if name == "video.csv" else folder
        csv = work / name
        csv.unlink(missing_ok=True)
        parts.append(cli(tree, [*src, "--model", model, "--csv", str(csv)], work))
        parts.append(f"--- {name}\n" + (csv.read_text() if csv.exists() else "(none)\n"))
    ok = (inp["photos"] / "cat.168.jpg").read_bytes()
    parts.append(api(tree, inp["model"], [("cat.168.jpg", ok), ("broken.jpg", b"\xff\xd8\xffjunk")], work))
    parts.append(api(tree, inp["nan"], [("cat.168.jpg", ok)], work))
    parts.append("--- Serving.record\n" + code(tree, RECORD, [m, str(inp["photos"] / "cat.168.jpg")], work))
    parts.append("--- Parquet rows\n" + code(tree, PARQUET, [m, *photos], work))
    parts.append("--- Parquet rows, NaN model\n" + code(tree, PARQUET, [nan, *photos[:2]], work))
    return "\n".join(parts) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", default="HEAD", help="the git revision to compare with (default HEAD)")
    ap.add_argument("--keep", type=Path, help="write before.txt and after.txt here")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="compare-outputs-"))
    try:
        old = tmp / "before"
        old.mkdir()
        tar = subprocess.run(["git", "archive", a.before, "runtime"], cwd=REPO, capture_output=True, check=True)
        tarfile.open(fileobj=BytesIO(tar.stdout)).extractall(old, filter="data")
        work = tmp / "work"
        work.mkdir()
        inp = make_inputs(tmp)
        before = outputs(str(old), inp, work).replace(str(old), "RUNTIME").replace(str(tmp), "TMP")
        after = outputs("-", inp, work).replace(str(REPO), "RUNTIME").replace(str(tmp), "TMP")
        if a.keep:
            a.keep.mkdir(parents=True, exist_ok=True)
            (a.keep / "before.txt").write_text(before)
            (a.keep / "after.txt").write_text(after)
        diff = list(difflib.unified_diff(before.splitlines(True), after.splitlines(True), f"{a.before}",
                                         "working tree"))
        sys.stdout.writelines(diff)
        print(f"{len(diff)} diff line(s); {len(before.splitlines())} output lines compared", file=sys.stderr)
        return 1 if diff else 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
