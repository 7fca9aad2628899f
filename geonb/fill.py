"""``geonb fill``: fill the clouds of a real cube and write the error standard deviation.

From Python: ``geonb.fill(dataarray, arch="dincae")`` → Dataset with the variable filled
(observed pixels unchanged, land NaN) and ``<var>_error``. From the shell:
``geonb fill IN.nc --var SST [--mask-var mask] [--arch dincae|dineof|unet] --out OUT.nc``.
The input file is opened read-only and the output written atomically (a temp file
renamed at the end), so IN.nc is never touched, even with ``--out`` pointing at it.
"""
from __future__ import annotations

import hashlib
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from .data import _COORD_NAMES, standardise
from .cv import cloud_cv_mask
from .dineof import dineof
from .errors import GeonbError
from .io import match_fill_values, open_dataset, write_netcdf
from .models.dincae import DEFAULTS, CloudModel, train_cloud_model
from .training import config_key

ARCHS = ("dincae", "dineof", "unet")
QUICK = {"epochs": 2, "samples_per_day": 1, "widths": [8, 12, 16, 24], "crop": 64, "n_average": 2}
DEFAULT_EPOCHS = 40  # ≈ 3 minutes on 2 CPU cores for the 10-day 201×301 Alboran cube


def _sea_mask(std: xr.DataArray, mask) -> np.ndarray:
    """Sea pixels: ``mask`` > 0 when given (same lat/lon shape), else pixels ever observed."""
    obs = np.isfinite(std.values)
    if mask is None:
        return obs.any(0)
    mask = standardise(mask.rename(mask.name or "mask")) if isinstance(mask, xr.DataArray) and mask.ndim >= 2 else mask
    values = np.asarray(getattr(mask, "values", mask))
    if values.ndim == 3 and values.shape[0] == 1:
        values = values[0]
    if values.shape != std.shape[1:]:
        raise GeonbError(f"the mask has shape {values.shape} but the variable's (lat, lon) grid is {std.shape[1:]}; "
                         "give a land/sea mask on the same grid (1 = sea, 0 = land).")
    return np.nan_to_num(values.astype(float)) > 0


def fill(da: xr.DataArray, *, arch: str = "dincae", mask=None, epochs: int | None = None, quick: bool = False,
         model=None, save_model=None, seed: int = 0, window: int = 3, work_dir=None,
         progress: bool = True) -> xr.Dataset:
    """Fill the missing sea values of ``da`` (dims time/lat/lon, in any order and naming).

    ``arch``: dincae (trained here, self-supervised, unless ``model`` = a saved model
    path), dineof, or unet (the seed U-Net trained the same masked way, no σ).
    Returns a Dataset with ``da.name`` filled and ``<name>_error`` (σ of the error of
    each filled value; 0 where the value is an observation; NaN on land).
    """
    if not isinstance(da, xr.DataArray):
        raise GeonbError(f"fill() takes an xarray.DataArray, not {type(da).__name__}; e.g. ds['SST'].")
    if arch not in ARCHS:
        raise GeonbError(f"unknown fill arch {arch!r}; choose one of {', '.join(ARCHS)}.")
    name = str(da.name or "field")
    std = standardise(da.rename(name))
    sea = _sea_mask(std, mask)
    values = np.where(sea, std.values, np.nan).astype("float32")
    obs = np.isfinite(values)
    gaps = sea & ~obs
    filled, sigma = values.copy(), np.zeros_like(values)
    info = {"arch": arch}
    if not gaps.any():
        warnings.warn(f"{name} has no missing sea values: nothing to fill, copied through unchanged.", stacklevel=2)
        info["note"] = "no missing values; copied through"
    else:
        cloudy_days = [int(t) for t in np.flatnonzero(~obs.any((1, 2)))]
        if len(cloudy_days) == len(values):
            raise GeonbError(f"{name} has no observed value on any day: nothing to learn from. Check the variable and mask.")
        if cloudy_days:
            warnings.warn(f"{name}: day(s) {cloudy_days} are all cloud; "
                          + ("left missing by dineof." if arch == "dineof" else "filled from neighbouring days only."),
                          stacklevel=2)
        times = std["time"].values
        lat, lon = std["lat"].values, std["lon"].values
        if arch == "dineof":
            result = dineof(values, _numeric_time(times), sea=sea, seed=seed, progress=progress)
            filled = result.filled
            # one σ for every filled value: DINEOF's cross-validation RMS error
            sigma = np.where(gaps & np.isfinite(filled), result.cv_rms, 0.0)
            info.update(n_modes=result.n_modes, cv_rms=result.cv_rms)
        else:
            cloud_model = _cloud_model(values, lat, lon, times, arch, model, epochs, quick, seed, window, work_dir)
            t0 = time.perf_counter()
            mean, sd = cloud_model.predict(values, lat, lon, times)
            info["fill_seconds"] = time.perf_counter() - t0
            info["train_seconds"] = cloud_model.train_seconds
            filled = np.where(gaps, mean, values)
            if sd is not None:
                sigma = np.where(gaps, sd, 0.0)
            else:
                sigma[:] = np.nan
            if save_model:
                cloud_model.save(save_model)
        sigma[~sea[None].repeat(len(values), 0)] = np.nan
    # every observed value is kept as given, even one the land mask calls land
    given = np.isfinite(std.values)
    filled = np.where(given, std.values, filled)
    sigma = np.where(given, 0.0, sigma)
    return _to_dataset(da.rename(name), name, filled.astype("float32"), sigma.astype("float32"), info)


