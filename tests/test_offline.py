"""The quick main job (`geonb run --quick`) passes with every non-loopback connection refused and every
file beside the checkout (a data folder only our machines have) unreadable."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from geonb.workflow import NOTEBOOKS

from .conftest import REPO
from .test_notebooks import _errors, _pngs

pytestmark = pytest.mark.slow


def _env(tmp_path):
    """The guard is on for every process the tests start (conftest); this test's own log of refusals."""
    return {**os.environ, "GEONB_REFUSED_LOG": str(tmp_path / "refused.log")}


def test_the_network_is_really_refused(tmp_path):
    code = "import socket; socket.create_connection(('93.184.216.34', 80), timeout=5)"
    done = subprocess.run([sys.executable, "-c", code], env=_env(tmp_path), capture_output=True, text=True)
    assert done.returncode != 0 and "network refused by the geonb offline test" in done.stderr


def test_reads_beside_the_checkout_are_really_refused(tmp_path):
    code = f"open({str(REPO.parent / 'data-beside' / 'README.md')!r})"
    done = subprocess.run([sys.executable, "-c", code], env=_env(tmp_path), capture_output=True, text=True)
    assert done.returncode != 0 and "read beside the checkout refused" in done.stderr


def test_this_test_process_is_guarded_too():
    with pytest.raises(PermissionError, match="read beside the checkout refused"):
        open(REPO.parent / "data-beside" / "README.md")


def test_quick_main_job_passes_offline(tmp_path):
    run_dir = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "geonb", "run", "--quick", "--run-dir", str(run_dir)], cwd=REPO,
                          env=_env(tmp_path), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    for k, name in enumerate(NOTEBOOKS, 1):  # the terminal shows progress per notebook and per epoch
        assert f"[geonb run] {k}/6 {name} done in" in done.stderr
    assert "the first epoch took" in done.stderr and "dincae (self-supervised) epoch 1/" in done.stderr
    written = sorted((run_dir / "notebooks").glob("*.ipynb"))
    assert len(written) == 6 and not any(_errors(p) for p in written)
    pngs = _pngs(run_dir, "clouds")  # the main job: cloud filling of the Alboran cube
    assert len(pngs) >= 6 and all(p.stat().st_size > 5000 for p in pngs)
    refused = tmp_path / "refused.log"
    print("refused:", refused.read_text() if refused.exists() else "nothing")  # attempts, if any, for the log
