"""File I/O that never loses user data: read-only inputs, atomic outputs, safe checkpoints."""
from __future__ import annotations

import contextlib
import errno
import glob
import os
import pickle
import re
import shutil
import stat
import sys
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


ZARR_METADATA = {"zarr.json", ".zgroup", ".zarray", ".zattrs", ".zmetadata"}
ZARR_CHUNK = re.compile(r"(c/)?\d+([./]\d+)*")  # chunk keys: zarr 2 "0.1" or "0/1", zarr 3 "c/0/1"


def _foreign(store: Path) -> str | None:
    """The first thing in folder ``store`` that a zarr writer does not write: anything but metadata, and chunk
    keys under the nearest folder holding metadata (None: a zarr store, or an empty folder)."""
    holder = {store: None}  # folder → the nearest folder at or above it that holds zarr metadata
    for root, dirs, names in os.walk(store):
        here = Path(root)
        meta = here if ZARR_METADATA & set(names) else holder[here]
        for name in dirs:
            holder[here / name] = meta
        for name in [*names, *dirs]:
            entry = here / name
            if entry.is_symlink() or not (entry.is_file() or entry.is_dir()):
                return str(entry)
            if entry.is_file() and name not in ZARR_METADATA and \
                    not (meta and ZARR_CHUNK.fullmatch(entry.relative_to(meta).as_posix())):
                return str(entry)
    return None


def not_replaceable(path: Path) -> str | None:
    """Why ``--overwrite`` may not replace the existing ``path`` (None: it may): only a regular file (or a link,
    which is replaced, not its target) or a folder holding nothing but a zarr store."""
    mode = path.lstat().st_mode
    if stat.S_ISREG(mode) or stat.S_ISLNK(mode):
        return None
    if stat.S_ISDIR(mode):
        other = _foreign(path)
        return None if other is None else f"is a folder that holds more than a zarr store ({other})"
    return f"is {'a FIFO' if stat.S_ISFIFO(mode) else 'a socket' if stat.S_ISSOCK(mode) else 'a device'}, not a file"


def _settle(path: Path) -> None:
    """Finish what a killed replacement of ``path`` left: a store renamed aside by a dead process is put back
    when nothing took its place (killed between the two renames of ``replace``), else deleted; then the dead
    processes' temp files are removed."""
    for aside in path.parent.glob(f"{glob.escape(f'.{path.name}')}.geonb-*-aside"):
        pid = aside.name[len(path.name) + len("..geonb-"):].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            if path.exists() or path.is_symlink():
                shutil.rmtree(aside, ignore_errors=True)
            else:
                os.rename(aside, path)
    remove_stale(path.parent, f".{path.name}", ".tmp")


def replace(new: Path, path: Path) -> None:
    """Put the complete ``new`` in place of ``path``. Over a file: one rename. A folder (a zarr store), or a
    folder over a file: the old is renamed aside, the new renamed in, then the old deleted; a kill at any point
    leaves the old or the new complete (between the two renames the old waits aside for ``_settle``)."""
    if not (new.is_dir() or path.is_dir()) or not (path.exists() or path.is_symlink()):
        os.replace(new, path)
        return
    aside = path.with_name(f"{temp_prefix(f'.{path.name}')}aside")
    os.rename(path, aside)
    os.rename(new, path)
    shutil.rmtree(aside) if aside.is_dir() and not aside.is_symlink() else aside.unlink()


def _size(nbytes: float) -> str:
    """Bytes as people read them: 512 bytes, 44.0 kB, 3.7 MB, 1.2 GB."""
    if nbytes < 1024:
        return f"{nbytes:.0f} bytes"
    for unit in ("kB", "MB", "GB"):
        nbytes /= 1024
        if nbytes < 1024 or unit == "GB":
            return f"{nbytes:.1f} {unit}"


def check_space(path: Path, size: int | None) -> None:
    """Refuse to start writing ``size`` bytes at ``path`` when its disk has less free."""
    free = shutil.disk_usage(path.parent).free
    if size is not None and free < size:
        raise GeonbError(f"{path}: not enough free space ({_size(free)} free on its disk, it needs about "
                         f"{_size(size)}); free some space or give a path on another disk.")


