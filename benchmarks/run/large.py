"""The "large photos" section (--large-photos N, with --data): what the spine's reduced JPEG decode
buys on phone photos and what it costs in answers.

N photos of --data (classes balanced) get ~12 MP copies made like a phone's: upscaled (bicubic),
mild sensor noise, JPEG quality 90. They are built once into a cache folder under the system's
temp dir (~2 MB each: never beside the report, which gets committed) and reused. Each
model (fp32 and INT8 ONNX) then classifies them through the runtime's folder path (Classifier,
2 decode threads, batch 16, as `catdog-runtime DIR` runs) with the default decode and with
--full-decode, interleaved: images/s and per-stage ms. The answers: top-1 agreement and accuracy
(with Wilson intervals) of reduced vs full decode on the large copies, and on the originals, which
are smaller than 2x the resize, the count of identical labels."""

from __future__ import annotations

import hashlib
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from catdog.benchmarks.common.schema import Record, Section
from catdog.benchmarks.grid.artifacts import Artifact, balanced
from catdog.benchmarks.run.contenders import folder_classifier
from catdog.benchmarks.run.sections import Inputs
from catdog.runtime.spine.fileio import atomic_path
from catdog.runtime.spine.metrics import format_accuracy
from catdog.runtime.spine.records import Failure

LARGE_PIXELS = 12_000_000  # a 4000x3000 phone photo
NOISE_SIGMA = 2.0  # grey levels: sensor noise, so the upscale is not unnaturally smooth for the encoder
JPEG_QUALITY = 90
ROUNDS = 3
MODES = {"reduced decode (default)": False, "full decode (--full-decode)": True}  # name -> full_decode


@dataclass(frozen=True)
class LargeRow(Record):
    model: str
    decode: str
    photos: int
    megapixels: float
    images_per_s: float
    vs_full_decode: float
    decode_ms: float
    preprocess_ms: float
    inference_ms: float
    accuracy: str  # with its 95% Wilson interval and n
    agreement_vs_full: float
    originals_identical: str  # labels on the original photos: "400/400"


def phone_copy(src: Path, dst: Path, seed: int) -> tuple[int, int]:
    """Write a ~12 MP phone-like JPEG of `src` to `dst` (atomically); returns its (width, height)."""
    import cv2

    from catdog.runtime.spine.images import read_image

    img = read_image(src)
    h, w = img.shape[:2]
    k = (LARGE_PIXELS / (w * h)) ** 0.5
    size = (round(w * k), round(h * k))
    big = cv2.resize(img, size, interpolation=cv2.INTER_CUBIC).astype(np.float32)
    big += np.random.default_rng(seed).normal(0.0, NOISE_SIGMA, big.shape).astype(np.float32)
    ok, buf = cv2.imencode(".jpg", np.clip(big, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    assert ok, src
    with atomic_path(dst) as tmp:
        tmp.write_bytes(buf.tobytes())
    return size


def cache_dir(sources: list[Path]) -> Path:
    """Where the copies of exactly these sources, made by this recipe, live."""
    key = "\n".join([f"{LARGE_PIXELS} {NOISE_SIGMA} {JPEG_QUALITY}"] + [str(p.resolve()) for p in sources])
    return Path(tempfile.gettempdir()) / "catdog-large-photos" / hashlib.sha256(key.encode()).hexdigest()[:16]


def build_large(sources: list[Path], log) -> list[Path]:
    """The large copies of `sources`, in order; existing ones (same name) are reused."""
    folder = cache_dir(sources)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, src in enumerate(sources):
        dst = folder / f"{i:04d}-{src.stem}.jpg"
        if not dst.is_file():
            phone_copy(src, dst, seed=i)
        out.append(dst)
        if (i + 1) % 100 == 0:
            log(f"large photos: {i + 1}/{len(sources)} ready in {folder}")
    return out


def _classify(art: Artifact, files: list[Path], full_decode: bool, threads: int | None
              ) -> tuple[float, list[str], dict[str, float]]:
    """From the model file to the last label, as `catdog-runtime DIR` does: (seconds, labels, ms/stage)."""
    t0 = time.perf_counter()
    clf = folder_classifier(art.path, threads, full_decode=full_decode)
    clf.reset_times()
    labels = [p.message if isinstance(p, Failure) else p.label for _, p in clf.iter_predict(files)]
    secs = time.perf_counter() - t0
    return secs, labels, {s: clf.times.mean_ms(s) for s in ("decode", "preprocess", "inference")}


def large_section(inp: Inputs) -> Section:
    cfg = inp.cfg
    photos = balanced(inp.need_photos(), cfg.large_photos)
    originals = list(photos.paths)
    truth = list(photos.labels)
    large = build_large(originals, inp.log)
    for f in large:
        f.read_bytes()  # page cache warm for every contender alike
    threads = max((t for t in cfg.threads if t), default=None)
    rows = []
    for art in [inp.need_primary()] + ([inp.int8] if inp.int8 else []):
        secs: dict[str, list[float]] = {m: [] for m in MODES}
        labels: dict[str, list[str]] = {}
        stages: dict[str, dict[str, float]] = {}
        for r in range(ROUNDS):  # interleaved, the first contender alternating
            for mode in list(MODES)[r % 2:] + list(MODES)[: r % 2]:
                s, labels[mode], stages[mode] = _classify(art, large, MODES[mode], threads)
                secs[mode].append(s)
        orig = {m: _classify(art, originals, full, threads)[1] for m, full in MODES.items()}
        same_orig = sum(a == b for a, b in zip(*orig.values(), strict=True))
        full_name = next(m for m, full in MODES.items() if full)
        ips = {m: len(large) / statistics.median(v) for m, v in secs.items()}
        names = inp.photos.classes if inp.photos else ()
        for mode in MODES:
            right = sum(lab == names[y] for lab, y in zip(labels[mode], truth, strict=True))
            agree = float(np.mean([a == b for a, b in zip(labels[mode], labels[full_name], strict=True)]))
            rows.append(LargeRow(art.name, mode, len(large), LARGE_PIXELS / 1e6, ips[mode], ips[mode] / ips[full_name],
                                 stages[mode]["decode"], stages[mode]["preprocess"], stages[mode]["inference"],
                                 format_accuracy(right, len(truth)), agree, f"{same_orig}/{len(originals)}"))
    return Section(f"{len(large)} ~12 MP phone-like copies of photos from {cfg.data} (bicubic upscale, noise sigma "
                   f"{NOISE_SIGMA}, JPEG q{JPEG_QUALITY}), classified on CPU through the runtime's folder path "
                   f"(2 decode threads, batch 16, threads {threads or 'default'}); images/s = median of {ROUNDS} "
                   "interleaved rounds from the model file to the last label; ms per image per stage from the "
                   "last round (decode runs on 2 threads, overlapped with inference). originals_identical: labels "
                   "of reduced vs full decode on the original photos.", tuple(rows))
