"""Filling the clouds of a real cube, with the error standard deviation: ``geonb fill``.

``fill`` checks the variable and its mask, then fills its gaps with DINEOF or with a cloud model
(``geonb.cloudmodel``: trained here on the cube itself unless a model file is given) and puts the
result back on the variable's own dims, coordinates and attributes; ``fill_file`` does the same for a
file, and ``add_cli`` adds the command.

From Python: ``geonb.fill(dataarray, arch="dincae")`` → Dataset with the variable filled
(observed pixels unchanged, land NaN) and ``<var>_error``. From the shell:
``geonb fill IN.nc --var SST [--mask-var mask] [--arch dincae|dineof|unet] --out OUT.nc``.
The input file is opened read-only and the output written atomically (a temp file
renamed at the end), so IN.nc is never touched, even with ``--out`` pointing at it.
"""
from __future__ import annotations

import contextlib
import hashlib
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from . import commands
from .checkpoints import config_key
from .cloudmodel import CLOUD_PARAMS, DEFAULTS, QUICK, fill_cube, train_on_cube
from .coords import grid_dims, in_order, is_longitude, refuse_curvilinear
from .cv import cloud_cv_mask
from .data import standardise
from .dineof import dineof
from .errors import GeonbError
from .io import NETCDF, add_history, match_fill_values, netcdf_size, open_dataset, write_output
from .modelfile import TrainedModel
from .outputs import check_outputs, check_space, locked, remove_stale, temp_prefix

ARCHS = ("dincae", "dineof", "unet")
CLASSICAL = ("dineof",)  # no network: nothing to train or save
DEFAULT_EPOCHS = 40  # ≈ 3 minutes on 2 CPU cores for the 10-day 201×301 Alboran cube


def _sea_mask(std: xr.DataArray, mask) -> np.ndarray:
    """Sea pixels: ``mask`` > 0 when given (same lat/lon shape), else pixels ever observed."""
    obs = np.isfinite(std.values)
    if mask is None:
        return obs.any(0)
    if isinstance(mask, xr.DataArray) and mask.ndim >= 2 and np.isfinite(mask.values).any():  # all NaN: no sea, below
        mask = standardise(mask.rename(mask.name or "mask"))
    values = np.asarray(getattr(mask, "values", mask))
    if values.ndim == 3 and values.shape[0] == 1:
        values = values[0]
    if values.shape != std.shape[1:]:
        raise GeonbError(f"the mask has shape {values.shape} but the variable's (lat, lon) grid is {std.shape[1:]}; "
                         "give a land/sea mask on the same grid (1 = sea, 0 = land).")
    sea = np.nan_to_num(values.astype(float)) > 0
    if not sea.any():  # else "no missing sea values" and exit 0 with nothing filled
        found = ", ".join(f"{v:g}" for v in np.unique(values)[:5])
        raise GeonbError(f"the mask marks no cell as sea (its values: {found}); it must be 1 (or > 0) on sea, 0 on "
                         "land: check --mask-var / mask, or drop it to fill every cell ever observed.")
    return sea


def _refuse_unused(what: str, **options):
    given = [f"{name} (--{name.replace('_', '-')})" for name, value in options.items() if value is not None]
    if given:
        raise GeonbError(f"{', '.join(given)} {'does' if len(given) == 1 else 'do'} not apply to {what}; drop it.")


