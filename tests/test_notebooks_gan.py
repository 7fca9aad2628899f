"""The GAN archs through the notebooks as users run them: 03 standalone in quick mode (acgan, pix2pix),
and 04 standalone for each (it builds 01-03 first and shows grids, triptychs, confusion matrices)."""
from __future__ import annotations

import nbformat
import papermill
import pytest

from .conftest import REPO

pytestmark = pytest.mark.slow


def _errors(path):
    nb = nbformat.read(path, as_version=4)
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"]


@pytest.mark.parametrize("arch", ["acgan", "pix2pix"])
def test_train_notebook_runs_standalone(tmp_path, arch):
    out = tmp_path / "out.ipynb"
    papermill.execute_notebook(str(REPO / "notebooks" / "03_train.ipynb"), str(out), cwd=str(tmp_path),
                               parameters={"arch": arch, "quick": True, "run_dir": str(tmp_path / "run")},
                               progress_bar=False)
    assert not _errors(out)
    assert list((tmp_path / "run").rglob("model.pt")), "no model file written"


@pytest.mark.parametrize("arch,task,figures", [
    ("acgan", "generate", {"04_generated_vs_real", "04_confusion"}),
    ("pix2pix", "translate", {"04_triptychs", "04_confusion"}),
])
def test_error_maps_notebook_runs_standalone(tmp_path, arch, task, figures):
    out = tmp_path / "out.ipynb"
    papermill.execute_notebook(str(REPO / "notebooks" / "04_error_maps.ipynb"), str(out), cwd=str(tmp_path),
                               parameters={"arch": arch, "quick": True, "run_dir": str(tmp_path / "run")},
                               progress_bar=False)
    assert not _errors(out)
    assert figures <= {p.stem for p in (tmp_path / "run" / task / "figures").glob("*.png")}