def _numeric_time(times) -> np.ndarray:
    times = np.asarray(times)
    if np.issubdtype(times.dtype, np.datetime64):
        return (times - times[0]) / np.timedelta64(1, "D")
    if times.dtype == object:
        return np.array([(t - times[0]).total_seconds() / 86400 for t in times])
    return times.astype(float)


def _cloud_model(values, lat, lon, times, arch, model, epochs, quick, seed, window, work_dir):
    if model is not None:
        loaded = model if isinstance(model, CloudModel) else CloudModel.load(model)
        if loaded.arch != arch:
            raise GeonbError(f"the model file holds a {loaded.arch!r} model but arch={arch!r}; pass --arch {loaded.arch}.")
        if len(values) < int(loaded.params["window"]):
            raise GeonbError(f"the cube has {len(values)} days, fewer than the model's window "
                             f"({loaded.params['window']}); give a longer cube.")
        return loaded
    # averaged weights: filling with a saved model is one network pass per day
    options = {**(QUICK if quick else {"epochs": DEFAULT_EPOCHS}), "average": "weights"}
    if epochs is not None:
        options["epochs"] = int(epochs)
    options["window"] = window
    obs = np.isfinite(values)
    n_val = int(0.05 * obs.sum())
    # hold out a few cloud-shaped patches to stop on and to fit the σ scale; skipped on tiny cubes
    val = None
    if n_val >= 50:
        try:
            val = cloud_cv_mask(obs, n_val, seed=seed + 7919)
        except GeonbError as exc:  # e.g. identical clouds every day: train without a held-out set
            warnings.warn(f"no validation points ({exc}); training for all epochs, σ not rescaled.", stacklevel=3)
    with tempfile.TemporaryDirectory(prefix="geonb-fill-") as tmp:
        # a work dir resumes only the same cube with the same settings
        key = config_key({"arch": arch, "seed": seed, **options, "data": hashlib.sha256(values.tobytes()).hexdigest()})
        ckpt = Path(work_dir) / key if work_dir else Path(tmp)
        return train_cloud_model(values, lat, lon, times, arch=arch, val_points=val, ckpt_dir=ckpt,
                                 seed=seed, **options)


