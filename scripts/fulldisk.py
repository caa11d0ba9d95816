"""A real full disk, without mocks: a tiny tmpfs mounted inside a user + mount namespace
(`unshare -rm`, no root needed where the kernel allows unprivileged user namespaces), filled up,
with the command under test run inside. Writes there fail with a real ENOSPC. For the disk-full
rows of scripts/bad_inputs.py and the tests (tests/testkit/fulldisk.py re-exports it): in scripts/,
not in tests/, because scripts never import the tests (the tests reach scripts/ through
tests/conftest.py), nor in the product, which ships only what a user runs."""

from __future__ import annotations

import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

SCRIPT = r"""
set -u
mount -t tmpfs -o size="$SIZE" tmpfs "$FULL" || exit 99
cp -a "$PREV/." "$FULL/"
[ "$FILL" = 1 ] && cat /dev/zero > "$FULL/.filler" 2>/dev/null
"$@"; rc=$?
rm -f "$FULL/.filler"; cp -a "$FULL/." "$AFTER/"
exit $rc
"""


@lru_cache(maxsize=1)
def available() -> str | None:
    """None if a namespaced tmpfs can be mounted here, else why not."""
    if not shutil.which("unshare"):
        return "no unshare(1) on this machine"
    r = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs tmpfs /mnt"],
                       capture_output=True, text=True)
    return None if r.returncode == 0 else f"cannot mount a tmpfs in a user namespace: {r.stderr.strip()}"


def run_on_full_disk(tmp_path: Path, cmd: list, previous: dict[str, bytes] | None = None, fill: bool = True,
                     size: str = "1m", timeout: float = 120) -> tuple[subprocess.CompletedProcess, dict[str, bytes]]:
    """Run `cmd` with tmp_path/'full' a tiny tmpfs holding `previous` files (name -> bytes) and, with
    `fill`, no free byte left. Returns the process and the files left there afterwards."""
    import os

    full, prev, after = tmp_path / "full", tmp_path / "prev", tmp_path / "after"
    for d in (full, prev, after):
        d.mkdir(exist_ok=True)
    for name, data in (previous or {}).items():
        (prev / name).parent.mkdir(parents=True, exist_ok=True)
        (prev / name).write_bytes(data)
    env = {**os.environ, "FULL": str(full), "PREV": str(prev), "AFTER": str(after), "SIZE": size,
           "FILL": "1" if fill else "0"}
    r = subprocess.run(["unshare", "-rm", "sh", "-c", SCRIPT, "sh", *map(str, cmd)], capture_output=True,
                       text=True, env=env, timeout=timeout)
    if r.returncode == 99:  # the script's own code for "mount failed"; not an assert: scripts run this too
        raise RuntimeError(f"mount failed: {r.stderr}")
    left = {str(p.relative_to(after)): p.read_bytes() for p in sorted(after.rglob("*")) if p.is_file()}
    return r, left
