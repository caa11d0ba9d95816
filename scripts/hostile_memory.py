"""Peak memory of the runtime on hostile images against a normal photo's run, with the shipped model
(issue 32 #4): the CLI (one process per image, peak RSS from the kernel's wait4) and the HTTP API
(one `--serve` process per case, four concurrent POSTs of the image, peak RSS from /proc's VmHWM).
The acceptance: every hostile case stays under 2x the normal photo's peak, on both paths.

    .venv/bin/python scripts/hostile_memory.py [--out FILE.md]

Images are made here from tests/data/dog.jpg and numpy zeros (tiny files that claim many pixels)."""

from __future__ import annotations

import argparse
import http.client
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "tests" / "data" / "dog.jpg"


def corpus(t: Path) -> dict[str, Path]:
    import cv2
    import numpy as np

    def png(name: str, w: int, h: int) -> Path:
        cv2.imwrite(str(t / name), np.zeros((h, w, 3), np.uint8))
        return t / name

    cv2.imwrite(str(t / "png16-rgba16.png"), np.zeros((4000, 4000, 4), np.uint16))
    cv2.imwrite(str(t / "tiff16.tiff"), np.zeros((4000, 4000, 3), np.uint8))  # deflate/LZW: a small file
    cv2.imwrite(str(t / "webp16.webp"), np.zeros((4000, 4000, 3), np.uint8), [cv2.IMWRITE_WEBP_QUALITY, 101])
    big = cv2.resize(cv2.imread(str(PHOTO)), (6000, 4000), interpolation=cv2.INTER_NEAREST)
    cv2.imwrite(str(t / "prog24.jpg"), big, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1, cv2.IMWRITE_JPEG_QUALITY, 40])
    sampling = [cv2.IMWRITE_JPEG_PROGRESSIVE, 1, cv2.IMWRITE_JPEG_QUALITY, 40, cv2.IMWRITE_JPEG_SAMPLING_FACTOR]
    big16 = cv2.resize(big, (4000, 4000), interpolation=cv2.INTER_NEAREST)
    cv2.imwrite(str(t / "prog16-420.jpg"), big16, [*sampling, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420])
    cv2.imwrite(str(t / "prog8-444.jpg"), big16[:2000], [*sampling, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444])
    cv2.imwrite(str(t / "jpeg100.jpg"), np.zeros((10000, 10000, 3), np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 30])
    return {
        "normal photo (dog.jpg, 1546x1213 JPEG)": PHOTO,
        "8x20000 PNG": png("strip.png", 8, 20000),
        "1x2000 PNG": png("thin.png", 1, 2000),
        "1x1 PNG": png("pixel.png", 1, 1),
        "10000x10000 PNG (100 MP)": png("png100.png", 10000, 10000),
        "4000x4000 PNG (16 MP, the largest accepted)": png("png16.png", 4000, 4000),
        "4000x4000 16-bit RGBA PNG (16 MP)": t / "png16-rgba16.png",
        "4000x4000 TIFF (16 MP)": t / "tiff16.tiff",
        "4000x4000 lossless WebP (16 MP)": t / "webp16.webp",
        "895x17877 PNG (20:1, 16 MP)": png("strip16.png", 895, 17877),
        "6000x4000 progressive JPEG": t / "prog24.jpg",
        "4000x4000 progressive JPEG, 4:2:0 (16 MP of coefficients, the largest accepted)": t / "prog16-420.jpg",
        "4000x2000 progressive JPEG, 4:4:4 (16 MP of coefficients)": t / "prog8-444.jpg",
        "10000x10000 baseline JPEG (decoded at 1/8)": t / "jpeg100.jpg",
    }


# The run reports its own high-water mark at exit: wait4's ru_maxrss would also count the parent's
# pages it was forked from (Linux keeps the pre-exec peak).
PEAK = ("import atexit, re, runpy, sys\n"
        "atexit.register(lambda: sys.stderr.write('PEAK_KB %s\\n' % re.search(r'VmHWM:\\s+(\\d+)', "
        "open('/proc/self/status').read()).group(1)))\n"
        "sys.argv = ['catdog-runtime', *sys.argv[1:]]\n"
        "runpy.run_module('catdog.runtime', run_name='__main__')\n")


def cli_peak(image: Path) -> tuple[float, int, str]:
    r = subprocess.run([sys.executable, "-c", PEAK, str(image), "--provider", "cpu", "--json"],
                       capture_output=True, text=True, timeout=300)
    peak = int(re.search(r"PEAK_KB (\d+)", r.stderr).group(1)) / 1024
    return peak, r.returncode, r.stdout + r.stderr


def api_peak(image: Path, clients: int = 4) -> tuple[float, list[int]]:
    argv = [sys.executable, "-m", "catdog.runtime", "--provider", "cpu", "--serve", "127.0.0.1:0"]
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        port = 0
        while not port:
            line = p.stderr.readline()
            if not line:
                raise RuntimeError("the server did not start")
            m = re.search(r"serving on http://127\.0\.0\.1:(\d+)/", line)
            port = int(m.group(1)) if m else 0
        threading.Thread(target=p.stderr.read, daemon=True).start()
        data, statuses = image.read_bytes(), []

        def post() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            conn.request("POST", "/api/predict", body=data, headers={"Content-Type": "application/octet-stream"})
            r = conn.getresponse()
            r.read()
            statuses.append(r.status)
            conn.close()

        threads = [threading.Thread(target=post) for _ in range(clients)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        time.sleep(0.2)
        status = Path(f"/proc/{p.pid}/status").read_text()
        peak = int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024
    finally:
        p.terminate()
        p.wait(30)
    return peak, sorted(statuses)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="also write the table to this Markdown file")
    args = ap.parse_args()
    rows = ["| image | file bytes | CLI peak RSS MB | CLI exit | API peak RSS MB (4 concurrent POSTs) | API status |",
            "|---|---:|---:|---:|---:|---|"]
    worst = {"CLI": 0.0, "API": 0.0}
    base: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="hostile-memory-") as tmp:
        for name, path in corpus(Path(tmp)).items():
            print(f"measuring: {name}", file=sys.stderr)
            cli, code, said = cli_peak(path)
            api, statuses = api_peak(path)
            if not base:
                base = {"CLI": cli, "API": api}
            else:
                worst = {"CLI": max(worst["CLI"], cli), "API": max(worst["API"], api)}
            assert "Traceback" not in said, said
            rows.append(f"| {name} | {path.stat().st_size} | {cli:.0f} | {code} | {api:.0f} | "
                        f"{', '.join(map(str, statuses))} |")
    rows += ["", *(f"- {k}: worst hostile {worst[k]:.0f} MB = {worst[k] / base[k]:.2f}x the normal photo's "
                   f"{base[k]:.0f} MB (limit 2x)" for k in ("CLI", "API"))]
    text = "\n".join(rows) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
    if any(worst[k] >= 2 * base[k] for k in base):
        sys.exit(1)


if __name__ == "__main__":
    main()