def _to_dataset(da, name, filled, sigma, info) -> xr.Dataset:
    """Put the (time, lat, lon) results back on ``da``'s own dims, coords and attributes."""
    lat_dim, lon_dim = (next(d for d in da.dims if str(d).lower() in names) for names in _COORD_NAMES.values())
    order = [(lat_dim, lon_dim).index(d) + 1 if d in (lat_dim, lon_dim) else 0 for d in da.dims]
    if da.ndim == 2:  # no time axis in the input: standardise added one
        filled, sigma, order = filled[0], sigma[0], [o - 1 for o in order]
    dtype = da.dtype if np.issubdtype(da.dtype, np.floating) else np.float32
    given = np.asarray(da.values)
    # observed values exactly as read (not via the float32 working copy)
    out = da.copy(data=np.where(np.isfinite(given), given, filled.transpose(order)).astype(dtype))
    out.attrs["geonb_fill"] = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in info.items())
    out.encoding = {k: v for k, v in da.encoding.items() if k not in ("source", "original_shape", "chunksizes")}
    err = da.copy(data=sigma.transpose(order)).rename(f"{name}_error")
    err.attrs = {"long_name": f"standard deviation of the error of {name}",
                 "units": da.attrs.get("units", "1"),
                 "comment": "0 where the value is an observation; for dineof the cross-validation RMS error"}
    if da.attrs.get("standard_name"):
        err.attrs["standard_name"] = f"{da.attrs['standard_name']} standard_error"
    err.encoding = {"dtype": "float32", "_FillValue": np.float32(np.nan)}
    return xr.Dataset({name: out, f"{name}_error": err}, attrs={"history": f"filled by geonb fill ({info['arch']})"})


def fill_file(path, var: str, out, *, mask_var: str | None = None, **options) -> xr.Dataset:
    """Fill ``var`` of the NetCDF/zarr file ``path`` into ``out`` (every other variable kept)."""
    path, out = Path(path), Path(out)
    if out.resolve() == path.resolve():
        raise GeonbError(f"--out {out} is the input file; geonb never overwrites its input. Give another path.")
    saved = options.get("save_model")
    if saved and Path(saved).resolve() in (path.resolve(), out.resolve()):
        raise GeonbError(f"--save-model {saved} is the input or the output file; give the model its own path (.pt).")
    ds = open_dataset(path, var)
    mask = None
    if mask_var:
        if mask_var not in ds.variables:
            raise GeonbError(f"mask variable {mask_var!r} is not in {path}; it has: {', '.join(map(str, ds.data_vars))}.")
        mask = ds[mask_var]
    result = fill(ds[var], mask=mask, **options)
    written = ds.copy()
    written[var] = result[var]
    written[f"{var}_error"] = result[f"{var}_error"]
    written.attrs = {**ds.attrs, "history": (ds.attrs.get("history", "") + f"\n{result.attrs['history']}").strip()}
    write_netcdf(match_fill_values(written), out)
    return written


def add_cli(subparsers) -> None:
    """Add ``geonb fill`` to the command line."""
    p = subparsers.add_parser("fill", help="fill clouds in a NetCDF cube (dincae, dineof or unet) with error σ")
    p.add_argument("input", help="NetCDF/zarr file with a (time, lat, lon) variable holding gaps (NaN/_FillValue)")
    p.add_argument("--var", required=True, help="the variable to fill, e.g. SST")
    p.add_argument("--mask-var", help="land/sea mask variable on the same grid (1 = sea)")
    p.add_argument("--arch", default="dincae", choices=ARCHS)
    p.add_argument("--epochs", type=int, help=f"training epochs (default {DEFAULT_EPOCHS})")
    p.add_argument("--quick", action="store_true", help="a tiny network and 2 epochs (smoke test)")
    p.add_argument("--model", help="a model saved earlier (--save-model): no training")
    p.add_argument("--save-model", help="save the trained model here, to fill other files fast")
    p.add_argument("--window", type=int, default=DEFAULTS["window"], help="days per input (odd)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work-dir", help="keep training checkpoints here: a killed fill resumes where it stopped")
    p.add_argument("--out", required=True, help="output NetCDF (written atomically)")
    p.set_defaults(func=_cmd_fill)


def _cmd_fill(args) -> int:
    t0 = time.perf_counter()
    ds = fill_file(args.input, args.var, args.out, mask_var=args.mask_var, arch=args.arch, epochs=args.epochs,
                   quick=args.quick, model=args.model, save_model=args.save_model, seed=args.seed,
                   window=args.window, work_dir=args.work_dir)
    print(f"[geonb fill] {args.var} → {args.out} ({ds[args.var].attrs.get('geonb_fill', '')}; "
          f"{time.perf_counter() - t0:.1f} s)")
    return 0