def fill(da: xr.DataArray, *, arch: str = "dincae", mask=None, epochs: int | None = None, quick: bool = False,
         model=None, save_model=None, seed: int = 0, window: int = 3, work_dir=None,
         progress: bool = True, allow_outliers: bool = False, overwrite: bool = False) -> xr.Dataset:
    """Fill the missing sea values of ``da`` (dims time/lat/lon, in any order and naming).

    ``arch``: dincae (trained here, self-supervised, unless ``model`` = a saved model
    path or a shipped name, `geonb models`), dineof, or unet (the seed U-Net trained the same masked way, no σ).
    Returns a Dataset with ``da.name`` filled and ``<name>_error`` (σ of the error of
    each filled value; 0 where the value is an observation; NaN on land), with the
    coordinates sorted ascending where they were not in order. Values far outside the
    field's robust range are refused unless ``allow_outliers``; an existing ``save_model``
    is replaced only with ``overwrite``.
    """
    if not isinstance(da, xr.DataArray):
        raise GeonbError(f"fill() takes an xarray.DataArray, not {type(da).__name__}; e.g. ds['SST'].")
    if arch not in ARCHS:
        raise GeonbError(f"unknown fill arch {arch!r}; choose one of {', '.join(ARCHS)}.")
    if arch in CLASSICAL:
        _refuse_unused("dineof (no network)", model=model, save_model=save_model, work_dir=work_dir, epochs=epochs)
    if model is not None:
        _refuse_unused("a saved model (no training)", epochs=epochs, work_dir=work_dir)
    check_outputs({"save_model": save_model, "work_dir": work_dir},  # the file da was read from is an input too
                  [da.encoding.get("source"), None if isinstance(model, TrainedModel) else model], overwrite=overwrite,
                  folders=("work_dir",))
    name = str(da.name or "field")
    dims = grid_dims(da)
    geographic = is_longitude(da, dims["lon"])
    da = in_order(da.rename(name), dims.values(), f"variable {name!r}", dims["lon"] if geographic else None)
    std = standardise(da, allow_outliers)
    sea = _sea_mask(std, mask)
    values = np.where(sea, std.values, np.nan).astype("float32")
    obs = np.isfinite(values)
    gaps = sea & ~obs
    filled, sigma = values.copy(), np.zeros_like(values)
    info = {"arch": arch}
    classical = arch in CLASSICAL
    if not gaps.any():
        warnings.warn(f"{name} has no missing sea values: nothing to fill, copied through unchanged.", stacklevel=2)
        info["note"] = "no missing values; copied through"
    else:
        cloudy_days = [int(t) for t in np.flatnonzero(~obs.any((1, 2)))]
        if len(cloudy_days) == len(values):
            raise GeonbError(f"{name} has no observed value on any day: nothing to learn from. Check the variable and mask.")
        if cloudy_days:
            warnings.warn(f"{name}: day(s) {cloudy_days} are all cloud; "
                          + ("left missing by dineof." if classical else "filled from neighbouring days only."),
                          stacklevel=2)
        times = std["time"].values
        lat, lon = std["lat"].values, std["lon"].values
        lon = np.unwrap(lon, period=360) if geographic else lon  # one run across 0° or 180°, as the cells lie
        if classical:
            result = dineof(values, _numeric_time(times), sea=sea, seed=seed, progress=progress)
            filled = result.filled
            # one σ for every filled value: DINEOF's cross-validation RMS error
            sigma = np.where(gaps & np.isfinite(filled), result.cv_rms, 0.0)
            info.update(n_modes=result.n_modes, cv_rms=result.cv_rms)
        else:
            units = str(da.attrs.get("units", ""))
            cloud_model = _cloud_model(values, lat, lon, times, arch, model, epochs, quick, seed, window, work_dir, units)
            cloud_model.check_input("field", values, units, f"variable {name!r}")
            if geographic:  # the longitudes in the convention the model was trained in (0…360 or −180…180)
                lon = lon - 360 * np.round((lon.mean() - cloud_model.norms["lon"].mean) / 360)
            t0 = time.perf_counter()
            mean, sd = fill_cube(cloud_model, values, lat, lon, times)
            info["fill_seconds"] = time.perf_counter() - t0
            info["train_seconds"] = cloud_model.info.get("train_seconds", 0.0)
            held = cloud_model.info.get("held_out") if model is None else None  # trained here: its own skill
            if held:
                info.update(held_out_points=held["points"], held_out_rmse=held["rmse"],
                            held_out_rmse_biharmonic=held["rmse_biharmonic"])
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
    return _to_dataset(da, name, filled.astype("float32"), sigma.astype("float32"), info)


def _numeric_time(times) -> np.ndarray:
    times = np.asarray(times)
    if np.issubdtype(times.dtype, np.datetime64):
        return (times - times[0]) / np.timedelta64(1, "D")
    if times.dtype == object:
        return np.array([(t - times[0]).total_seconds() / 86400 for t in times])
    return times.astype(float)


