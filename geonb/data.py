"""Open gridded fields as ``xarray.DataArray(time, lat, lon)`` with NaN for land/missing.

Embedded datasets need nothing beyond ``pip install``: ``hadisst`` (HadISST monthly
SST, cartopy package data) and ``topobathy`` (matplotlib sample elevation grid).
``alboran`` is the real cloudy AVHRR cube shipped in the package (``geonb.datasets``). Any NetCDF or
zarr path works too, given the variable name.

``load_grid`` opens one 2-D grid (downscaling) with its coordinates as they are, projected
(x, y in metres: ``antarctica``, the shipped 5 km ice-thickness grid) or geographic.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from .errors import GeonbError
from .io import open_dataset
from . import datasets
from .paths import cartopy_data

_COORD_NAMES = {"lat": ("lat", "latitude", "y", "nav_lat"), "lon": ("lon", "longitude", "x", "nav_lon")}
_GEO_NAMES = ("lat", "latitude", "nav_lat", "lon", "longitude", "nav_lon")
_TIME_NAMES = ("time", "t", "date", "day", "valid_time")
F32_MAX = float(np.finfo(np.float32).max)


def _hadisst() -> xr.DataArray:
    warnings.filterwarnings("ignore", message="Ambiguous reference date")  # its time_bnds units
    return open_dataset(cartopy_data("netcdf", "HadISST1_SST_update.nc"), "sst")["sst"]


def _topobathy() -> xr.DataArray:
    from matplotlib import cbook

    npz = cbook.get_sample_data("topobathy.npz")
    return xr.DataArray(
        npz["topo"].astype("float32")[None],
        dims=("time", "lat", "lon"),
        coords={"time": [0], "lat": npz["latitude"], "lon": npz["longitude"]},
        name="elevation",
        attrs={"units": "m", "long_name": "topography and bathymetry", "source": "matplotlib sample data topobathy.npz"},
    )


def _jacksboro() -> xr.DataArray:
    from matplotlib import cbook

    # SRTM 3" DEM of the Jacksboro fault (Tennessee); rows run north to south, and the
    # npz's "ymin" is really the northern edge.
    npz = cbook.get_sample_data("jacksboro_fault_dem.npz")
    ny, nx = npz["elevation"].shape
    dx, dy = float(npz["dx"]), float(npz["dy"])
    lat = float(npz["ymin"]) - dy * (np.arange(ny) + 0.5)
    lon = float(npz["xmin"]) + dx * (np.arange(nx) + 0.5)
    return xr.DataArray(
        npz["elevation"].astype("float32")[None],
        dims=("time", "lat", "lon"),
        coords={"time": [0], "lat": lat, "lon": lon},
        name="elevation",
        attrs={"units": "m", "long_name": "land elevation", "source": "matplotlib sample data jacksboro_fault_dem.npz"},
    )


def _alboran() -> xr.DataArray:
    ds = open_dataset(datasets.path("alboran"), "SST")
    return ds["SST"].where(ds["mask"] > 0)


EMBEDDED = {
    "hadisst": (_hadisst, "HadISST1 monthly SST, Aug 2012, 1° global (cartopy package data)"),
    "topobathy": (_topobathy, "topography/bathymetry, 91×120, matplotlib sample data"),
    "jacksboro": (_jacksboro, "SRTM land elevation, 344×403, 3\" (~90 m), matplotlib sample data"),
    "alboran": (_alboran, "AVHRR SST with real clouds, 10 days, 0.02°, Alboran Sea (shipped with geonb)"),
}


OUTLIER_SPAN = 10  # values beyond the 1st–99th percentile range widened by 10 times its span are refused
# No-data numbers that files use without declaring them as _FillValue: refused where they are the field's
# minimum or maximum (then they are not data), however many cells hold them.
SENTINELS = np.array([-99999, -9999, -999, 999, 9999, 99999, -32768, -32767, 32767, 65535, -1e20, 1e20, -1e30, 1e30,
                      -9.96921e36, 9.96921e36, -3.4028235e38, 3.4028235e38])


def outlier_rule(data: np.ndarray, low: float, high: float):
    """``(is_bad(values) → bool mask, why)`` from the finite values ``data`` (or a sample of them) and the
    field's exact minimum and maximum: a declared-nowhere no-data number (``SENTINELS``) at the field's
    minimum or maximum, or a spike beyond the 1st–99th percentile range widened ``OUTLIER_SPAN`` times
    (robust to 1 % of bad cells; legit tails and several clusters pass)."""
    ends = [v for v in (low, high) if np.isclose(v, SENTINELS, rtol=1e-6, atol=0).any()]
    if ends:
        return (lambda v: np.isin(v, ends)), f"equal to {ends[0]:g}, a no-data number at the field's end"
    q01, q50, q99 = np.quantile(data.astype("float64"), [0.01, 0.5, 0.99])
    span = (q99 - q01) or max(abs(q50), 1.0)
    lo, hi = q01 - OUTLIER_SPAN * span, q99 + OUTLIER_SPAN * span
    return (lambda v: np.isfinite(v) & ((v < lo) | (v > hi))), (
        f"far outside the field's robust range {lo:.4g} … {hi:.4g} (1st–99th percentile {q01:.4g} … {q99:.4g} "
        f"± {OUTLIER_SPAN} × their span)")


def outliers(values: np.ndarray) -> tuple[np.ndarray, str]:
    """Where the finite ``values`` are not data, and why (``outlier_rule`` on all of them)."""
    data = values[np.isfinite(values)]
    is_bad, why = outlier_rule(data, data.min(), data.max())
    return is_bad(values), why


def refuse_curvilinear(obj, what: str) -> None:
    """A grid whose latitude/longitude are 2-D (curvilinear: swath, ocean-model or rotated grids) is refused:
    treated as a regular (y, x) grid it would lose its geolocation."""
    for name, v in obj.variables.items() if isinstance(obj, xr.Dataset) else obj.coords.items():
        geo = str(name).lower() in _GEO_NAMES or v.attrs.get("standard_name") in ("latitude", "longitude")
        if geo and v.ndim >= 2:
            raise GeonbError(f"{what} has 2-D coordinates {name}{tuple(map(str, v.dims))}: a curvilinear grid, whose "
                             "cells geonb would treat as a regular grid and lose their positions; regrid it to a "
                             "regular lat/lon or projected x/y grid first (e.g. with xesmf).")


def time_dim(da) -> str | None:
    """The dimension that is time: named time/t/date/day, holding dates, or marked ``axis: T``."""
    for d in da.dims:
        coord = da.coords.get(d)
        dated = coord is not None and (np.issubdtype(coord.dtype, np.datetime64) or coord.attrs.get("axis") == "T"
                                       or coord.attrs.get("standard_name") == "time")
        if str(d).lower() in _TIME_NAMES or dated:
            return str(d)
    return None


def is_longitude(obj, dim: str) -> bool:
    """``dim`` is a longitude in degrees (by name, standard name or units), not a projected x in metres."""
    attrs = obj[dim].attrs if dim in obj.coords else {}
    units = str(attrs.get("units", "")).lower()
    return str(dim).lower() in _GEO_NAMES[3:] or attrs.get("standard_name") == "longitude" or \
        (units.startswith("degree") and units.endswith(("east", "_e")))


def grid_dims(da: xr.DataArray) -> dict[str, str]:
    """The variable's own names of its lat, lon (and time, if any) dimensions, by standard name; a curvilinear
    grid is refused."""
    refuse_curvilinear(da, f"variable {da.name!r}")
    dims = {}
    for std, names in _COORD_NAMES.items():
        found = [d for d in da.dims if str(d).lower() in names]
        if not found:
            raise GeonbError(
                f"variable {da.name!r} has dims {da.dims}; no {std} dimension "
                f"(looked for {', '.join(names)}). Give a gridded (lat, lon) variable."
            )
        dims[std] = found[0]
    time = time_dim(da)
    if time:
        dims["time"] = time
    return dims


def across_seam(lon) -> bool:
    """Longitudes that ascend in one run of less than a turn, crossing 0° (0…360) or 180° (−180…180)."""
    turned = np.unwrap(np.asarray(lon, "float64"), period=360)
    return bool((np.diff(turned) > 0).all() and turned[-1] - turned[0] < 360)


def _seam_roll(lon: np.ndarray) -> int:
    """How far to roll ascending longitudes that a region across the seam was stored in (0…10, 350…359.5) so
    they run on across it (350…359.5, 0…10): 0 when the widest gap is the one around the globe."""
    gaps = np.diff(np.r_[lon, lon[0] + 360.0])
    widest, step = int(np.argmax(gaps)), np.median(gaps[:-1])
    one_piece = gaps[widest] <= 1.5 * step or gaps[-1] > 1.5 * step  # a global grid; a region away from the seam
    return 0 if one_piece else -(widest + 1)


def in_order(obj, dims, what: str, lon: str | None = None):
    """``obj`` with each of ``dims`` monotonic: an unsorted coordinate (rows or days shuffled, which
    scrambles every neighbourhood a network sees) is sorted ascending, with a warning; NaN or repeated
    coordinate values are refused. The longitude ``lon`` may run across 0° or 180° (350…359.5, 0…10: kept
    so); stored in two pieces (0…10, 350…359.5) it is rolled to one, with a warning."""
    for dim in dims:
        if dim not in obj.coords or obj.sizes[dim] < 2:
            continue
        index = obj.indexes[dim]
        if index.dtype.kind not in "fiumM" and not isinstance(index, xr.CFTimeIndex):  # "2020-05-01" as text
            raise GeonbError(f"{what}: coordinate {dim!r} holds {index.dtype} values ({index[0]!r}, …), not numbers or "
                             "dates; decode it first (CF units, or xr.decode_cf / pd.to_datetime).")
        if index.hasnans:
            raise GeonbError(f"{what}: coordinate {dim!r} has missing (NaN/NaT) values; give a file with every "
                             f"{dim} set.")
        if dim == "lat" and index.dtype.kind in "fiu" and (abs(index) > 90).any():
            raise GeonbError(f"{what}: latitudes run {index.min():g}…{index.max():g}, beyond ±90°; give latitudes in "
                             "degrees north (or name a projected axis y, not lat).")
        if dim == lon and across_seam(index.values):
            continue
        if index.is_monotonic_increasing or index.is_monotonic_decreasing:
            if not index.is_unique:
                raise GeonbError(f"{what}: coordinate {dim!r} repeats values ({index[index.duplicated()][:3].tolist()}); "
                                 "each row/step must appear once: drop the duplicates.")
        elif not index.is_unique:
            raise GeonbError(f"{what}: coordinate {dim!r} is unsorted and repeats values; drop the duplicates.")
        else:
            warnings.warn(f"{what}: coordinate {dim!r} was not in order; sorted it ascending (the output follows this "
                          "order where geonb writes a new grid).", stacklevel=3)
            obj = obj.sortby(dim)
        shift = dim == lon and obj.indexes[dim].is_monotonic_increasing and _seam_roll(obj[dim].values.astype(float))
        if shift:
            warnings.warn(f"{what}: longitude {dim!r} is stored in two pieces of a region across the seam "
                          f"({float(obj[dim][0]):g}…, …{float(obj[dim][-1]):g}); rolled them into one run.",
                          stacklevel=3)
            obj = obj.roll({dim: shift}, roll_coords=True)
    return obj


def check_values(da: xr.DataArray, allow_outliers: bool = False) -> xr.DataArray:
    """Refuse infinite values, and unless ``allow_outliers`` values that are not data (``outliers``: an
    unflagged fill value such as 1e30 or -999 would otherwise set the normalisation and every output),
    naming the count and the first position. Values that are not numbers (strings, booleans) are refused."""
    if da.dtype.kind not in "fiu":
        raise GeonbError(f"variable {da.name!r} holds {da.dtype} values, not numbers; give the numeric variable "
                         "(--var / var), or convert it first.")
    if da.chunks is not None:
        return _check_lazy(da, allow_outliers)
    values = np.asarray(da.values)
    finite = np.isfinite(values)
    bad, why = ~finite & ~np.isnan(values), INFINITE
    if not bad.any():
        bad, why = beyond_float32(values), BEYOND
    if not bad.any() and not allow_outliers and finite.any():
        bad, why = outliers(values)
    if not bad.any():
        return da
    _refuse(da, int(bad.sum()), np.unravel_index(np.flatnonzero(bad)[0], values.shape), why)


INFINITE = "infinite"
BEYOND = f"beyond float32's range (±{F32_MAX:.4g}), in which geonb computes"


def beyond_float32(values):
    return np.isfinite(values) & (np.abs(values) > F32_MAX)


def _refuse(da: xr.DataArray, count: int, first: tuple, why: str):
    where = ", ".join(f"{d}={da[d].values[i]}" if d in da.coords else f"{d} index {i}" for d, i in zip(da.dims, first))
    fix = {INFINITE: "mask them as missing (NaN or the _FillValue)",
           BEYOND: "mask them as missing, or rescale the variable (other units) into that range"}.get(
        why, "mask them as missing (NaN or the _FillValue), or allow them: allow_outliers=True / --allow-outliers")
    raise GeonbError(f"variable {da.name!r} has {count} value(s) {why}, e.g. {float(da.data[first]):.6g} at {where}; "
                     f"{fix}.")


def _check_lazy(da: xr.DataArray, allow_outliers: bool) -> xr.DataArray:
    """``check_values`` on a dask-backed grid without loading it: exact minimum and maximum, percentiles
    from a regular sample of about 4 million cells, bad cells counted chunk by chunk."""
    import dask
    import dask.array as dsa

    x = da.data
    step = max(1, int(np.ceil((x.size / 4e6) ** (1 / x.ndim))))
    try:  # the first pass over every chunk: a damaged one fails here, before any work
        sample, low, high = dask.compute(x[(slice(None, None, step),) * x.ndim], dsa.nanmin(x), dsa.nanmax(x))
    except Exception as exc:  # zarr/HDF5/codec errors have no common base class
        raise GeonbError(f"variable {da.name!r} could not be read whole ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}): a damaged chunk or file; copy it again "
                         "from its source.") from None
    sample = sample[np.isfinite(sample)]
    # exact min and max are finite: no infinite cell, no pass to count them
    checks = [] if np.isfinite([low, high]).all() else [(dsa.isinf, INFINITE)]
    if max(abs(low), abs(high)) > F32_MAX:
        checks.append((beyond_float32, BEYOND))
    if not allow_outliers and sample.size:
        checks.append(outlier_rule(sample, low, high))
    for is_bad, why in checks:
        bad = x.map_blocks(is_bad, dtype=bool)
        count, first = dask.compute(bad.sum(), dsa.argmax(bad.ravel()))
        if count:
            _refuse(da, int(count), np.unravel_index(int(first), x.shape), why)
    return da


def standardise(da: xr.DataArray, allow_outliers: bool = False) -> xr.DataArray:
    """Rename coordinates to (time, lat, lon), add a time axis if absent, float32; coordinates in order and
    values checked (``in_order``, ``check_values``)."""
    dims = grid_dims(da)
    lon = "lon" if is_longitude(da, dims["lon"]) else None
    da = da.rename({orig: std for std, orig in dims.items()})
    if "time" not in da.dims:
        da = da.expand_dims(time=[0])
    extra = [d for d in da.dims if d not in ("time", "lat", "lon")]
    if extra:
        raise GeonbError(f"variable {da.name!r} has extra dims {extra} besides time, lat and lon; select one level "
                         f"of each first (da.isel({extra[0]}=0)).")
    da = in_order(da.transpose("time", "lat", "lon"), ("time", "lat", "lon"), f"variable {da.name!r}", lon)
    da = check_values(da, allow_outliers).astype("float32")
    if not np.isfinite(da.values).any():
        raise GeonbError(f"variable {da.name!r} is all NaN/missing: nothing to learn from. Check the file and variable.")
    return da


def _embedded_var(key: str, da: xr.DataArray, var: str) -> str:
    """An embedded dataset holds one variable: a ``var`` naming another is a mistake, not something to ignore."""
    if var and var != da.name:
        raise GeonbError(f"{key!r} is an embedded dataset with the one variable {da.name!r}, not {var!r}; "
                         f"drop var or give var={da.name!r}.")
    return str(da.name)


def load_field(source: str | Path | xr.DataArray, var: str = "", allow_outliers: bool = False) -> xr.DataArray:
    """An embedded dataset by name, a NetCDF/zarr path + variable, or a DataArray."""
    if isinstance(source, xr.DataArray):
        return standardise(source, allow_outliers)
    key = str(source)
    if key in EMBEDDED:
        da = EMBEDDED[key][0]()
        _embedded_var(key, da, var)
        return standardise(da, allow_outliers)
    path = Path(key)
    if not path.exists():
        raise GeonbError(
            f"{key!r} is neither an embedded dataset ({', '.join(EMBEDDED)}) nor an existing file. "
            "Give a dataset name or a NetCDF/zarr path."
        )
    ds = open_dataset(path, var or None)
    if not var:
        candidates = [v for v in ds.data_vars if ds[v].ndim >= 2]
        if len(candidates) != 1:
            raise GeonbError(f"{path} has variables {list(ds.data_vars)}; say which one with var=...")
        var = candidates[0]
    return standardise(ds[var], allow_outliers)


def _antarctica() -> xr.Dataset:
    ds = open_dataset(datasets.path("antarctica"))
    # beta spans 17 orders of magnitude: its logarithm is the layer a network can use
    ds["beta"] = np.log10(ds["beta"]).astype("float32").assign_attrs(
        units="log10(Pa s m-1)", long_name="log10 basal sliding coefficient (an inversion that used the ice geometry)")
    ds.attrs["crs"] = "EPSG:3031"
    return ds


GRIDS = {"antarctica": (_antarctica, "Antarctic ice thickness + log10 beta, 1120×1160 cells of 5 km, EPSG:3031 (shipped with geonb)")}
_PROJECTED = {"y": ("y", "northing", "projection_y_coordinate", "rlat"), "x": ("x", "easting", "projection_x_coordinate", "rlon")}


def load_grid(source: str | Path | xr.DataArray, var: str = "", lazy: bool = False,
              allow_outliers: bool = False, steps: bool = False) -> xr.Dataset:
    """A 2-D grid: the Dataset of every variable on it with dims renamed to (y, x).

    The target variable's name is ``attrs["target"]``; the original dimension names and the
    coordinate reference (``crs``: an EPSG code or WKT; ``EPSG:4326`` for lat/lon) are kept in
    attrs, so outputs can be written back with the input's own names. Embedded grids:
    ``antarctica`` and every single-time ``load_field`` dataset; or a DataArray (its CRS from a
    CF/rioxarray grid-mapping coordinate). A grid with more than one step along another dimension
    (time, depth) is refused, unless ``steps``: then one such dimension is kept as ``time`` (its name in
    ``attrs["t_name"]``) and the target is (time, y, x); coordinates are put in order and the target's
    values checked (``in_order``, ``check_values``). ``lazy``: a file's variables stay on disk as dask
    arrays (its own chunks) until computed.
    """
    key = f"the DataArray {source.name!r}" if isinstance(source, xr.DataArray) else str(source)
    if isinstance(source, xr.DataArray):
        var = str(source.name or "field")
        mapping = source.attrs.get("grid_mapping") or source.encoding.get("grid_mapping")
        if mapping and mapping not in source.coords:
            raise GeonbError(f"{key} names its grid mapping {mapping!r} but does not carry it, so its CRS would be lost; "
                             "open the file with xr.open_dataset(path, decode_coords='all').")
        ds = source.to_dataset(name=var)
    elif key in GRIDS:
        ds = GRIDS[key][0]()
        var = var or "thickness"
    elif key in EMBEDDED:
        da = EMBEDDED[key][0]()
        var = _embedded_var(key, da, var)
        ds = da.to_dataset(name=var)
    else:
        if not Path(key).exists():
            raise GeonbError(f"{key!r} is neither an embedded grid ({', '.join([*GRIDS, *EMBEDDED])}) nor an existing "
                             "file. Give a grid name or a NetCDF/zarr path.")
        ds = open_dataset(key, var or None, lazy=lazy)
    refuse_curvilinear(ds, key)
    names = {}
    for axis in ("y", "x"):
        found = [d for d in ds.dims if str(d).lower() in _COORD_NAMES["lat" if axis == "y" else "lon"] + _PROJECTED[axis]]
        if len(found) != 1:
            raise GeonbError(f"{key}: no single {axis} dimension among {tuple(ds.dims)}; downscaling needs a 2-D grid "
                             "with (y, x) or (lat, lon) coordinates.")
        names[axis] = str(found[0])
    if not var:
        candidates = [v for v in ds.data_vars if set(ds[v].dims) >= set(names.values())]
        if len(candidates) != 1:
            raise GeonbError(f"{key} has variables {list(ds.data_vars)}; say which one with --var / var.")
        var = candidates[0]
    if var not in ds:
        raise GeonbError(f"{key} has no variable {var!r}; it has {list(ds.data_vars)}.")
    lon = "x" if is_longitude(ds, names["x"]) else None
    ds = ds.rename({names["y"]: "y", names["x"]: "x"})
    many = {d: n for d, n in ds[var].sizes.items() if d not in ("y", "x") and n > 1}
    t_name = (time_dim(ds[var]) if time_dim(ds[var]) in many else next(iter(many))) if steps and many else None
    others = [d for d in many if d != t_name]
    if others:
        raise GeonbError(f"{key}:{var} has {', '.join(f'{n} steps along {d!r}' for d, n in many.items())}; this takes "
                         f"{'one time axis' if steps else 'one 2-D grid'}. Select one step along {others[0]!r} first, e.g. xarray "
                         f"ds.isel({others[0]}=0).to_netcdf(...), once per step you need.")
    ds = ds.isel({d: 0 for d in ds[var].dims if d not in ("y", "x") and d != t_name}, drop=True)
    ds = in_order(ds.rename({t_name: "time"}) if t_name else ds, ("y", "x"), f"{key}:{var}", lon)
    if lon and not (ds.indexes["x"].is_monotonic_increasing or ds.indexes["x"].is_monotonic_decreasing):
        # across the seam: cells get contiguous longitudes; outputs go back to the input's convention (lon_seam)
        ds = ds.assign_coords(x=("x", np.unwrap(ds["x"].values.astype("float64"), period=360), ds["x"].attrs)) \
            .assign_attrs(lon_seam=-180.0 if float(ds["x"].min()) < 0 else 0.0)
    for axis in ("y", "x"):
        refuse_gaps(ds[axis].values, f"{key}: {names[axis]}")
    check_values(ds[var], allow_outliers)
    geographic = names["y"].lower() in ("lat", "latitude", "nav_lat") or \
        str(ds["y"].attrs.get("units", "")).startswith("degree")
    crs = ds.attrs.get("crs") or _file_crs(ds) or ("EPSG:4326" if geographic else "")
    keep = [v for v in ds.data_vars if set(ds[v].dims) in ({"y", "x"}, {"time", "y", "x"})]
    out = ds[keep].transpose(*(("time",) if t_name else ()), "y", "x")
    out.attrs = {**ds.attrs, "target": var, "crs": crs, "y_name": names["y"], "x_name": names["x"],
                 **({"t_name": str(t_name)} if t_name else {})}
    return out


def refuse_gaps(coord: np.ndarray, what: str) -> None:
    """A step more than 1.5 times the one before or after it is a gap (rows or columns left out), whose two
    sides a network would take for neighbours; smoothly uneven steps are kept (``refine_coords``)."""
    steps = np.abs(np.diff(np.asarray(coord, "float64")))
    ratio = steps[1:] / steps[:-1]
    jumps = np.flatnonzero((ratio > 1.5) | (ratio < 1 / 1.5))
    if jumps.size:
        k = int(jumps[0])
        raise GeonbError(f"{what} jumps from steps of {steps[k]:.4g} to {steps[k + 1]:.4g} near "
                         f"{float(coord[k + 1]):g}: a gap in the grid, whose two sides a model would take for "
                         "neighbours; downscaling needs evenly or smoothly spaced cells: cut the grid at the gap or "
                         "interpolate it onto even steps.")


def _file_crs(ds: xr.Dataset) -> str:
    """The CRS a file declares through a CF grid-mapping variable (pyproj), or "" if none."""
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    names = {v.attrs.get("grid_mapping") or v.encoding.get("grid_mapping") for v in ds.data_vars.values()}
    for name in sorted(n for n in names | {"spatial_ref", "crs"} if n and n in ds.variables):
        try:
            return CRS.from_cf(ds[name].attrs).to_string()
        except CRSError:
            continue
    return ""


def synthetic_sst(n_time: int = 8, ny: int = 128, nx: int = 128, seed: int = 0, land: bool = True) -> xr.DataArray:
    """Synthetic SST with a k^-3 spectrum, a meridional gradient, a front, eddies and land.

    For scale tests and unit tests; never the only evidence that a model works.
    """
    rng = np.random.default_rng(seed)
    ky = np.fft.fftfreq(ny)[:, None]
    kx = np.fft.fftfreq(nx)[None, :]
    k = np.hypot(ky, kx)
    k[0, 0] = np.inf
    amplitude = k ** (-1.5)  # power ~ k^-3, as for mesoscale SST
    yy, xx = np.mgrid[0:ny, 0:nx] / max(ny, nx)
    fields = []
    phase = rng.uniform(0, 2 * np.pi, (ny, nx))
    for t in range(n_time):
        phase = phase + rng.normal(0, 0.3, (ny, nx))  # slowly evolving: days are correlated
        noise = np.real(np.fft.ifft2(amplitude * np.exp(1j * phase)))
        noise = noise / noise.std()
        front = 2.0 * np.tanh((yy - 0.5 - 0.05 * np.sin(6 * xx + 0.2 * t)) / 0.03)
        eddies = sum(
            rng.choice([-1, 1]) * 1.5 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 0.04**2))
            for cy, cx in rng.uniform(0.1, 0.9, (4, 2))
        )
        fields.append(20.0 - 6.0 * yy + front + eddies + 0.6 * noise)
    sst = np.stack(fields).astype("float32")
    if land:
        coast = 0.2 + 0.1 * np.sin(5 * yy[:, 0])[:, None]
        sst[:, xx < coast] = np.nan
    return xr.DataArray(
        sst, dims=("time", "lat", "lon"), name="sst",
        coords={"time": np.arange(n_time), "lat": np.linspace(30, 30 + 0.05 * (ny - 1), ny),
                "lon": np.linspace(-20, -20 + 0.05 * (nx - 1), nx)},
        attrs={"units": "degC", "long_name": "synthetic sea surface temperature"},
    )
