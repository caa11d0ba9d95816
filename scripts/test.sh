#!/usr/bin/env bash
# The README's test command, and exactly what .ci/run runs in a fresh clone: on a fresh Debian or
# Ubuntu machine it installs everything the tests use, system packages included, then proves the
# runtime needs no torch and runs the whole suite.
#
#   bash scripts/test.sh            # as root, or as a user with sudo (for apt-get)
#
# 1. System packages, with apt-get, only those missing (Debian's names; Ubuntu has the same):
#    - chromium + chromium-driver: the browser test drives Debian's chromium headless;
#    - GStreamer with its RTSP server (python3-gi + gir1.2-gst-rtsp-server-1.0) and Debian's
#      python3-opencv (built with GStreamer): the camera tests serve H.264 over RTSP on loopback
#      (benchmarks/live/rtsp_camera.py) and read it through pip OpenCV's FFmpeg and, in a "Jetson
#      recipe" venv (Debian's python3, --system-site-packages), through OpenCV's GStreamer backend;
#    - python3-venv: Debian's python3 needs it to make that venv.
#    No test skips for a missing one: each fails naming the apt-get command.
# 2. A venv without torch (.venv-rt) with only the runtime's extras runs tests/runtime: it proves
#    catdog.runtime never imports torch (nor Ray, which only the [ray] extra brings).
# 3. The dev venv (.venv, or $VENV): `pip install -e '.[dev]'`, `ruff check .`, mypy on the runtime
#    (scripts/typecheck.sh), then pytest over the whole suite. Its closing line is the run's verdict, so it runs last.
# Both venvs are reused when they exist (pip only adds what changed); CI's fresh clone has neither.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
py=${PYTHON:-python3}

say() { printf '== %s\n' "$*"; }

pkgs=(chromium chromium-driver python3-venv python3-gi python3-opencv gir1.2-gst-rtsp-server-1.0
      gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
      gstreamer1.0-plugins-ugly gstreamer1.0-libav)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  say "system packages: installing ${missing[*]}"
  sudo=()
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "installing ${missing[*]} needs root: run this as root or install sudo" >&2; exit 1; }
    sudo=(sudo)
  fi
  log=$(mktemp)
  install() { DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"; }
  # A fresh image has no package lists: fetch them only when the install fails without them.
  if ! install >"$log" 2>&1 && ! { "${sudo[@]}" apt-get update -qq && install; } >>"$log" 2>&1; then
    tail -n 20 "$log" >&2
    echo "cannot install ${missing[*]} (apt-get install -y ${missing[*]}): the tests need them" >&2
    exit 1
  fi
  rm -f "$log"
else
  say "system packages: all present"
fi
for bin in /usr/bin/chromium /usr/bin/chromedriver /usr/bin/python3 /usr/bin/gst-inspect-1.0; do
  [ -x "$bin" ] || { echo "$bin is missing after installing ${pkgs[*]}" >&2; exit 1; }
done

say "torch-free runtime venv (.venv-rt): tests/runtime"
[ -x .venv-rt/bin/python ] || "$py" -m venv .venv-rt
.venv-rt/bin/python -m pip install -q --upgrade pip
.venv-rt/bin/python -m pip install -q ".[runtime-test]"
for mod in torch ray; do
  if .venv-rt/bin/python -c "import $mod" 2>/dev/null; then
    echo "$mod is importable in the torch-free runtime venv: a runtime extra pulls it in" >&2
    exit 1
  fi
done
# tests/runtime/scale needs ray ([ray] extra), which this venv must not have: the dev venv runs it.
# Run from outside the checkout so `catdog` is the installed package, not the source tree.
away=$(mktemp -d)
(cd "$away" && "$root/.venv-rt/bin/python" -m pytest -q -p no:cacheprovider "$root/tests/runtime" \
  "$root/tests/test_layout.py" --ignore "$root/tests/runtime/scale")
rmdir "$away"

venv=${VENV:-.venv}
say "dev venv ($venv): install, lint, the whole suite"
[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
venv=$(cd "$venv" && pwd)
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q -e '.[dev]'
"$venv/bin/ruff" check .
say "type check: mypy on catdog.runtime (scripts/typecheck.sh)"
bash scripts/typecheck.sh "$venv/bin/python"
exec "$venv/bin/python" -m pytest
