"""File I/O that never loses user data: read-only inputs, atomic outputs, safe checkpoints."""
from __future__ import annotations

import contextlib
import glob
import os
import pickle
import re
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from .errors import GeonbError


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # another user's process (alive), or no pid at all
        return pid > 0
    return True


def temp_prefix(name: str) -> str:
    """The prefix of geonb's temporary files for ``name``: it holds the owner's pid, so that a later run
    can tell a killed run's leftovers (owner gone) from another run's write in progress."""
    return f"{name}.geonb-{os.getpid()}-"


def remove_stale(folder, name: str, suffix: str = "") -> list[Path]:
    """Remove the temporary files/folders ``<name>.geonb-<pid>-*<suffix>`` in ``folder`` whose owner
    process is gone (killed mid-write); returns what was removed."""
    removed = []
    for found in Path(folder).glob(f"{glob.escape(name)}.geonb-*-*{suffix}"):
        pid = found.name[len(name) + len(".geonb-"):].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(found, ignore_errors=True) if found.is_dir() else found.unlink(missing_ok=True)
            removed.append(found)
    return removed


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success (killed writes leave a
    temp file that the next write of ``path`` removes)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path.parent, f".{path.name}", ".tmp")
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(f".{path.name}"), suffix=".tmp", dir=path.parent)
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
    ds = ds.to_dataset(name=ds.name or "data") if isinstance(ds, xr.DataArray) else ds
    with atomic_path(path) as tmp:
        match_fill_values(ds).to_netcdf(tmp)
    return path


def _same(a: Path, b: Path) -> bool:
    """The same file or folder: equal after resolving links, or one inode (hard links, bind mounts)."""
    return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))


def _inside(a: Path, folder: Path) -> bool:
    """``a`` lies in the data store ``folder`` (a zarr input), where writing would change the input."""
    store = folder.suffix == ".zarr" or any((folder / name).exists() for name in ("zarr.json", ".zgroup", ".zarray"))
    return store and folder.is_dir() and a.resolve().is_relative_to(folder.resolve())


def refuse_input_as_output(out, inputs, flag: str = "--out") -> Path:
    """``out`` as a Path, or a GeonbError when it is one of the ``inputs`` (same path after resolving
    links, or the same file by inode) or inside an input folder (a zarr store): no input is ever replaced."""
    out = Path(out).expanduser()
    for given in filter(None, inputs):
        p = Path(given).expanduser()
        if p.exists() and (_same(out, p) or _inside(out, p)):
            raise GeonbError(f"{flag} {out} is an input of this command ({p}); geonb never overwrites its inputs. "
                             "Give another path.")
    return out


def check_outputs(outputs: dict, inputs=(), *, overwrite: bool = False, folders=()) -> dict[str, Path]:
    """Check every output path of a command before any work; returns them as Paths by flag.

    ``outputs``: flag → path (None: not asked for); ``folders``: the flags that name a folder geonb
    fills and reuses (a work dir). No output may be an input (``refuse_input_as_output``) or another
    output; an output file must not be a folder, and replaces an existing file only with ``overwrite``;
    the nearest existing parent must be a folder this user can write in.
    """
    checked: dict[str, Path] = {}
    for flag, given in outputs.items():
        if given is None or given == "":
            continue
        path = refuse_input_as_output(given, inputs, flag)
        for other, seen in checked.items():
            if _same(path, seen):
                raise GeonbError(f"{flag} {path} is also {other}; give each output its own path.")
        if flag in folders:
            if path.exists() and not path.is_dir():
                raise GeonbError(f"{flag} {path} is a file, not a folder; give a folder path.")
        elif path.is_dir() and path.suffix != ".zarr":
            raise GeonbError(f"{flag} {path} is a folder; give a file path.")
        elif (path.exists() or path.is_symlink()) and not overwrite:
            raise GeonbError(f"{flag} {path} exists; geonb does not replace it unless you pass --overwrite "
                             "(overwrite=True), or give another path.")
        parent = path.parent
        while not parent.exists() and not parent.is_symlink():
            parent = parent.parent
        if not parent.is_dir():
            raise GeonbError(f"{flag} {path}: {parent} is a file, not a folder; give a path in a folder.")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise GeonbError(f"{flag} {path}: no permission to write in {parent}; give a path in a folder you can "
                             "write to.")
        checked[flag] = path
    return checked


@contextlib.contextmanager
def locked(folder, what: str):
    """Hold an exclusive lock on ``folder`` (created) while the block runs; a second process asking for
    it gets a GeonbError at once. The lock dies with its process, so a killed run never leaves it held."""
    import fcntl

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "?"
            raise GeonbError(f"{what} {folder} is in use by another geonb process (pid {owner}); wait for it to "
                             "finish or give another folder.") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield folder


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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds = ds.copy()
    for var in ds.variables.values():
        var.encoding = {k: v for k, v in var.encoding.items() if k not in _SOURCE_LAYOUT}
    remove_stale(path.parent, f".{path.name}", ".tmp")
    tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(f".{path.name}"), suffix=".tmp", dir=path.parent))
    try:
        # every chunk written, all-NaN ones too: a store with a chunk file missing is refused as damaged
        ds.to_zarr(tmp, mode="w", write_empty_chunks=True, **kwargs)
        if path.exists():
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def match_fill_values(ds: xr.Dataset) -> xr.Dataset:
    """Make each variable's ``_FillValue`` and ``missing_value`` encodings agree, so xarray can write
    them back: only ``missing_value`` set (the Alboran ``time`` axis) → ``_FillValue`` too; both set
    and different (a subset written by xarray adds ``_FillValue`` NaN to such a time axis) → the
    ``_FillValue`` wins, as CF readers take it first."""
    for var in ds.variables.values():
        enc = var.encoding
        if "missing_value" in enc and "_FillValue" not in enc:
            enc["_FillValue"] = enc["missing_value"]
        elif "missing_value" in enc and enc["_FillValue"] is not None and \
                not np.array_equal(enc["missing_value"], enc["_FillValue"], equal_nan=True):
            enc["missing_value"] = enc["_FillValue"]
    return ds