def _cloud_model(values, lat, lon, times, arch, model, epochs, quick, seed, window, work_dir, units):
    if model is not None:
        loaded = model if isinstance(model, TrainedModel) else TrainedModel.load(model, task="clouds")
        if loaded.arch != arch:
            raise GeonbError(f"the model file holds a {loaded.arch!r} model but arch={arch!r}; pass --arch {loaded.arch}.")
        if len(values) < int(loaded.inputs["window"]):
            raise GeonbError(f"the cube has {len(values)} days, fewer than the model's window "
                             f"({loaded.inputs['window']}); give a longer cube.")
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
    remove_stale(tempfile.gettempdir(), "geonb-fill")  # left by killed fills
    with contextlib.ExitStack() as stack:
        if work_dir:  # a work dir resumes only the same cube with the same settings, one fill at a time
            key = config_key({"arch": arch, "seed": seed, **options, "data": hashlib.sha256(values.tobytes()).hexdigest()})
            ckpt = stack.enter_context(locked(work_dir, "--work-dir")) / key
        else:
            ckpt = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=temp_prefix("geonb-fill"))))
        return train_on_cube(values, lat, lon, times, arch=arch, val_points=val, ckpt_dir=ckpt, seed=seed, units=units,
                             **options)


def _to_dataset(da, name, filled, sigma, info) -> xr.Dataset:
    """Put the (time, lat, lon) results back on ``da``'s own dims, coords and attributes."""
    dims = grid_dims(da)
    lat_dim, lon_dim = dims["lat"], dims["lon"]
    order = [(lat_dim, lon_dim).index(d) + 1 if d in (lat_dim, lon_dim) else 0 for d in da.dims]
    if da.ndim == 2:  # no time axis in the input: standardise added one
        filled, sigma, order = filled[0], sigma[0], [o - 1 for o in order]
    dtype = da.dtype if np.issubdtype(da.dtype, np.floating) else np.float32
    given = np.asarray(da.values)
    # observed values exactly as read (not via the float32 working copy)
    out = da.copy(data=np.where(np.isfinite(given), given, filled.transpose(order)).astype(dtype))
    out.attrs["long_name"] = f"{da.attrs.get('long_name', name)}, gaps filled by geonb ({info['arch']})"
    out.attrs["ancillary_variables"] = f"{name}_error"  # CF: the σ belongs to this variable
    out.attrs["geonb_fill"] = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in info.items()
                                        if not k.startswith("held_out"))
    # the skill on held-out pixels, as numbers a reader of the file can use
    out.attrs.update({f"geonb_{k}": v for k, v in info.items() if k.startswith("held_out")})
    out.encoding = {k: v for k, v in da.encoding.items() if k not in ("source", "original_shape", "chunksizes")}
    err = da.copy(data=sigma.transpose(order)).rename(f"{name}_error")
    err.attrs = {"long_name": f"standard deviation of the error of {name}",
                 "units": da.attrs.get("units", "1"),
                 "comment": "0 where the value is an observation; for dineof the cross-validation RMS error"}
    if da.attrs.get("standard_name"):
        err.attrs["standard_name"] = f"{da.attrs['standard_name']} standard_error"
    err.encoding = {"dtype": "float32", "_FillValue": np.float32(np.nan)}
    attrs = add_history({"Conventions": "CF-1.8"}, f"filled by geonb fill ({info['arch']})")
    return xr.Dataset({name: out, f"{name}_error": err}, attrs=attrs)


def fill_file(path, var: str, out, *, mask_var: str | None = None, **options) -> xr.Dataset:
    """Fill ``var`` of the NetCDF/zarr file ``path`` into ``out`` (every other variable kept). Every output
    path is checked first (``outputs.check_outputs``): none may be an input, an existing ``out``/``save_model``
    is replaced only with ``overwrite=True``."""
    model = options.get("model")
    out = check_outputs({"--out": out, "--save-model": options.get("save_model"), "--work-dir": options.get("work_dir")},
                        [path, None if isinstance(model, TrainedModel) else model],
                        overwrite=options.get("overwrite", False), folders=("--work-dir",))["--out"]  # ~ expanded
    if out.suffix.lower() not in (*NETCDF, ".zarr"):  # checked before any training
        raise GeonbError(f"--out {out}: a filled cube is written as NetCDF (.nc) or zarr (.zarr); give --out such a name.")
    ds = open_dataset(path, var)
    size = netcdf_size(ds)
    if out.suffix.lower() in NETCDF and size is not None:  # before training: the output is the input and a σ
        check_space(out, size + ds[var].size * 4)
    written = fill_dataset(ds, var, mask_var, **options)
    write_output(match_fill_values(written), out)
    return written


