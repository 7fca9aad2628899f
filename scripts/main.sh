#!/usr/bin/env bash
# The main job: set up, then run notebooks 01→06 on the embedded data into runs/.
# Extra arguments go to `geonb run` (e.g. --quick, --run-dir runs/x, -p arch ctxgan).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/geonb run "$@"
