"""Rebuild samples/pets.mp4 from the sample photos: each photo letterboxed to 320x240 and held for
one second at 12 fps. A real video file for `catdog-runtime samples/pets.mp4` demos.
Run: python samples/make_video.py"""

from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).parent
W, H, FPS = 320, 240, 12


def letterbox(img: np.ndarray) -> np.ndarray:
    scale = min(W / img.shape[1], H / img.shape[0])
    small = cv2.resize(img, (round(img.shape[1] * scale), round(img.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    canvas = np.zeros((H, W, 3), np.uint8)
    y, x = (H - small.shape[0]) // 2, (W - small.shape[1]) // 2
    canvas[y : y + small.shape[0], x : x + small.shape[1]] = small
    return canvas


def main() -> None:
    out = HERE / "pets.mp4"
    tmp = out.with_name(".pets.tmp.mp4")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (W, H))
    for photo in sorted(HERE.glob("*.jpg")):
        frame = letterbox(cv2.imread(str(photo)))
        for _ in range(FPS):
            writer.write(frame)
    writer.release()
    tmp.replace(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
