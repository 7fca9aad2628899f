#!/usr/bin/env bash
# Create .venv if missing and install geonb with its test tools; CPU torch first.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# torch first, pinned: pip takes the CPU wheel instead of GBs of CUDA packages
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/pip install -q torch==2.13.0
stamp=.venv/.geonb-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/pip install -q -e ".[test]"
  echo "$want" > "$stamp"
fi
