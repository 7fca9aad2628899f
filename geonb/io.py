"""Data files in and out: NetCDF, zarr, GeoTIFF and images, read-only inputs and atomic outputs.

``open_dataset`` reads a grid read-only and refuses what would be read wrong without a word (a
truncated NetCDF, a zarr store with chunks missing, an image where a grid belongs); the writers
(``write_output`` picks one by the file name) write through ``outputs.atomic_path``, so a killed write
never leaves a half file. Output paths are checked, and written safely, by ``geonb.outputs``;
checkpoints are saved by ``geonb.checkpoints``.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from .errors import GeonbError
from .outputs import atomic_path


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

        from .classtable import palette

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
    ``flag_colors`` is a tiled GeoTIFF with a colour table instead (GDAL writes no colour table into a COG).
    A dask-backed array is streamed: chunk by chunk into an uncompressed tiled GeoTIFF beside it (GDAL cannot
    update a COG, and rioxarray computes a whole non-dask write), then copied block by block into the COG."""
    import rasterio.shutil

    path = Path(path)
    nodata = da.attrs.get("no_label", np.nan if da.dtype.kind == "f" else None)
    if nodata is not None:
        da = da.rio.write_nodata(nodata, encoded=False)
    classes = "flag_colors" in da.attrs
    layout = {"driver": "GTiff" if classes else "COG", "compress": "DEFLATE", **({"tiled": True} if classes else {})}
    with atomic_path(path) as tmp:
        if da.chunks is None:
            da.rio.to_raster(tmp, **layout)
        else:
            import threading

            raw = tmp.with_name(tmp.name + ".raw.tif")
            try:
                da.rio.to_raster(raw, driver="GTiff", tiled=True, lock=threading.Lock())
                rasterio.shutil.copy(raw, tmp, **layout)
            finally:
                raw.unlink(missing_ok=True)
        if classes:
            from .classtable import palette

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