def no_room(exc: BaseException, folder: Path | None = None, written: int = 0) -> str | None:
    """Why a write failed for want of room, or None: this process's file-size limit (``ulimit -f``: EFBIG, or a
    library's own error once ``written`` bytes reach the limit) or a full disk (ENOSPC/EDQUOT, or the library's
    error while ``folder`` has no room left). The libraries say "HDF error" (netCDF) or "enforce fail …
    inline_container" (torch) for both."""
    import resource  # POSIX, as ``locked``'s fcntl

    errnos = {cause.errno for cause in (exc, exc.__cause__, exc.__context__) if isinstance(cause, OSError)}
    library = any(text in str(exc) for text in ("HDF error", "inline_container", "No space left", "too large"))
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if errno.EFBIG in errnos or (library and limit != resource.RLIM_INFINITY and written >= limit // 2):
        return f"a file would pass this process's file-size limit ({_size(limit)}, `ulimit -f`)"
    if errnos & {errno.ENOSPC, errno.EDQUOT} or (library and folder is not None and shutil.disk_usage(folder).free < 2**20):
        return f"the disk is full ({_size(shutil.disk_usage(folder).free)} free)" if folder is not None else "the disk is full"
    return None


def _bytes(path: Path) -> int:
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size if path.exists() else 0


@contextlib.contextmanager
def atomic_path(path, *, folder: bool = False, size: int | None = None):
    """Yield a temporary path (a file, or a ``folder``) beside ``path``, put in its place (``replace``) only when
    complete; a killed write leaves a temp file that the next write of ``path`` removes. ``size``: the bytes it
    will take, checked against the free space first; a full disk is one GeonbError naming the path and the
    space, with nothing left behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _settle(path)
    check_space(path, size)
    prefix = temp_prefix(f".{path.name}")
    if folder:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=path.parent))
    else:
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    try:
        yield tmp
        tmp.chmod((0o777 if folder else 0o666) & ~umask)  # mkstemp/mkdtemp make them private
        replace(tmp, path)
    except Exception as exc:
        written = _bytes(tmp)
        why = no_room(exc, path.parent, written)
        if why is None:
            raise
        needs = f"about {_size(size)}" if size else f"more than the {_size(written)} written when it stopped"
        raise GeonbError(f"{path}: {why}; this output needs {needs}. Nothing was written. Free some space, raise "
                         "the limit or give a path on another disk.") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True) if folder else tmp.unlink(missing_ok=True)


def write_text(path, text: str) -> Path:
    """Write a small text file (a table, a JSON record) atomically."""
    path = Path(path)
    with atomic_path(path, size=len(text.encode())) as tmp:
        tmp.write_text(text)
    return path


def netcdf_size(ds: xr.Dataset) -> int | None:
    """About the bytes of ``ds`` as a NetCDF file; None when its encodings compress it (unknown until written)."""
    packed = any(v.encoding.get("zlib") or v.encoding.get("compression") for v in ds.variables.values())
    return None if packed else ds.nbytes


def write_netcdf(ds, path) -> Path:
    """Write a Dataset/DataArray to NetCDF atomically (a killed write leaves no half file); the free space is
    checked first when the file is not compressed (its size is then known)."""
    path = Path(path)
    ds = ds.to_dataset(name=ds.name or "data") if isinstance(ds, xr.DataArray) else ds
    with atomic_path(path, size=netcdf_size(ds)) as tmp:
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


NAME_MAX = 255  # bytes in one file or folder name (Linux, macOS, Windows)


def check_outputs(outputs: dict, inputs=(), *, overwrite: bool = False, folders=(),
                  stores=("--out",)) -> dict[str, Path]:
    """Check every output path of a command before any work; returns them as Paths by flag.

    ``outputs``: flag → path (None: not asked for); ``folders``: the flags that name a folder geonb
    fills and reuses (a work dir); ``stores``: those that may name a zarr store (a model file never replaces
    one). No output may be an input (``refuse_input_as_output``) or another output; an output file must not
    be a folder, and replaces an existing one only with ``overwrite`` and only when ``not_replaceable``
    allows; the nearest existing parent must be a folder this user can write in.
    """
    checked: dict[str, Path] = {}
    for flag, given in outputs.items():
        if given is None or given == "":
            continue
        long = [part for part in Path(given).parts if len(os.fsencode(part)) > NAME_MAX]
        if long:
            raise GeonbError(f"{flag}: the name {long[0][:40]}… is {len(os.fsencode(long[0]))} bytes long, more than the "
                             f"{NAME_MAX} a file name may have; give a shorter name.")
        path = refuse_input_as_output(given, inputs, flag)
        for other, seen in checked.items():
            if _same(path, seen):
                raise GeonbError(f"{flag} {path} is also {other}; give each output its own path.")
        if flag in folders:
            if path.exists() and not path.is_dir():
                raise GeonbError(f"{flag} {path} is a file, not a folder; give a folder path.")
        elif path.is_dir() and not (flag in stores and path.suffix == ".zarr"):
            raise GeonbError(f"{flag} {path} is a folder; give a file path.")
        else:
            if path.parent.is_dir():
                _settle(path)  # a store a killed replacement left aside is back before we look
            if path.exists() or path.is_symlink():
                _check_replace(flag, path, inputs, overwrite)
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


def _check_replace(flag: str, path: Path, inputs, overwrite: bool) -> None:
    """``--overwrite`` replaces only what geonb writes (``not_replaceable``), never a folder holding an input."""
    if not overwrite:
        raise GeonbError(f"{flag} {path} exists; geonb does not replace it unless you pass --overwrite "
                         "(overwrite=True), or give another path.")
    if path.is_dir() and not path.is_symlink():
        for given in filter(None, inputs):
            p = Path(given).expanduser()
            if p.exists() and p.resolve().is_relative_to(path.resolve()):
                raise GeonbError(f"{flag} {path} holds an input of this command ({p}); geonb never overwrites its "
                                 "inputs. Give another path.")
    why = not_replaceable(path)
    if why:
        raise GeonbError(f"{flag} {path} {why}; --overwrite replaces only a regular file or a folder holding "
                         "nothing but a zarr store. Give another path, or move it away yourself.")


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
        handle.write(" ".join([f"{os.getpid()}:", Path(sys.argv[0]).name, *sys.argv[1:]])[:200])
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

        from .aerial import palette

        image = ds[ds.attrs["image_variable"]]
        with atomic_path(path) as tmp:
            picture = Image.fromarray(image.values)
            if "flag_colors" in image.attrs:  # class ids as a palette image: opens in the class colours
                picture.putpalette(palette(image.attrs["flag_colors"]))
            picture.save(tmp, format=IMAGE_FORMATS[suffix], tiffinfo=ds.encoding.get("tiff_tags", {}),
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
    Its attributes become tags; nodata is ``no_label`` for class maps, NaN for floats. A class map with
    ``flag_colors`` is a tiled GeoTIFF with a colour table instead (GDAL writes no colour table into a COG)."""
    path = Path(path)
    nodata = da.attrs.get("no_label", np.nan if da.dtype.kind == "f" else None)
    if nodata is not None:
        da = da.rio.write_nodata(nodata, encoded=False)
    classes = "flag_colors" in da.attrs
    with atomic_path(path) as tmp:
        da.rio.to_raster(tmp, driver="GTiff" if classes else "COG", compress="DEFLATE", **({"tiled": True} if classes else {}))
        if classes:
            import rasterio

            from .aerial import palette

            flat = palette(da.attrs["flag_colors"])
            with rasterio.open(tmp, "r+") as raster:
                raster.write_colormap(1, {k: (*flat[3 * k:3 * k + 3], 255) for k in range(256)})
    return path


# The layout of the file a variable was read from (netCDF4 compression and chunks, zarr chunks), which zarr
# refuses or which would clash with the new chunks; the rest (dtype, fill value, scale/offset, time units) is kept.
_SOURCE_LAYOUT = ("chunks", "preferred_chunks", "chunksizes", "contiguous", "zlib", "complevel", "shuffle",
                  "fletcher32", "szip_coding", "szip_pixels_per_block", "blosc_shuffle", "compression", "endian",
                  "quantize_mode", "significant_digits", "least_significant_digit", "source", "original_shape")


def write_zarr(ds, path, **kwargs) -> Path:
    """Write a Dataset (lazy dask variables chunk by chunk) to a zarr store in a temporary folder beside
    ``path``, swapped in when complete (``atomic_path``: a killed write leaves the old or the new store)."""
    path = Path(path)
    ds = ds.copy()
    for var in ds.variables.values():
        var.encoding = {k: v for k, v in var.encoding.items() if k not in _SOURCE_LAYOUT}
    with atomic_path(path, folder=True) as tmp:
        # every chunk written, all-NaN ones too: a store with a chunk file missing is refused as damaged
        ds.to_zarr(tmp, mode="w", write_empty_chunks=True, **kwargs)
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


GEOTIFF = (".tif", ".tiff")


def _open_geotiff(path: Path, var: str | None, lazy: bool) -> xr.Dataset:
    """A one-band GeoTIFF as a Dataset: one variable named ``var`` (else ``band_data``, as xarray's rasterio
    engine names it), nodata and scale/offset applied (float with NaN), the CRS as the
    CF grid mapping ``spatial_ref`` that ``data._file_crs`` reads: the same shape as a NetCDF grid."""
    import rioxarray

    da = rioxarray.open_rasterio(path, masked=True, chunks={} if lazy else None)
    if da.sizes.get("band", 1) != 1:  # a photo, or a stack: a grid holds one value per cell
        raise GeonbError(f"{path} is a TIFF image with {da.sizes['band']} bands, not a grid; give a NetCDF (.nc), zarr "
                         "or one-band GeoTIFF (.tif) file.")
    da = da.squeeze("band", drop=True)
    ds = (da if lazy else da.load()).to_dataset(name=var or "band_data")
    ds[var or "band_data"].attrs["grid_mapping"] = "spatial_ref"
    return ds


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
        raise GeonbError(f"{path} is a {kind} image, not a NetCDF or zarr grid; give a NetCDF (.nc), zarr or "
                         "GeoTIFF (.tif, with its CRS) file.")


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
    """Open a NetCDF, zarr or GeoTIFF file read-only and load it (``lazy``: as dask arrays in the file's
    own chunks, read when computed); check ``var`` is in it (a GeoTIFF's one variable takes its name), and
    that no zarr chunk is missing."""
    path = Path(path).expanduser()
    if not path.exists():
        raise GeonbError(f"{path}: no such file. Give the path of a NetCDF (.nc), zarr or GeoTIFF (.tif) file.")
    try:
        if path.suffix.lower() in GEOTIFF:
            ds = _open_geotiff(path, var, lazy)
        elif path.is_dir() or path.suffix == ".zarr":
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
            f"{path} is not a readable NetCDF, zarr or GeoTIFF file, or it is truncated or corrupt ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}). Give a complete NetCDF (.nc), zarr or GeoTIFF path, or an "
            "embedded dataset name."
        ) from None
    if var is not None and var not in ds.data_vars:
        raise GeonbError(
            (f"{var!r} in {path} is a coordinate, not a data variable; " if var in ds.coords else
             f"variable {var!r} is not in {path}; ") + f"it has: {', '.join(map(str, ds.data_vars))}. "
            "Pass one of those as the variable name."
        )
    return ds


def _tensor_bytes(state) -> int:
    """The bytes of the tensors in ``state``: about the size of its torch.save file."""
    if isinstance(state, torch.Tensor):
        return state.untyped_storage().nbytes()
    values = state.values() if isinstance(state, dict) else state if isinstance(state, (list, tuple)) else ()
    return sum(map(_tensor_bytes, values))


def save_checkpoint(path, state: dict) -> Path:
    """Save a checkpoint atomically; ``state`` holds tensors, numbers, strings, lists, dicts."""
    path = Path(path)
    with atomic_path(path, size=_tensor_bytes(state)) as tmp:
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
