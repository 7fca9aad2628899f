#!/usr/bin/env bash
# The tests: set up, then pytest (unit tests, notebooks under papermill, nbval regression).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