def fill_dataset(ds: xr.Dataset, var: str, mask_var: str | None = None, **options) -> xr.Dataset:
    """``ds`` with ``var`` filled and ``<var>_error`` added; every other variable and attribute kept."""
    refuse_curvilinear(ds, "the input")
    mask = None
    if mask_var:
        if mask_var == var:
            raise GeonbError(f"--var and --mask-var both name {var!r}: the mask would be filled as if it were the field; "
                             "give the field's variable with --var.")
        if mask_var not in ds.variables:
            raise GeonbError(f"mask variable {mask_var!r} is not in the input; it has: {', '.join(map(str, ds.data_vars))}.")
        mask = ds[mask_var]
    result = fill(ds[var], mask=mask, **options)
    written = ds.copy()
    written[var] = result[var]
    written[f"{var}_error"] = result[f"{var}_error"]
    written.attrs = {**ds.attrs, "history": (ds.attrs.get("history", "") + f"\n{result.attrs['history']}").strip()}
    return written


def add_cli(subparsers) -> None:
    """Add ``geonb fill`` to the command line."""
    from .params import cli_type

    p = commands.add(subparsers, "fill")
    p.add_argument("input", help="NetCDF/zarr file with a (time, lat, lon) variable holding gaps (NaN/_FillValue)")
    p.add_argument("--var", required=True, help="the variable to fill, e.g. SST")
    p.add_argument("--mask-var", help="land/sea mask variable on the same grid (1 = sea)")
    p.add_argument("--arch", default="dincae", choices=ARCHS)
    p.add_argument("--epochs", type=cli_type(CLOUD_PARAMS["epochs"]), help=f"training epochs (default {DEFAULT_EPOCHS})")
    p.add_argument("--quick", action="store_true", help="a tiny network and 2 epochs (smoke test)")
    p.add_argument("--model", help="a model saved earlier (--save-model) or a shipped clouds model's name (`geonb "
                   "models`): no training")
    p.add_argument("--save-model", help="save the trained model here, to fill other files fast")
    p.add_argument("--window", type=cli_type(CLOUD_PARAMS["window"]), default=DEFAULTS["window"], help="days per input (odd)")
    p.add_argument("--seed", type=cli_type(CLOUD_PARAMS["seed"]), default=0)
    p.add_argument("--work-dir", help="keep training checkpoints here: a killed fill resumes where it stopped "
                   "(one fill at a time per work dir)")
    p.add_argument("--out", required=True, help="output file, written atomically: NetCDF (.nc) or zarr (.zarr)")
    p.add_argument("--overwrite", action="store_true", help="replace --out/--save-model if they exist")
    p.add_argument("--allow-outliers", action="store_true", help="keep values far outside the field's robust range")
    p.set_defaults(func=_cmd_fill)


def _cmd_fill(args) -> int:
    t0 = time.perf_counter()
    ds = fill_file(args.input, args.var, args.out, mask_var=args.mask_var, arch=args.arch, epochs=args.epochs,
                   quick=args.quick, model=args.model, save_model=args.save_model, seed=args.seed,
                   window=args.window, work_dir=args.work_dir, overwrite=args.overwrite,
                   allow_outliers=args.allow_outliers)
    print(f"[geonb fill] {args.var} → {args.out} ({ds[args.var].attrs.get('geonb_fill', '')}; "
          f"{time.perf_counter() - t0:.1f} s)")
    attrs = ds[args.var].attrs
    if "geonb_held_out_rmse" in attrs:
        units = attrs.get("units", "")
        print(f"[geonb fill] held-out skill: RMSE {attrs['geonb_held_out_rmse']:.3g} {units} on "
              f"{attrs['geonb_held_out_points']} observed pixels hidden under real cloud shapes and never trained on; "
              f"biharmonic per day on the same pixels: {attrs['geonb_held_out_rmse_biharmonic']:.3g} {units}.")
    return 0
