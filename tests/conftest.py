"""Keep tools out of $HOME, and share small quick runs between tests."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_TMP = Path(tempfile.mkdtemp(prefix="geonb-tests-"))
for var in ("MPLCONFIGDIR", "IPYTHONDIR", "JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR"):
    os.environ.setdefault(var, str(_TMP / var.lower()))
os.environ.setdefault("GEONB_SHARED_DATA", str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def alboran_path() -> Path:
    from geonb.paths import shared_data_dir

    path = shared_data_dir() / "alboranSST_small.nc"
    if not path.exists():
        pytest.skip(f"real cloudy cube not found at {path} (set GEONB_SHARED_DATA)")
    return path
