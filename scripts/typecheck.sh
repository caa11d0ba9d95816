#!/usr/bin/env bash
# Type-check the runtime with mypy (its settings: [tool.mypy] in pyproject.toml), as scripts/test.sh
# and so CI do. The stage folders install as catdog.<stage> (setup.py), a mapping mypy cannot read
# from an editable install, so it checks a view of them: a temp folder whose catdog/<stage> entries
# are links to this checkout's folders. Errors name catdog/runtime/... = runtime/... here.
#
#   bash scripts/typecheck.sh [PYTHON]     # PYTHON: the venv's interpreter (default .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
py=${1:-$root/.venv/bin/python}
view=$(mktemp -d)
trap 'rm -rf "$view"' EXIT
mkdir "$view/catdog"
for stage in train export runtime benchmarks; do ln -s "$root/$stage" "$view/catdog/$stage"; done
cd "$view"
"$py" -m mypy --config-file "$root/pyproject.toml" --python-executable "$py" -p catdog.runtime
