"""``geonb doctor``: what a bug report needs — versions, device, data found, a writable run dir."""
from __future__ import annotations

import os
import platform
import sys
import tempfile
from importlib import metadata
from pathlib import Path

# The stack geonb runs on, as pip names it (versions read from metadata: nothing heavy is imported).
PACKAGES = ("torch", "numpy", "xarray", "dask", "zarr", "netCDF4", "rioxarray", "rasterio", "pyproj", "cartopy",
            "torchmetrics", "xbatcher", "matplotlib", "papermill", "nbval", "jupyterlab")
SHARED_FILES = ("alboranSST_small.nc", "antarctica_thickness_5km.nc", "dubai_aerial")


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
    from . import __version__
    from .paths import natural_earth_dir, shared_data_dir

    rows = [("geonb", f"{__version__} ({Path(__file__).resolve().parent})"),
            ("python", f"{platform.python_version()} ({sys.executable})"),
            ("platform", platform.platform())]
    rows += [(name, _version(name)) for name in PACKAGES]
    rows += _device()
    shared = shared_data_dir()
    env = " ($GEONB_SHARED_DATA)" if "GEONB_SHARED_DATA" in os.environ else ""
    rows.append(("shared data", f"{shared}{env}: " + ("found" if shared.is_dir() else
                                                       "not found (alboran, antarctica and Dubai runs need it)")))
    if shared.is_dir():
        rows += [(f"  {name}", "found" if (shared / name).exists() else "missing") for name in SHARED_FILES]
    coast = natural_earth_dir() / "shapefiles" / "natural_earth" / "physical" / "ne_50m_coastline.shp"
    rows.append(("coastlines (Natural Earth)", "found" if coast.exists() else f"missing: {coast}"))
    rows.append((f"run dir {run_dir} writable", writable(run_dir)))
    return rows


def _cmd_doctor(args) -> int:
    rows = report(args.run_dir)
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 0


def add_cli(subparsers) -> None:
    p = subparsers.add_parser("doctor", help="print versions, device, data found and a writable run dir (for bug reports)")
    p.add_argument("--run-dir", default="runs/default", help="the run dir to check for writing")
    p.set_defaults(func=_cmd_doctor)
