"""All-or-nothing publishing of an export: every artifact is written to a hidden temp file in the
output folder and renamed to its final name only after every gate has passed. A kill -9 at any
point leaves no partial file under a final name (temp names start with '.' and end in '.tmp')."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from catdog.runtime.spine.errors import OutputError
from catdog.runtime.spine.fileio import make_readable

TEMP_SUFFIX = ".tmp"


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


class Staging:
    def __init__(self, out_dir: Path):
        self.out_dir = Path(out_dir)
        self._temps: dict[str, Path] = {}  # final file name -> temp path

    def path(self, final_name: str) -> Path:
        """A fresh temp path in the output folder that will become `final_name` on publish."""
        if final_name in self._temps:
            return self._temps[final_name]
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{final_name}.", suffix=TEMP_SUFFIX, dir=self.out_dir)
            os.close(fd)
        except OSError as e:
            raise OutputError(f"cannot write to {self.out_dir}: {e.strerror}; choose a writable folder") from None
        self._temps[final_name] = Path(tmp)
        return Path(tmp)

    def staged(self) -> dict[str, Path]:
        return dict(self._temps)

    def publish(self, names: list[str] | None = None) -> list[Path]:
        """fsync then rename each staged file (all, or only `names`) to its final name."""
        published = []
        for name in list(self._temps) if names is None else names:
            tmp = self._temps.pop(name)
            final = self.out_dir / name
            try:
                _fsync(tmp)
                make_readable(tmp)
                os.replace(tmp, final)
            except OSError as e:
                raise OutputError(f"cannot write {final}: {e.strerror}; check free space and permissions") from None
            published.append(final)
        return published

    def discard(self) -> None:
        for tmp in self._temps.values():
            tmp.unlink(missing_ok=True)
        self._temps.clear()


def remove_stale_temps(out_dir: Path, final_names: list[str]) -> list[Path]:
    """Temp files a killed earlier export left behind (only ours: '.<artifact name>.*.tmp')."""
    removed = []
    for name in final_names:
        for p in Path(out_dir).glob(f".{name}.*{TEMP_SUFFIX}"):
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed
