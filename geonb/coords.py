"""A grid's coordinates, found and checked on the way in: which dimensions are time, lat and lon.

Dimensions are found by name, standard name or units (``grid_dims``, ``time_dim``, ``is_longitude``);
what a network would silently get wrong is refused or put right with a warning: 2-D (curvilinear)
coordinates (``refuse_curvilinear``), unsorted, repeated or missing coordinate values (``in_order``;
longitudes across 0° or 180° kept as one run), rows or columns left out of a grid (``refuse_gaps``).
"""
from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

from .errors import GeonbError

COORD_NAMES = {"lat": ("lat", "latitude", "y", "nav_lat"), "lon": ("lon", "longitude", "x", "nav_lon")}
_GEO_NAMES = ("lat", "latitude", "nav_lat", "lon", "longitude", "nav_lon")
_TIME_NAMES = ("time", "t", "date", "day", "valid_time")


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
    for std, names in COORD_NAMES.items():
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

