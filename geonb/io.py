"""File I/O that never loses user data: read-only inputs, atomic outputs, safe checkpoints."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from .errors import GeonbError


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    try:
        yield tmp
        tmp.chmod(0o666 & ~umask)  # mkstemp makes 0600; outputs get the usual permissions
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_netcdf(ds, path) -> Path:
    """Write a Dataset/DataArray to NetCDF atomically (a killed write leaves no half file)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp)
    return path


def refuse_input_as_output(out, inputs, flag: str = "--out") -> Path:
    """``out`` as a Path, or a GeonbError when it is one of the ``inputs`` (same path after resolving
    links, or the same file by inode): checked before any work, so no input is ever replaced."""
    out = Path(out)
    for given in filter(None, inputs):
        p = Path(given)
        if p.exists() and (out.resolve() == p.resolve() or (out.exists() and os.path.samefile(out, p))):
            raise GeonbError(f"{flag} {out} is an input of this command ({p}); geonb never overwrites its inputs. "
                             "Give another path.")
    return out


IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF"}
NETCDF = (".nc", ".nc4", ".netcdf")


def write_output(ds: xr.Dataset, path, command: str = "") -> Path:
    """Write a result in the format its file name asks for, atomically: NetCDF (``.nc``), zarr (``.zarr``),
    GeoTIFF (``.tif``, a Cloud Optimized GeoTIFF with the CRS and transform, for a 2-D grid or image that has
    a CRS) or, for a Dataset naming an ``image_variable`` (y, x[, band]; uint8) without a CRS, a PNG/JPEG/TIFF
    image (a TIFF input's tags travel in ``ds.encoding["tiff_tags"]``). ``command``, the geonb command line
    that made it, is added to the ``history`` attribute (CF)."""
    path = Path(path)
    if command:
        add_history(ds.attrs, command)
    suffix = path.suffix.lower()
    if suffix == ".zarr":
        return write_zarr(ds, path)
    if suffix in NETCDF:
        return write_netcdf(ds, path)
    raster = _raster_variable(ds)
    if suffix in (".tif", ".tiff") and raster is not None and raster.rio.crs is not None:
        return write_geotiff(raster, path)
    if suffix in IMAGE_FORMATS and "image_variable" in ds.attrs:
        from PIL import Image

        with atomic_path(path) as tmp:
            Image.fromarray(ds[ds.attrs["image_variable"]].values).save(
                tmp, format=IMAGE_FORMATS[suffix], tiffinfo=ds.encoding.get("tiff_tags", {}),
                **({"quality": 95} if IMAGE_FORMATS[suffix] == "JPEG" else {}))
        return path
    kinds = ["NetCDF (.nc)", "zarr (.zarr)"]
    if raster is not None and raster.rio.crs is not None:
        kinds.append("GeoTIFF (.tif)")
    if "image_variable" in ds.attrs:
        kinds.append("an image (.png, .jpg, .tif)")
    why = "" if suffix not in (".tif", ".tiff") else \
        " (GeoTIFF holds one 2-D grid or image with a CRS; this result has none, or several variables or dims)"
    raise GeonbError(f"{path}: this result is written as {', '.join(kinds[:-1])} or {kinds[-1]}{why}; "
                     "give --out such a name.")


def add_history(attrs: dict, line: str) -> dict:
    """Append a timestamped line to the CF ``history`` attribute."""
    from datetime import datetime, timezone

    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    attrs["history"] = (attrs.get("history", "") + f"\n{stamp} {line}").strip()
    return attrs


def _raster_variable(ds: xr.Dataset):
    """The one variable a GeoTIFF can hold — the ``image_variable``, or the only data variable; 2-D (y, x)
    or 3-D with a band dim — north up, with the Dataset's attributes; None when there is no such variable."""
    import rioxarray  # noqa: F401  (registers .rio)

    names = [ds.attrs["image_variable"]] if "image_variable" in ds.attrs else list(ds.data_vars)
    if len(names) != 1 or ds[names[0]].ndim not in (2, 3):
        return None
    da = ds[names[0]]
    if da.ndim == 3:  # bands last (an RGB image) → first, as rasterio wants
        da = da.transpose(da.dims[2], *da.dims[:2])
    y, x = da.dims[-2:]
    if da[y].size > 1 and da[y].values[1] > da[y].values[0]:  # GeoTIFF rows run north to south
        da = da.isel({y: slice(None, None, -1)})
    da = da.assign_attrs({**{k: v for k, v in ds.attrs.items() if k != "image_variable"}, **da.attrs})
    return da.rio.set_spatial_dims(y_dim=y, x_dim=x)


