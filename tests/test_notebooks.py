"""The notebooks as users run them: papermill, quick mode, every task, every arch."""
from __future__ import annotations

import nbformat
import papermill
import pytest

from geonb.cli import run_notebooks
from geonb.workflow import NOTEBOOKS

from .conftest import REPO

pytestmark = pytest.mark.slow


def _errors(path):
    nb = nbformat.read(path, as_version=4)
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"]


def _other_archs_named(path, task) -> list[str]:
    """Archs of other tasks that an executed notebook names in its prose or outputs (the parameters cell's
    template defaults aside: papermill's injected cell overrides them)."""
    import re

    from geonb.registry import list_archs

    nb = nbformat.read(path, as_version=4)
    text = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            text.append(cell.source)
        for out in cell.get("outputs", []):
            text.append(out.get("text", ""))
            text += [str(v) for k, v in out.get("data", {}).items() if k.startswith("text/")]
    text = "\n".join(text)
    return [a.name for a in list_archs() if a.task != task and re.search(rf"\b{a.name}\b", text)]


def _pngs(run_dir, task):
    return sorted((run_dir / task / "figures").glob("*.png"))


# One arch of every family on the data shipped inside the package, with every read beside the checkout
# and the network refused (conftest); dincae/clouds (the quick main job itself) runs in test_offline.py.
# `figures`: a few of each family's own figures (the count and size check below covers the rest).
@pytest.mark.parametrize("arch,task,params,figures", [
    ("srcnn", "downscale", {"data": "antarctica"}, {"04_spectra", "05_scatter", "06_transect"}),
    ("unet", "inpaint", {}, {"04_maps_clouds", "05_scatter_clouds", "06_transect"}),
    ("segnet", "segment", {}, {"04_error_maps", "04_confusion", "04_reliability"}),
    ("pix2pix", "translate", {}, {"04_triptychs", "04_confusion"}),
    ("acgan", "generate", {}, {"04_generated_vs_real", "04_confusion"})])
def test_main_job_runs_all_six_notebooks_quick(tmp_path, arch, task, params, figures, capfd):
    written = run_notebooks(tmp_path, quick=True, params={"arch": arch, **params})
    assert [p.stem for p in written] == list(NOTEBOOKS)
    terminal = capfd.readouterr().err  # what the user's terminal shows (the kernels' stderr included)
    for k, name in enumerate(NOTEBOOKS, 1):
        assert f"[geonb run] {k}/6 {name} →" in terminal and f"[geonb run] {k}/6 {name} done in" in terminal
    assert "the first epoch took" in terminal and " epoch 1/" in terminal  # the duration estimate and epoch lines
    for path in written:
        assert not _errors(path), path
        assert not _other_archs_named(path, task), path  # a short paper about this run, not about all six
    pngs = _pngs(tmp_path, task)
    assert len(pngs) >= 5 and all(p.stat().st_size > 5000 for p in pngs)  # real figures, not blanks
    assert figures <= {p.stem for p in pngs}
    _progress_is_one_live_view_saved_finished(written[2], arch)


def _progress_is_one_live_view_saved_finished(notebook, arch):
    """03's progress is one output updated in place (what papermill saves is its final state: 100 %), not
    stderr text, and no frozen 0/N widget."""
    outputs = [o for c in nbformat.read(notebook, as_version=4).cells if c.cell_type == "code"
               for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("name") == "stderr"]
    views = [o["data"]["text/plain"] for o in outputs if o.get("output_type") == "display_data"
             and "the first epoch took" in o["data"].get("text/plain", "")]
    assert len(views) == 1 and "100%" in views[0] and arch in views[0], views
    if arch == "unet":  # 5 quick epochs: only the last is kept
        assert "epoch 5/5" in views[0] and "epoch 4/5" not in views[0], views


# The recipes the main job does not run (rsrcnn at ×8: its recursion's deepest case; srgan: both grids).
@pytest.mark.parametrize("arch,params", [("ctxgan", {}), ("rsrcnn", {"factor": 8}),
                                         ("srgan", {}), ("srgan", {"data": "antarctica"})])
def test_train_notebook_runs_standalone(tmp_path, arch, params):
    out = tmp_path / "out.ipynb"
    papermill.execute_notebook(str(REPO / "notebooks" / "03_train.ipynb"), str(out), cwd=str(tmp_path),
                               parameters={"arch": arch, "quick": True, "run_dir": str(tmp_path / "run"), **params},
                               progress_bar=False)
    assert not _errors(out)
    assert list((tmp_path / "run").rglob("*.pt")), "no checkpoint written"


def test_unknown_arch_fails_in_the_notebook_with_the_valid_names(tmp_path):
    with pytest.raises(papermill.PapermillExecutionError, match="unknown arch 'resnet'; valid names: .*unet"):
        papermill.execute_notebook(str(REPO / "notebooks" / "03_train.ipynb"), str(tmp_path / "o.ipynb"),
                                   parameters={"arch": "resnet", "run_dir": str(tmp_path)}, progress_bar=False)
