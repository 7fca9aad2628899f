"""The segment task through the notebooks as users run them: 03 standalone in quick mode (unet_seg),
04 standalone (it builds 01-03 first and shows error maps, confusion matrices and the table vs baselines)."""
from __future__ import annotations

import nbformat
import papermill
import pytest

from .conftest import REPO

pytestmark = pytest.mark.slow


def _run(notebook, tmp_path, arch):
    out = tmp_path / "out.ipynb"
    papermill.execute_notebook(str(REPO / "notebooks" / notebook), str(out), cwd=str(tmp_path),
                               parameters={"arch": arch, "quick": True, "run_dir": str(tmp_path / "run")},
                               progress_bar=False)
    nb = nbformat.read(out, as_version=4)
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"]


# One segment arch: the notebook path is the same for all four (segnet: the main job; fcn and deeplabv3plus
# train in test_segment.py, unet_seg also through geonb train in test_front_doors.py).
@pytest.mark.parametrize("arch", ["unet_seg"])
def test_train_notebook_runs_standalone(tmp_path, arch):
    assert not _run("03_train.ipynb", tmp_path, arch)
    assert (tmp_path / "run" / "segment" / "models" / arch / "model.pt").exists()
    assert (tmp_path / "run" / "segment" / "figures" / f"03_curves_{arch}.png").stat().st_size > 5000


def test_error_maps_notebook_runs_standalone(tmp_path):
    assert not _run("04_error_maps.ipynb", tmp_path, "segnet")
    figures = {p.stem for p in (tmp_path / "run" / "segment" / "figures").glob("*.png")}
    assert {"01_split", "02_crops", "03_curves_segnet", "04_error_maps", "04_confusion"} <= figures
