"""Keep tools out of $HOME, and share small quick runs between tests."""
from __future__ import annotations

import importlib.util
import os
import tempfile
from pathlib import Path

import pytest

_TMP = Path(tempfile.mkdtemp(prefix="geonb-tests-"))
for var in ("MPLCONFIGDIR", "IPYTHONDIR", "JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR"):
    os.environ.setdefault(var, str(_TMP / var.lower()))

REPO = Path(__file__).resolve().parents[1]

# Every test, and every process it starts (notebook kernels, `geonb` commands), runs as a newcomer's
# clone would: no network beyond loopback and no file beside the checkout (a data folder only our
# machines have) — tests/offline/sitecustomize.py refuses both; refused attempts go to the log.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "tests" / "offline"), str(REPO),
                                                         os.environ.get("PYTHONPATH")]))
os.environ["GEONB_CHECKOUT"] = str(REPO)
os.environ.setdefault("GEONB_REFUSED_LOG", str(_TMP / "refused.log"))
_guard = importlib.util.spec_from_file_location("geonb_offline_guard", REPO / "tests" / "offline" / "sitecustomize.py")
_guard.loader.exec_module(importlib.util.module_from_spec(_guard))  # and this pytest process too

# pytest-xdist (pyproject's addopts: -n auto): one worker per core, as many as the memory holds at 3 GiB a
# worker (one held 1.2 GiB here, beside its notebook kernels). Each worker, and every process it starts, gets
# its share of the cores: workers each running torch on all cores would fight over them (measured on 2
# cores: a test 6× slower).
_CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1  # not on macOS
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", 1))
if _WORKERS > 1:
    os.environ["OMP_NUM_THREADS"] = str(max(1, _CORES // _WORKERS))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config):
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None  # xdist's own hook reads it
    import psutil

    memory_gib = psutil.virtual_memory().total / 2**30
    return max(1, min(_CORES, int(memory_gib // 3)))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """Each test on whichever worker is free, but a regression notebook's cells all on one worker, in order
    (they share one kernel). xdist's loadgroup would do this with marks, but sets a node id pytest 9.2 no
    longer reads; loadscope would keep each test module on one worker (test_notebooks.py alone ~8 min)."""
    from xdist.scheduler import LoadScopeScheduling

    class NotebookScope(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::")[0]
            return path if path.endswith(".ipynb") else nodeid

    return NotebookScope(config, log)


@pytest.fixture(scope="session")
def alboran_path() -> Path:
    from geonb import datasets

    return datasets.path("alboran")


@pytest.fixture
def antarctic(tmp_path):
    """An untrained ×4 srcnn in thickness units and a low-res EPSG:3031 grid of real Antarctic ice."""
    import torch

    from geonb.data import load_grid
    from geonb.modelfile import TrainedModel
    from geonb.normalise import Normaliser
    from geonb.registry import get_arch
    from geonb.resample import coarsen

    from .test_antarctica import _projected

    torch.manual_seed(0)
    net = get_arch("srcnn").build("generator", factor=4, cond_res=[])
    model = TrainedModel("downscale", "srcnn", {"factor": 4, "cond_res": []}, [net.state_dict()],
                         {"target": Normaliser(1500.0, 900.0)},
                         inputs={"variable": "thickness", "cond": [], "valid_above": 0.0, "crs": "EPSG:3031"},
                         info={"trained_on": "test"}).save(tmp_path / "sr.pt")
    ant = load_grid("antarctica").isel(y=slice(400, 464), x=slice(560, 640))  # 64×80 cells of 5 km
    lr = coarsen(ant["thickness"].values.astype(float), 4)
    coarse = _projected(tmp_path / "coarse.nc", lr, ant.y.values.reshape(-1, 4).mean(1),
                        ant.x.values.reshape(-1, 4).mean(1))
    return model, coarse, ant
