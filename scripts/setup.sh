#!/usr/bin/env bash
# Create .venv if missing and install geonb with its test tools; CPU torch first.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "geonb needs Python ≥ 3.11 (set PYTHON=python3.11)"; exit 1; }
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# torch first, pinned, CPU: our machines' pip resolves it to a local CPU wheel; elsewhere set
# TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu, or plain PyPI brings GBs of CUDA packages
.venv/bin/python -c "import torch" 2>/dev/null ||
  .venv/bin/pip install -q torch==2.13.0 ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
stamp=.venv/.geonb-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/pip install -q -e ".[test]"
  echo "$want" > "$stamp"
fi