def write_geotiff(da: xr.DataArray, path) -> Path:
    """A (band,) y, x DataArray with a CRS → a Cloud Optimized GeoTIFF (rioxarray; DEFLATE), atomically.
    Its attributes become tags; nodata is ``no_label`` for class maps, NaN for floats."""
    path = Path(path)
    nodata = da.attrs.get("no_label", np.nan if da.dtype.kind == "f" else None)
    if nodata is not None:
        da = da.rio.write_nodata(nodata, encoded=False)
    with atomic_path(path) as tmp:
        da.rio.to_raster(tmp, driver="COG", compress="DEFLATE")
    return path


# The layout of the file a variable was read from (netCDF4 compression and chunks, zarr chunks), which zarr
# refuses or which would clash with the new chunks; the rest (dtype, fill value, scale/offset, time units) is kept.
_SOURCE_LAYOUT = ("chunks", "preferred_chunks", "chunksizes", "contiguous", "zlib", "complevel", "shuffle",
                  "fletcher32", "szip_coding", "szip_pixels_per_block", "blosc_shuffle", "compression", "endian",
                  "quantize_mode", "significant_digits", "least_significant_digit", "source", "original_shape")


def write_zarr(ds, path, **kwargs) -> Path:
    """Write a Dataset (lazy dask variables chunk by chunk) to a zarr store in a temporary folder beside
    ``path``, renamed onto it when complete (a killed write leaves no half store)."""
    import shutil

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds = ds.copy()
    for var in ds.variables.values():
        var.encoding = {k: v for k, v in var.encoding.items() if k not in _SOURCE_LAYOUT}
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        ds.to_zarr(tmp, mode="w", **kwargs)
        if path.exists():
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def match_fill_values(ds: xr.Dataset) -> xr.Dataset:
    """Make each variable's ``_FillValue`` encoding equal its ``missing_value`` when only the
    latter is set (real files do this: the Alboran ``time`` axis), so xarray can write it back."""
    for var in ds.variables.values():
        if "missing_value" in var.encoding and "_FillValue" not in var.encoding:
            var.encoding["_FillValue"] = var.encoding["missing_value"]
    return ds


def open_dataset(path, var: str | None = None, lazy: bool = False) -> xr.Dataset:
    """Open a NetCDF or zarr file read-only and load it (``lazy``: as dask arrays in the file's own
    chunks, read when computed); check ``var`` is in it."""
    path = Path(path).expanduser()
    if not path.exists():
        raise GeonbError(f"{path}: no such file. Give the path of a NetCDF (.nc) or zarr file.")
    try:
        if path.is_dir() or path.suffix == ".zarr":
            ds = xr.open_zarr(path)
        else:
            if lazy:
                ds = xr.open_dataset(path, mode="r", chunks={})
            else:
                with xr.open_dataset(path, mode="r") as opened:
                    ds = opened.load()
    except (OSError, ValueError, TypeError) as exc:
        raise GeonbError(
            f"{path} is not a readable NetCDF or zarr file ({type(exc).__name__}: {exc}). "
            "Give a NetCDF (.nc) or zarr path, or an embedded dataset name."
        ) from exc
    if var is not None and var not in ds.data_vars:
        raise GeonbError(
            f"variable {var!r} is not in {path}; it has: {', '.join(map(str, ds.data_vars))}. "
            "Pass one of those as the variable name."
        )
    return ds


def save_checkpoint(path, state: dict) -> Path:
    """Save a checkpoint atomically; ``state`` holds tensors, numbers, strings, lists, dicts."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


def load_checkpoint(path) -> dict:
    """Load a checkpoint with ``weights_only=True`` (no arbitrary code from model files)."""
    path = Path(path)
    if not path.exists():
        raise GeonbError(f"{path}: no such model/checkpoint file. Train one first (03_train or `geonb train`).")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, not a torch file, or objects weights_only refuses: never run them
        raise GeonbError(f"{path} is not a readable geonb model/checkpoint file ({type(exc).__name__}); "
                         "give a .pt written by geonb, or train again.") from None
