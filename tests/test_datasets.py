"""The real datasets ship inside geonb (geonb.datasets, `geonb data`): checked by sha256, licensed, and the
only data anything reads: no file of the package, its notebooks, tests or benchmarks names a folder beside
the checkout."""
import re

import pytest

from geonb import aerial, datasets
from geonb.cli import main
from geonb.data import load_field, load_grid
from geonb.errors import GeonbError

from .conftest import REPO


def test_every_dataset_is_shipped_checked_and_licensed():
    for name, d in datasets.DATASETS.items():
        where = datasets.path(name)
        assert where.is_relative_to(datasets.DATA_DIR) and datasets.checksum(where) == d.sha256
        readme = (datasets.DATA_DIR / d.path.split("/")[0] / "README.md").read_text()
        assert "Licence" in readme and "Source" in readme


def test_the_shipped_data_opens_by_name():
    sst = load_field("alboran")
    assert sst.shape == (10, 201, 301) and 0.6 < float(sst.isnull().mean()) < 0.9  # land, and clouds over ~45 % of the sea
    grid = load_grid("antarctica")
    assert grid.sizes == {"y": 1120, "x": 1160} and grid.attrs["crs"] == "EPSG:3031"
    pair = aerial.load_pair(1, 1)
    assert pair.photo.ndim == 3 and pair.photo.shape[:2] == pair.classes.shape


def test_a_damaged_or_unknown_dataset_is_refused(tmp_path, monkeypatch):
    with pytest.raises(GeonbError, match="no shipped dataset 'sst'; the datasets are alboran, antarctica, dubai"):
        datasets.path("sst")
    copy = tmp_path / "alboran"
    copy.mkdir()
    (copy / "alboranSST_small.nc").write_bytes(datasets.path("alboran").read_bytes()[:-1])  # one byte short
    monkeypatch.setattr(datasets, "DATA_DIR", tmp_path)
    datasets.path.cache_clear()
    try:
        with pytest.raises(GeonbError, match="'alboran' .* is damaged or changed .* reinstall geonb"):
            datasets.path("alboran")
    finally:
        datasets.path.cache_clear()


def test_geonb_data_lists_and_describes(capsys):
    assert main(["data"]) == 0
    out = capsys.readouterr().out
    assert all(f"{name}: " in out for name in datasets.DATASETS) and "CC0" in out and "MIT" in out
    assert main(["data", "antarctica"]) == 0
    assert capsys.readouterr().out.count("licence:") == 1


def test_nothing_reads_a_folder_beside_the_checkout():
    """No code names a path above the checkout (built from its root, or a ``../`` path in what a run executes)
    or an environment variable pointing at data outside it: a newcomer's clone has nothing beside it.
    test_offline.py opens a made-up folder there on purpose, to prove the guard refuses it."""
    files = [p for folder in ("geonb", "tests", "notebooks", "benchmarks", "tools", "scripts", ".ci")
             for p in (REPO / folder).rglob("*") if p.suffix in (".py", ".ipynb", ".sh", ".cfg", "") and p.is_file()
             and "__pycache__" not in p.parts and p.name not in ("test_datasets.py", "test_offline.py")]
    above = re.compile(r"\b(REPO|REPO_ROOT)\.parent\b|parents\[[2-9]\]|GEONB_\w*DATA\b")
    relative_up = re.compile(r"[\"']\.\./")  # only in code a run executes: benchmarks build ../ links in temp boxes
    run_code = ("geonb", "notebooks", "scripts", ".ci")
    named = [str(p.relative_to(REPO)) for p in files if above.search(text := p.read_text(errors="ignore"))
             or (p.relative_to(REPO).parts[0] in run_code and relative_up.search(text))]
    assert len(files) > 50 and named == []
