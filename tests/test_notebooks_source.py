"""The committed notebooks are exactly what tools/build_notebooks.py writes (no drift)."""
import sys

from .conftest import REPO


def test_notebooks_match_their_builder():
    sys.path.insert(0, str(REPO / "tools"))
    import build_notebooks
    import nbformat

    for name in build_notebooks.NOTEBOOKS:
        committed = nbformat.read(REPO / "notebooks" / f"{name}.ipynb", as_version=4)
        built = build_notebooks.notebook(name)
        assert [(c.cell_type, c.source) for c in committed.cells] == [(c.cell_type, c.source) for c in built.cells], name
