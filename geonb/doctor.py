"""``geonb doctor``: what a bug report needs — versions (and whether they are the locked ones), device,
shipped datasets checked, a writable run dir."""
from __future__ import annotations

import platform
import sys
import tempfile
from importlib import metadata
from pathlib import Path

from . import commands, progress

# The stack geonb runs on, as pip names it (versions read from metadata: nothing heavy is imported).
PACKAGES = ("torch", "numpy", "xarray", "dask", "zarr", "netCDF4", "rioxarray", "rasterio", "pyproj", "cartopy",
            "torchmetrics", "xbatcher", "matplotlib", "papermill", "nbval", "jupyterlab")
# The exact versions the tests pass with (scripts/lock.sh writes it, scripts/setup.sh installs it).
LOCK = Path(__file__).resolve().parent / "requirements.lock"


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _device() -> list[tuple[str, str]]:
    import torch

    rows = [("torch CUDA build", torch.version.cuda or "none (CPU build)")]
    if torch.cuda.is_available():
        rows += [(f"cuda:{i}", torch.cuda.get_device_name(i)) for i in range(torch.cuda.device_count())]
        rows.append(("device geonb trains on", "cuda"))
    else:
        rows.append(("device geonb trains on", "cpu (no CUDA device visible)"))
    rows.append(("CPU threads torch uses", str(torch.get_num_threads())))
    return rows


def lock_mismatches(lock: Path = LOCK) -> tuple[int, list[str]]:
    """How many packages ``lock`` pins, and 'name installed (lock version)' for each installed version
    that differs: the stack the tests passed with versus this one."""
    from packaging.requirements import Requirement

    pins = [Requirement(line) for line in lock.read_text().splitlines() if line.strip() and not line.startswith("#")]
    differ = []
    for pin in pins:
        installed = _version(pin.name)
        # the specifier, not string equality: ==2.13.0 accepts the local build 2.13.0+cpu
        if installed == "not installed" or not pin.specifier.contains(installed, prereleases=True):
            differ.append(f"{pin.name} {installed} (lock {str(pin.specifier).lstrip('=')})")
    return len(pins), differ


def _lock_row() -> tuple[str, str]:
    n, differ = lock_mismatches()
    if not differ:
        return "versions vs lock", f"match all {n} pins of {LOCK.name}"
    return "versions vs lock", (f"{len(differ)} of {n} differ: {', '.join(differ)}; install the tested versions "
                                f"with pip install -c {LOCK} geonb (or bash scripts/setup.sh)")


def writable(run_dir) -> str:
    """'yes' when a file can be created under ``run_dir`` (or under the nearest folder that exists and
    would hold it), else what stops it; nothing is left behind."""
    path = Path(run_dir).expanduser().resolve()
    parent = next((p for p in (path, *path.parents) if p.exists()), None)
    if parent is None or not parent.is_dir():
        return f"no: {parent} is not a folder"
    try:
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as exc:
        return f"no: {exc.strerror or exc} in {parent}"
    return "yes" if parent == path else f"yes (would be created inside {parent})"


def report(run_dir="runs/default") -> list[tuple[str, str]]:
    """(name, value) rows: geonb, Python, the packages, the device, the data and the run dir."""
    from .version import __version__
    from .datasets import DATASETS, path
    from .errors import GeonbError
    from .paths import natural_earth_dir

    rows = [("geonb", f"{__version__} ({Path(__file__).resolve().parent})"),
            ("python", f"{platform.python_version()} ({sys.executable})"),
            ("platform", platform.platform())]
    rows += [(name, _version(name)) for name in PACKAGES]
    rows.append(_lock_row())
    rows += _device()
    for name in DATASETS:
        try:
            rows.append((f"dataset {name}", f"checked ({path(name)})"))
        except GeonbError as exc:
            rows.append((f"dataset {name}", str(exc)))
    coast = natural_earth_dir() / "shapefiles" / "natural_earth" / "physical" / "ne_50m_coastline.shp"
    rows.append(("coastlines (Natural Earth)", "found" if coast.exists() else f"missing: {coast}"))
    rows.append((f"run dir {run_dir} writable", writable(run_dir)))
    return rows


def _cmd_doctor(args) -> int:
    progress.print_rows(report(args.run_dir))
    return 0


def add_cli(subparsers) -> None:
    p = commands.add(subparsers, "doctor")
    p.add_argument("--run-dir", default="runs/default", help="the run dir to check for writing")
    p.set_defaults(func=_cmd_doctor)
