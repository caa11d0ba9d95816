"""Where INT8 changes the answer, shown: on every parity set, the photos whose top-1 class from a
CPU or TensorRT INT8 artifact is not the fp32 ONNX graph's (scores: softmax at the metadata's
temperature, as the runtime shows them), as rows in the report and a PNG grid of the photos
themselves; and per-class accuracy of the eager reference and of every artifact.

The grids belong to their report: `<artifact>-disagreements-<set number><suffix>.png` beside
export-report<suffix>.md (suffix "" or ".failed", publish.report_stem's choice). Writing a report
removes that stem's grids it does not write again (an older export's, whose report it replaces),
and publishing moves a failed attempt's grids aside with its report (publish.stale_files)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from catdog.export.artifacts.formats import FORMATS
from catdog.export.output.report import REPORT_STEM, ExportReport, ParitySet
from catdog.runtime.spine.errors import OutputError
from catdog.runtime.spine.fileio import atomic_write
from catdog.runtime.spine.metrics import softmax_t
from catdog.runtime.spine.preprocess import to_bgr8

REFERENCE = "onnx"  # what INT8 is compared with: the fp32 ONNX graph it was quantized from
QUANTIZED = tuple(n for n, f in FORMATS.items() if f.precision == "int8")  # int8, int8-trt
TILE, BAND, COLS, MAX_TILES = 160, 64, 6, 24  # px thumbnail, px text band under it, tiles per row, tiles
PATTERN = re.compile(r"^(?P<artifact>[a-z0-9-]+)-disagreements-\d+(?P<suffix>(\.[a-z]+)?)\.png$")


def per_class(labels: np.ndarray | None, logits: dict[str, np.ndarray], classes: Sequence[str]) -> list[dict]:
    """[{"class", "n", "correct": {who: images of that class `who` got right}}] (empty without labels)."""
    if labels is None:
        return []
    preds = {who: out.argmax(1) for who, out in logits.items()}
    return [{"class": c, "n": int(np.sum(labels == i)),
             "correct": {who: int(np.sum((labels == i) & (p == i))) for who, p in preds.items()}}
            for i, c in enumerate(classes) if np.any(labels == i)]


def _answer(probs: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    i = int(probs.argmax())
    return {"class": classes[i], "score": float(probs[i])}


def disagreements(names: Sequence[str], labels: np.ndarray | None, classes: Sequence[str], fp32: np.ndarray,
                  quantized: np.ndarray, temperature: float) -> list[dict[str, Any]]:
    """The images whose top-1 class differs, the most confident fp32 answer first."""
    p32, pq = softmax_t(fp32, temperature), softmax_t(quantized, temperature)
    idx = np.flatnonzero(p32.argmax(1) != pq.argmax(1))
    rows = [{"index": int(i), "file": names[i], "label": None if labels is None else classes[int(labels[i])],
             "fp32": _answer(p32[i], classes), "int8": _answer(pq[i], classes)} for i in idx]
    return sorted(rows, key=lambda r: (-r["fp32"]["score"], r["index"]))


def _relative(path: Path, root: str) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return Path(path).name


def attach(ps: ParitySet, paths: Sequence[Path], labels: np.ndarray | None, eager: np.ndarray,
           logits: dict[str, np.ndarray], classes: Sequence[str], temperature: float) -> None:
    """Fill `ps` (one parity set's report) with per-class accuracy and INT8's disagreements."""
    ps.per_class = per_class(labels, {"eager": eager, **logits}, classes)
    if REFERENCE not in logits:
        return
    names = [_relative(p, ps.name) for p in paths]
    for name in (n for n in QUANTIZED if n in logits):
        rows = disagreements(names, labels, classes, logits[REFERENCE], logits[name], temperature)
        ps.disagreements[name] = {"against": REFERENCE, "count": len(rows), "of": len(names), "rows": rows,
                                  "gallery": None}


def gallery_name(artifact: str, set_number: int, stem: str = REPORT_STEM) -> str:
    return f"{artifact}-disagreements-{set_number}{stem.removeprefix(REPORT_STEM)}.png"


def _fit(image: np.ndarray) -> np.ndarray:
    """The photo scaled to fit a TILE x TILE square (aspect kept), centred on grey."""
    h, w = image.shape[:2]
    s = TILE / max(h, w)
    small = cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    tile = np.full((TILE, TILE, 3), 128, np.uint8)
    y, x = (TILE - small.shape[0]) // 2, (TILE - small.shape[1]) // 2
    tile[y : y + small.shape[0], x : x + small.shape[1]] = small
    return tile


def _text(band: np.ndarray, line: int, text: str, color: tuple[int, int, int]) -> None:
    text = text.encode("ascii", "replace").decode()  # Hershey fonts draw ASCII only
    if len(text) > 24:
        text = ".." + text[-22:]
    cv2.putText(band, text, (4, 14 + 15 * line), cv2.FONT_HERSHEY_SIMPLEX, 0.4, color, 1, cv2.LINE_AA)


def grid(images: Sequence[np.ndarray], rows: list[dict[str, Any]], artifact: str) -> np.ndarray:
    """Up to MAX_TILES tiles, COLS a row: the photo, then its file, true label, fp32's and INT8's answer
    (green: the true class, red: not; black without a label)."""
    rows = rows[:MAX_TILES]
    cols = min(COLS, len(rows))
    canvas = np.full((-(-len(rows) // cols) * (TILE + BAND), cols * TILE, 3), 255, np.uint8)
    for k, r in enumerate(rows):
        y, x = (k // cols) * (TILE + BAND), (k % cols) * TILE
        canvas[y : y + TILE, x : x + TILE] = _fit(to_bgr8(images[r["index"]]))
        band = canvas[y + TILE : y + TILE + BAND, x : x + TILE]
        _text(band, 0, r["file"], (0, 0, 0))
        _text(band, 1, f"true: {r['label'] or '?'}", (0, 0, 0))
        for line, who, tag in ((2, "fp32", "fp32"), (3, "int8", artifact)):
            ans = r[who]
            color = (0, 0, 0) if r["label"] is None else (0, 140, 0) if ans["class"] == r["label"] else (0, 0, 200)
            _text(band, line, f"{tag}: {ans['class']} {ans['score']:.2f}", color)
        cv2.rectangle(canvas, (x, y), (x + TILE - 1, y + TILE + BAND - 1), (200, 200, 200), 1)
    return canvas


def galleries(out_dir: Path, suffix: str | None = None) -> list[str]:
    """The grid files in `out_dir` (with `suffix`: only those of that report stem's suffix)."""
    out = []
    for p in sorted(Path(out_dir).glob("*-disagreements-*.png")):
        m = PATTERN.match(p.name)
        if m and m["artifact"] in QUANTIZED and (suffix is None or m["suffix"] == suffix):
            out.append(p.name)
    return out


def write_galleries(report: ExportReport, images: Sequence[Sequence[np.ndarray]], out_dir: Path,
                    stem: str = REPORT_STEM) -> list[Path]:
    """One PNG per parity set and INT8 artifact with disagreements (`images`: each set's photos, in
    its order), named in the report; then this stem's other grids go (see the module docstring)."""
    written = []
    for number, (ps, photos) in enumerate(zip(report.parity_sets, images, strict=True), start=1):
        for artifact, d in ps.disagreements.items():
            d["gallery"] = None
            if d["count"]:
                name = gallery_name(artifact, number, stem)
                ok, png = cv2.imencode(".png", grid(photos, d["rows"], artifact))
                if not ok:
                    raise OutputError(f"cannot write {Path(out_dir) / name}: OpenCV could not encode the PNG")
                written.append(atomic_write(Path(out_dir) / name, png.tobytes()))
                d["gallery"] = name
    keep = {p.name for p in written}
    for name in galleries(out_dir, stem.removeprefix(REPORT_STEM)):
        if name not in keep:
            (Path(out_dir) / name).unlink(missing_ok=True)
    return written
