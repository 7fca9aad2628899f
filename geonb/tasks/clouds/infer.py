"""Applying the cloud fillers: every method's prediction of every hole set (04), and `geonb predict` with a
cloud model (`geonb fill --model`)."""
from __future__ import annotations

import time

import numpy as np
import xarray as xr

from ... import baselines
from ...cloudmodel import fill_cube
from ...errors import GeonbError
from ...filling import fill_dataset
from ...io import open_dataset, write_netcdf
from ...modelfile import TrainedModel
from .data import _compare, _encode, _field, _points, methods, per_set


def predictions(run) -> xr.Dataset:
    """Filled fields (and σ) of every method, each hole set filled with only its points hidden; cached."""
    path = run.prediction_path("cv")
    if path.exists() and path.stat().st_mtime > run.model_path("dincae").stat().st_mtime:
        return xr.open_dataset(path).load()
    field, sea = _field(run)
    cv, _, sets = _points(run)
    values = field.values
    coords = (field.lat.values, field.lon.values, field.time.values)
    dims = ("time", "lat", "lon")
    code, flags = _encode(sets)
    out = {"truth": (dims, values, field.attrs),  # units for the tables and colour bars
           "input": (dims, np.where(cv, np.nan, values), field.attrs),  # every set hidden: for the maps
           "holes": (dims, code, flags)}
    model = TrainedModel.load(run.model_path("dincae"), task="clouds")
    t0 = time.perf_counter()
    out["dincae"], out["dincae_sigma"] = per_set(lambda inp: fill_cube(model, inp, *coords), values, sets)
    seconds = (time.perf_counter() - t0) / len(sets)
    out["dincae_last_epoch"], out["dincae_last_epoch_sigma"] = per_set(
        lambda inp: fill_cube(model, inp, *coords, last=1), values, sets)
    if run.model_path("unet").exists() and "unet" in _compare(run):
        unet = TrainedModel.load(run.model_path("unet"), task="clouds")
        out["unet"], = per_set(lambda inp: fill_cube(unet, inp, *coords)[:1], values, sets)
    if "dineof" in _compare(run):
        out["dineof"] = xr.open_dataset(run.path("models", "dineof", "filled.nc")).filled.values
    for name, baseline in (("biharmonic", baselines.biharmonic), ("local_mean", baselines.local_mean)):
        out[name], = per_set(lambda inp: (baseline(inp, np.isnan(inp) & ~np.isnan(values)),), values, sets)
    for name in list(out)[3:]:  # the methods (and σ): land stays NaN, as geonb fill writes it
        out[name] = (dims, np.where(sea, out[name], np.nan).astype("float32"))
    ds = xr.Dataset(out, coords=field.coords, attrs={"dincae_fill_seconds": seconds})
    ds.attrs["methods"] = ",".join(methods(ds))
    write_netcdf(ds, path)
    return ds


def predict_file(model: TrainedModel, args) -> xr.Dataset:
    """``geonb predict`` with a cloud model: ``geonb fill --model`` (every other variable kept)."""
    if not args.var:
        raise GeonbError("a cloud model fills one variable of the cube: name it with --var (e.g. --var SST).")
    return fill_dataset(open_dataset(args.input, args.var), args.var, args.mask_var, arch=model.arch, model=model,
                        allow_outliers=args.allow_outliers)
