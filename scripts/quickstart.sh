#!/usr/bin/env bash
# The README's first command: on a fresh Debian or Ubuntu machine, install the torch-free runtime in
# .venv and classify samples/ with the shipped model. Debian's python3 makes venvs only with
# python3-venv, so that one system package is installed first where it is missing (root or sudo).
#
#   bash scripts/quickstart.sh [catdog-runtime options]
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
if ! "$py" -c "import ensurepip, venv" 2>/dev/null; then
  sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo)
  echo "== installing python3-venv (Debian's python3 needs it to make a venv)"
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq python3-venv >/dev/null 2>&1 ||
    { "${sudo[@]}" apt-get update -qq && DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq python3-venv; }
fi
[ -x .venv/bin/python ] || "$py" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q '.[cpu]'
exec .venv/bin/catdog-runtime samples/ "$@"
