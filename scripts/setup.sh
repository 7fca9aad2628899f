#!/usr/bin/env bash
# Create .venv if missing and install geonb with its test tools at the locked versions
# (geonb/requirements.lock; refresh it on purpose with scripts/lock.sh); CPU torch first.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
LOCK=geonb/requirements.lock
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "geonb needs Python ≥ 3.11 (set PYTHON=python3.11)"; exit 1; }
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# torch first, pinned, CPU: our machines' pip resolves it to a local CPU wheel; elsewhere set
# TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu, or plain PyPI brings GBs of CUDA packages
torch_pin=$(grep -m1 '^torch==' "$LOCK")
.venv/bin/python -c "import torch" 2>/dev/null ||
  .venv/bin/pip install -q "$torch_pin" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
stamp=.venv/.geonb-installed
want=$(cat pyproject.toml "$LOCK" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  # -c: the lock decides every version, so a fresh clone today and next year install the same stack
  .venv/bin/pip install -q -c "$LOCK" -e ".[test]"
  .venv/bin/pip check
  echo "$want" > "$stamp"
fi
