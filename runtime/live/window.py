"""--show: the overlay window. Whether one can open is decided before OpenCV tries: a headless
build has no GUI, and a GUI build with no display to talk to (ssh, a service, CI) aborts the whole
process from inside Qt/GTK instead of raising, losing the run's summary and any --save file."""

from __future__ import annotations

import os
import re
import sys
from typing import Mapping

import numpy as np

from catdog.runtime.spine.errors import OutputError

HEADLESS = ("--show needs an OpenCV build with GUI support (this one is headless); "
            "install catdog-edge[gui] instead of [cpu] (one OpenCV per env) or use --save out.mp4")
NO_DISPLAY = ("--show needs a display, and neither DISPLAY nor WAYLAND_DISPLAY is set (ssh, a service, CI); "
              "use --save out.mp4, or ssh -X")


def gui_problem(build_info: str, env: Mapping[str, str], platform: str) -> str | None:
    """Why --show cannot open a window here (OpenCV's build information, the environment,
    sys.platform), or None."""
    if re.search(r"GUI:\s*NONE", build_info):
        return HEADLESS
    if platform.startswith("linux") and not (env.get("DISPLAY") or env.get("WAYLAND_DISPLAY")):
        return NO_DISPLAY
    return None


class Window:
    """--show: says before the run starts when no window can open."""

    def __init__(self, title: str = "catdog-runtime"):
        import cv2

        self.title = title
        problem = gui_problem(cv2.getBuildInformation(), os.environ, sys.platform)
        if problem:
            raise OutputError(problem)
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        except cv2.error:
            raise OutputError(HEADLESS) from None

    def show(self, frame: np.ndarray) -> bool:
        """Show a frame; False when the user pressed q or Esc."""
        import cv2

        cv2.imshow(self.title, frame)
        return (cv2.waitKey(1) & 0xFF) not in (ord("q"), 27)

    def close(self) -> None:
        import cv2

        try:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
        except cv2.error:
            pass
