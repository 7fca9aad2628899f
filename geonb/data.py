"""Open gridded fields as ``xarray.DataArray(time, lat, lon)`` with NaN for land/missing.

Embedded datasets need nothing beyond ``pip install``: ``hadisst`` (HadISST monthly
SST, cartopy package data) and ``topobathy`` (matplotlib sample elevation grid).
``alboran`` is the real cloudy AVHRR cube shipped in the package (``geonb.datasets``). Any NetCDF or
zarr path works too, given the variable name.

``load_grid`` opens one 2-D grid (downscaling) with its coordinates as they are, projected
(x, y in metres: ``antarctica``, the shipped 5 km ice-thickness grid) or geographic.

Every source is checked on the way in: its coordinates by ``geonb.coords``, its values by
``geonb.outliers``.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from .coords import COORD_NAMES, grid_dims, in_order, is_longitude, refuse_curvilinear, refuse_gaps, time_dim
from .errors import GeonbError
from .io import open_dataset
from .outliers import check_values
from . import datasets
from .paths import cartopy_data


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
        found = [d for d in ds.dims if str(d).lower() in COORD_NAMES["lat" if axis == "y" else "lon"] + _PROJECTED[axis]]
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