def check_classic_netcdf(path: Path) -> None:
    """A classic (CDF-1/2) NetCDF file must be as long as its header says: the netCDF library reads the
    bytes of a truncated file as zeros (0 °C, lat/lon 0) without a word. scipy maps every variable onto
    the file (no copy) and fails where the file is too short."""
    from scipy.io import netcdf_file

    with open(path, "rb") as handle:
        if handle.read(4) not in (b"CDF\x01", b"CDF\x02"):
            return
    try:
        with warnings.catch_warnings():  # scipy warns that the mapped arrays outlive the file: they do not matter
            warnings.simplefilter("ignore", RuntimeWarning)
            netcdf_file(path, mmap=True).close()  # opening maps every variable
    except Exception:  # any failure to map it: the header and the bytes disagree
        raise GeonbError(f"{path} is a truncated or corrupt NetCDF file ({path.stat().st_size} bytes, not what its "
                         "header describes); copy it again from its source.") from None


# The first bytes of image files people give where a grid belongs (the netCDF library calls them corrupt).
IMAGE_MAGIC = {b"\x89PNG": "PNG", b"\xff\xd8\xff": "JPEG", b"II*\x00": "TIFF", b"MM\x00*": "TIFF", b"II+\x00": "TIFF",
               b"MM\x00+": "TIFF", b"GIF8": "GIF", b"BM": "BMP"}


def refuse_image(path: Path) -> None:
    """A GeonbError naming the image format when ``path`` is an image file, not a grid."""
    with open(path, "rb") as handle:
        head = handle.read(12)
    kind = "WebP" if head[:4] == b"RIFF" and head[8:12] == b"WEBP" else \
        next((name for magic, name in IMAGE_MAGIC.items() if head.startswith(magic)), None)
    if kind:
        raise GeonbError(f"{path} is a {kind} image, not a NetCDF or zarr grid; give a NetCDF (.nc) or zarr file (a "
                         "GeoTIFF converts with rioxarray.open_rasterio(path).to_dataset(name='band').to_netcdf(...)).")


def check_zarr_chunks(path: Path) -> None:
    """Every chunk of every array of the zarr store ``path`` is there: zarr reads a missing chunk file as the
    fill value (NaN), which would pass for cloud or land and be filled in, with no error."""
    import zarr

    group = zarr.open_group(str(path), mode="r")
    for name, array in group.arrays():
        missing = array.nchunks - array.nchunks_initialized
        if missing:
            raise GeonbError(f"{path}: {missing} of {array.nchunks} chunk files of {name!r} are missing (zarr would "
                             "read them as fill values, i.e. invent missing data); copy the store again from its "
                             "source (one written with empty chunks left out: rewrite it with "
                             "to_zarr(..., write_empty_chunks=True)).")


def open_dataset(path, var: str | None = None, lazy: bool = False) -> xr.Dataset:
    """Open a NetCDF or zarr file read-only and load it (``lazy``: as dask arrays in the file's own
    chunks, read when computed); check ``var`` is in it, and that no zarr chunk is missing."""
    path = Path(path).expanduser()
    if not path.exists():
        raise GeonbError(f"{path}: no such file. Give the path of a NetCDF (.nc) or zarr file.")
    try:
        if path.is_dir() or path.suffix == ".zarr":
            check_zarr_chunks(path)
            ds = xr.open_zarr(path)
            ds = ds if lazy else ds.load()  # loaded here: a damaged chunk fails now, not deep in a step
        else:
            refuse_image(path)
            check_classic_netcdf(path)
            if lazy:
                ds = xr.open_dataset(path, mode="r", chunks={})
            else:
                with xr.open_dataset(path, mode="r") as opened:
                    ds = opened.load()
    except GeonbError:
        raise
    except Exception as exc:  # HDF5/zarr/codec errors have no common base class
        raise GeonbError(
            f"{path} is not a readable NetCDF or zarr file, or it is truncated or corrupt ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}). Give a complete NetCDF (.nc) or zarr path, or an "
            "embedded dataset name."
        ) from None
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
    """Load a checkpoint with ``weights_only=True`` (no arbitrary code from model files); a file torch
    cannot read that way is a GeonbError saying why, never torch's advice to load it unsafely."""
    path = Path(path)
    if not path.exists():
        raise GeonbError(f"{path}: no such model/checkpoint file. Train one first (03_train or `geonb train`).")
    if path.is_dir() or path.stat().st_size == 0:
        raise GeonbError(f"{path} is not a geonb model file: {'a folder' if path.is_dir() else 'empty'}. "
                         "Give a .pt written by geonb, or train again.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL (\S+)", str(exc))
        reason = (f"it holds Python objects ({found[1]}), not only tensors, numbers and strings (refused unread: "
                  "they could run code)" if found else "torch cannot read it (a bare pickle or another format, refused "
                  "unread)")
    except Exception as exc:  # truncated, or not a torch file at all
        reason = f"torch cannot read it ({type(exc).__name__}; truncated, or another format)"
    raise GeonbError(f"{path} is not a geonb model file: {reason}. Give a .pt written by geonb, or train again.")
