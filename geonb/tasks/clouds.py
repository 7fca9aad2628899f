"""Gap filling of real cloudy cubes, self-supervised (``dincae``), against DINEOF and the seed U-Net.

01 loads the cube (default: the Alboran AVHRR SST, 10 days, real clouds); 02 chooses
the cross-validation (score) points and the validation points as real cloud shapes of
other days laid over observed pixels; 03 trains dincae on the cube without those
points, plus the comparisons (dineof, unet trained the same masked way); 04-06 score
every method on exactly the same hidden points: maps, σ map, calibration, scatter with
error bars, RMSE by distance to the nearest observation, transects.
"""
from __future__ import annotations

import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr

from .. import metrics, plots
from ..cv import cloud_cv_mask
from ..fill import QUICK, fill_cube, train_on_cube
from ..metrics.probabilistic import distance_to_observed, reliability, rmse_by_distance, score
from ..data import load_field
from ..dineof import dineof
from ..errors import GeonbError
from ..io import write_netcdf, write_text
from ..modelfile import TrainedModel
from ..params import ALLOW_OUTLIERS, COMMON, Param
from ..registry import METHODS, get_arch
from ..report import Report
from ..training import run_accelerator
from ..transect import line_points, sample_line
from . import Task

PARAMS = COMMON.override(
    data={"default": "alboran"},
    epochs={"default": 60, "quick": QUICK["epochs"]},
    patience={"default": 20, "help": "the NLL on few validation pixels is noisy: stop late"},
    batch_size={"default": 4},
    transect_start={"help": "[lat, lon] start of the 06 line; None: [35.2, -5.0], across the Alboran gyres"},
    transect_end={"help": "[lat, lon] end of the 06 line; None: [36.8, -1.0]"},
) + (
    ALLOW_OUTLIERS,
    Param("window", int, 3, "days per input: t−1, t, t+1 (odd)", min=1, max=31),
    Param("widths", list, [16, 24, 32, 48], "feature maps per U-Net level", quick=QUICK["widths"], min=1, max=1024),
    Param("crop", int, 96, "training patch size (pixels)", quick=QUICK["crop"], min=16, max=1024),
    Param("samples_per_day", int, 4, "random other-day cloud masks per day and epoch",
          quick=QUICK["samples_per_day"], min=1, max=100),
    Param("n_average", int, 5, "last epochs whose predictions are averaged", quick=QUICK["n_average"], min=0, max=100),
    Param("cv_fraction", float, 0.10, "observed pixels hidden for scoring", "simulate", above=0),
    Param("val_fraction", float, 0.05, "observed pixels hidden for early stopping and the σ scale", "simulate", min=0),
    Param("compare", str, "dineof,unet", "comparison methods (comma list of dineof, unet)"),
    Param("show_day", int, -1, "day shown in maps/transects; -1 = the day with most CV points", None),
)
TRANSECT = ([35.2, -5.0], [36.8, -1.0])  # lat, lon: across the Alboran gyres
QUICK_BOX = (slice(80, 144), slice(180, 276))  # 64×96 pixels of open sea, no all-cloud day


def _compare(run) -> list[str]:
    names = [n.strip() for n in str(run["compare"]).split(",") if n.strip()]
    bad = sorted(set(names) - {"dineof", "unet"})
    if bad:
        raise GeonbError(f"compare={run['compare']!r}: unknown method(s) {bad}; use a comma list of dineof, unet.")
    return names


# ---------------------------------------------------------------- 01 data prep
def data_prep(run) -> Report:
    field = load_field(run["data"], run["var"], run["allow_outliers"])
    if run["quick"]:
        field = field.isel(lat=QUICK_BOX[0], lon=QUICK_BOX[1])
    obs = np.isfinite(field.values)
    if field.sizes["time"] < 3:
        raise GeonbError(f"{run['data']}: {field.sizes['time']} day(s); cloud filling needs ≥ 3 days of a cloudy cube.")
    sea = obs.any(0)
    write_netcdf(xr.Dataset({"field": field}), run.path("field.nc"))
    cloud = 1 - obs[:, sea].mean(1)
    table = pd.DataFrame({"time": [str(t)[:10] for t in field.time.values], "cloud fraction": cloud}).set_index("time")
    step = max(1, field.sizes["time"] // 4)
    panels = [(str(field.time.values[t])[:10], field.values[t], field.lat, field.lon, "sst")
              for t in range(0, field.sizes["time"], step)][:4]
    fig = plots.map_panels(panels, run.figure("01_days"), ncols=4, units=field.attrs.get("units", ""))
    gaps = np.diff(field.time.values) / np.timedelta64(1, "D") if np.issubdtype(field.time.dtype, np.datetime64) else []
    note = f"; time gaps of {sorted(set(np.round(gaps, 2)) - {1.0})} days" if len(gaps) and np.any(np.asarray(gaps) != 1) else ""
    return Report("Cloudy cube", f"{dict(field.sizes)}, {int(sea.sum())} sea pixels, "
                  f"{100 * cloud.mean():.0f} % cloud on average{note}.", {"cloud fraction per day": table}, [fig])


def _field(run):
    field = xr.open_dataset(run.path("field.nc")).load().field
    return field, np.isfinite(field.values).any(0)  # sea = observed at least once


# ---------------------------------------------------------------- 02 CV points
def simulate(run) -> Report:
    field, sea = _field(run)
    obs = np.isfinite(field.values)
    cv = cloud_cv_mask(obs, int(run["cv_fraction"] * obs.sum()), seed=run["seed"], sea=sea)
    rest = obs & ~cv
    val = cloud_cv_mask(rest, int(run["val_fraction"] * rest.sum()), seed=run["seed"] + 1, sea=sea)
    dims = ("time", "lat", "lon")
    write_netcdf(xr.Dataset({"cv": (dims, cv.astype("int8")), "val": (dims, val.astype("int8"))},
                            coords=field.coords), run.path("points.nc"))
    dist = distance_to_observed(obs & ~cv & ~val)[cv]
    table = pd.DataFrame({"points": [int(cv.sum()), int(val.sum())],
                          "% of observed": [100 * cv.sum() / obs.sum(), 100 * val.sum() / obs.sum()]},
                         index=["CV (score)", "validation"])
    t = _show_day(run, cv)
    shown = np.where(cv[t], 2.0, np.where(val[t], 1.0, np.where(obs[t], 0.0, np.nan)))
    panels = [("observed", field.values[t], field.lat, field.lon, "sst"),
              ("hidden: CV (2) / validation (1)", shown, field.lat, field.lon, "error")]
    fig = plots.map_panels(panels, run.figure("02_points"), ncols=2, units=field.attrs.get("units", ""),
                           suptitle=f"day {str(field.time.values[t])[:10]}: cloud shapes of other days")
    return Report("Cross-validation points", f"Real cloud shapes of other days over observed pixels. Median distance "
                  f"of a CV point to the nearest observed pixel: {np.median(dist):.1f} px (max {dist.max():.0f}).",
                  {"hidden points": table}, [fig])


def _points(run):
    ds = xr.open_dataset(run.path("points.nc")).load()
    return ds.cv.values.astype(bool), ds.val.values.astype(bool)


def _show_day(run, cv) -> int:
    return int(np.argmax(cv.sum((1, 2)))) if run["show_day"] < 0 else int(run["show_day"])


# ---------------------------------------------------------------- 03 train
def _options(run) -> dict:
    return {k: run[k] for k in ("epochs", "patience", "batch_size", "lr", "window", "widths", "crop",
                                "samples_per_day", "n_average")}


def train(run) -> Report:
    field, sea = _field(run)
    cv, val = _points(run)
    inp = np.where(cv, np.nan, field.values)
    coords = (field.lat.values, field.lon.values, field.time.values)
    rows, figures = [], []
    for arch in ["dincae"] + [a for a in _compare(run) if a == "unet"]:
        model = train_on_cube(inp, *coords, arch=arch, val_points=val, device=run_accelerator(run),
                              ckpt_dir=run.checkpoint_dir(arch), seed=run["seed"], units=field.attrs.get("units", ""),
                              **_options(run))
        model.save(run.model_path(arch))
        history = model.info["history"]
        loss = METHODS.get(get_arch(arch).method).loss_name
        figures.append(plots.loss_curves(history, run.figure(f"03_loss_{arch}"), f"{arch}: {loss} on hidden pixels"))
        rows.append({"method": arch, "epochs": len(history), "train seconds": model.info["train_seconds"],
                     "σ scale (val)": model.method_args["sigma_scale"] if model.inputs["window"] else np.nan})
    if "dineof" in _compare(run):
        t0 = time.perf_counter()
        result = dineof(inp, _days(field), sea=sea, seed=run["seed"], progress=False)
        write_netcdf(xr.Dataset({"filled": (("time", "lat", "lon"), result.filled)}, coords=field.coords,
                                attrs={"n_modes": result.n_modes, "cv_rms": result.cv_rms}),
                     run.path("models", "dineof", "filled.nc"))
        rows.append({"method": "dineof", "epochs": np.nan, "train seconds": time.perf_counter() - t0,
                     "σ scale (val)": np.nan, "modes": result.n_modes, "internal CV RMS": result.cv_rms})
    return Report("Trained on the cloudy cube", "Self-supervised: the clouds of another day hide observed pixels of "
                  "day t; the loss is taken on those. The σ scale is fitted on the validation points (68 % within 1σ).",
                  {"training": pd.DataFrame(rows).set_index("method")}, figures)


def _days(field) -> np.ndarray:
    t = field.time.values
    return (t - t[0]) / np.timedelta64(1, "D") if np.issubdtype(t.dtype, np.datetime64) else t.astype(float)


# ---------------------------------------------------------------- 04 error maps
def predictions(run) -> xr.Dataset:
    """Filled fields (and σ) of every method on the cube without the CV points, cached."""
    path = run.prediction_path("cv")
    if path.exists() and path.stat().st_mtime > run.model_path("dincae").stat().st_mtime:
        return xr.open_dataset(path).load()
    field, _ = _field(run)
    cv, _ = _points(run)
    inp = np.where(cv, np.nan, field.values)
    coords = (field.lat.values, field.lon.values, field.time.values)
    dims = ("time", "lat", "lon")
    out = {"truth": (dims, field.values), "input": (dims, inp), "holes": (dims, cv.astype("uint8"))}  # 1 = CV point
    model = TrainedModel.load(run.model_path("dincae"), task="clouds")
    t0 = time.perf_counter()
    mean, sigma = fill_cube(model, inp, *coords)
    seconds = time.perf_counter() - t0
    out["dincae"], out["dincae_sigma"] = (dims, mean), (dims, sigma)
    single, single_sigma = fill_cube(model, inp, *coords, last=1)
    out["dincae_last_epoch"], out["dincae_last_epoch_sigma"] = (dims, single), (dims, single_sigma)
    if run.model_path("unet").exists() and "unet" in _compare(run):
        out["unet"] = (dims, fill_cube(TrainedModel.load(run.model_path("unet"), task="clouds"), inp, *coords)[0])
    if "dineof" in _compare(run):
        out["dineof"] = (dims, xr.open_dataset(run.path("models", "dineof", "filled.nc")).filled.values)
    sea = np.isfinite(field.values).any(0)
    for name in list(out)[3:]:  # the methods (and σ): land stays NaN, as geonb fill writes it
        out[name] = (dims, np.where(sea, out[name][1], np.nan).astype("float32"))
    ds = xr.Dataset(out, coords=field.coords, attrs={"dincae_fill_seconds": seconds})
    ds.attrs["methods"] = ",".join(methods(ds))
    write_netcdf(ds, path)
    return ds


def methods(ds) -> list[str]:
    return [m for m in ("dincae", "dincae_last_epoch", "dineof", "unet") if m in ds]


def score_table(ds) -> pd.DataFrame:
    cv = ds.holes.values.astype(bool)
    rows = {m: score(ds.truth.values, ds[m].values, cv, ds[f"{m}_sigma"].values if f"{m}_sigma" in ds else None)
            for m in methods(ds)}
    return pd.DataFrame(rows).T


def error_maps(run) -> Report:
    ds = predictions(run)
    cv = ds.holes.values.astype(bool)
    table = score_table(ds)
    write_text(run.metrics_path("cv"), table.to_csv())
    obs_input = np.isfinite(ds.input.values)
    by_dist = pd.concat({m: rmse_by_distance(ds.truth.values, ds[m].values, cv, obs_input).set_index("distance_px")
                         for m in methods(ds)}, axis=1)
    t = _show_day(run, cv)
    lat, lon = ds.lat, ds.lon
    units = ds.truth.attrs.get("units", "")
    panels = [("input (CV points hidden)", ds.input.values[t], lat, lon, "sst"),
              ("dincae filled", _composite(ds, "dincae", t), lat, lon, "sst"),
              ("dincae σ", ds.dincae_sigma.values[t], lat, lon, "sigma")]
    for m in ("dineof", "unet"):
        if m in ds:
            panels.append((f"{m} filled", _composite(ds, m, t), lat, lon, "sst"))
    for m in [m for m in ("dincae", "dineof", "unet") if m in ds]:
        panels.append((f"{m} error at CV points", np.where(cv[t], ds[m].values[t] - ds.truth.values[t], np.nan),
                       lat, lon, "diff"))
    fig = plots.map_panels(panels, run.figure("04_maps"), ncols=3, units=units,
                           suptitle=f"day {str(ds.time.values[t])[:10]}")
    text = (f"{int(cv.sum())} CV points (real cloud shapes of other days). dincae averages the last "
            f"{_n_states(run)} epochs; 'dincae_last_epoch' is the last epoch alone. Filling the cube with the "
            f"trained dincae took {ds.attrs['dincae_fill_seconds']:.1f} s.")
    return Report("Scores at the CV points", text, {"scores": table, "RMSE by distance to the nearest observation": by_dist},
                  [fig])


def _n_states(run) -> int:
    return len(TrainedModel.load(run.model_path("dincae"), task="clouds").weights)


def _composite(ds, method, t) -> np.ndarray:
    """Observed pixels as given, the method's values elsewhere (what a user gets)."""
    inp = ds.input.values[t]
    return np.where(np.isfinite(inp), inp, ds[method].values[t])


# ---------------------------------------------------------------- 05 scatter + calibration
def scatter_plots(run) -> Report:
    ds = predictions(run)
    cv = ds.holes.values.astype(bool)
    truth = ds.truth.values[cv]
    units = ds.truth.attrs.get("units", "")
    series = {m: (truth, ds[m].values[cv]) for m in methods(ds) if m != "dincae_last_epoch"}
    fig_density = plots.scatter_density(series, run.figure("05_scatter"), units, "at the CV points")
    fig_bars = errorbar_scatter(truth, ds.dincae.values[cv], ds.dincae_sigma.values[cv],
                                {m: ds[m].values[cv] for m in ("dineof", "unet") if m in ds},
                                run.figure("05_errorbars"), units, run["seed"])
    rel = {m: reliability(ds.truth.values, ds[m].values, ds[f"{m}_sigma"].values, cv)
           for m in ("dincae", "dincae_last_epoch")}
    fig_rel = reliability_plot(rel, run.figure("05_reliability"))
    table = pd.concat({m: r.set_index("nominal") for m, r in rel.items()}, axis=1)
    return Report("Predicted vs true at the CV points, and calibration",
                  "Error bars: dincae ±1σ on a random subset of CV points. Reliability: fraction of CV points "
                  "inside the central interval of each nominal probability (on the diagonal = calibrated).",
                  {"reliability (fraction inside)": table}, [fig_density, fig_bars, fig_rel])


def errorbar_scatter(truth, mean, sigma, others: dict, path, units: str, seed: int = 0, n: int = 400):
    """dincae mean ±1σ against the truth on a random subset, other methods as dots."""
    idx = np.random.default_rng(seed).permutation(len(truth))[:n]
    fig, axes = plt.subplots(1, 1 + len(others), figsize=(4.4 * (1 + len(others)), 4.2), squeeze=False)
    lo, hi = np.percentile(truth, [0.5, 99.5])
    ax = axes[0, 0]
    ax.errorbar(truth[idx], mean[idx], yerr=sigma[idx], fmt=".", ms=3, lw=0.6, alpha=0.6, color="C0")
    ax.set_title(f"dincae ±1σ (RMSE {metrics.rmse(mean, truth):.3f})")
    for ax, (name, pred) in zip(axes[0, 1:], others.items()):
        ax.plot(truth[idx], pred[idx], ".", ms=3, color="C1")
        ax.set_title(f"{name} (RMSE {metrics.rmse(pred, truth):.3f})")
    for ax in axes[0]:
        ax.plot([lo, hi], [lo, hi], "k--", lw=1)
        ax.set(xlim=(lo, hi), ylim=(lo, hi), xlabel=f"true {units}", ylabel=f"predicted {units}")
    return plots.save_figure(fig, path)


def reliability_plot(tables: dict, path):
    fig, ax = plt.subplots(figsize=(4.4, 4.2))
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="calibrated")
    for name, table in tables.items():
        ax.plot(table.nominal, table.observed, "o-", label=name)
    ax.set(xlabel="nominal probability of the central interval", ylabel="fraction of CV points inside",
           title="reliability")
    ax.legend(fontsize=8)
    return plots.save_figure(fig, path)


# ---------------------------------------------------------------- 06 transects
def transects(run) -> Report:
    ds = predictions(run)
    cv = ds.holes.values.astype(bool)
    t = _show_day(run, cv)
    day = ds.isel(time=t)
    lat, lon, dist = line_points(run["transect_start"] or TRANSECT[0], run["transect_end"] or TRANSECT[1])
    inside = (min(lat) >= float(ds.lat.min())) & (max(lat) <= float(ds.lat.max())) & \
             (min(lon) >= float(ds.lon.min())) & (max(lon) <= float(ds.lon.max()))
    if not inside:  # quick mode crops the cube: fall back to its diagonal
        lat, lon, dist = line_points([float(ds.lat[0]), float(ds.lon[0])], [float(ds.lat[-1]), float(ds.lon[-1])])
    grids = {"observed": day.truth.where(np.isfinite(day.truth))}
    for m in [m for m in ("dincae", "dineof", "unet") if m in ds]:
        grids[m] = day.truth.copy(data=_composite(ds, m, t))
    values = {("truth" if k == "observed" else k): sample_line(g, lat, lon) for k, g in grids.items()}
    rough = {("truth" if k == "observed" else k): sample_line(g.copy(data=metrics.roughness(g.values)), lat, lon)
             for k, g in grids.items()}
    shade = ~np.isfinite(sample_line(day.input, lat, lon))
    units = ds.truth.attrs.get("units", "")
    fig = plots.transect_plot(dist, values, rough, run.figure("06_transect"), units, shade,
                              f"day {str(ds.time.values[t])[:10]}: 'truth' = observed (gaps where cloudy)")
    sigma = sample_line(day.dincae_sigma, lat, lon)
    panels = [(k, g.values, ds.lat, ds.lon, "sst") for k, g in grids.items()]
    fig_map = plots.map_panels(panels, run.figure("06_transect_map"), ncols=len(panels),
                               units=units, line=(lat, lon))
    cv_line = sample_line(day.holes, lat, lon) > 0
    rows = [{"method": m, "rmse at CV points on the line": metrics.rmse(values[m], values["truth"], cv_line),
             "n CV points": int(cv_line.sum())} for m in values if m != "truth"]
    return Report("Transect", f"{int(shade.sum())} of {len(shade)} line samples are gaps in the input (grey); "
                  f"mean dincae σ there: {np.nanmean(sigma[shade]) if shade.any() else np.nan:.3f} {units}.",
                  {"along the transect": pd.DataFrame(rows).set_index("method")}, [fig, fig_map])


def predict_file(model: TrainedModel, args) -> xr.Dataset:
    """``geonb predict`` with a cloud model: ``geonb fill --model`` (every other variable kept)."""
    from ..fill import fill_dataset
    from ..io import open_dataset

    if not args.var:
        raise GeonbError("a cloud model fills one variable of the cube: name it with --var (e.g. --var SST).")
    return fill_dataset(open_dataset(args.input, args.var), args.var, args.mask_var, arch=model.arch, model=model,
                        allow_outliers=args.allow_outliers)


TASK = Task(
    "clouds", "gap filling of real cloudy cubes, self-supervised, with error bars", PARAMS,
    {"data_prep": data_prep, "simulate": simulate, "train": train, "error_maps": error_maps,
     "scatter_plots": scatter_plots, "transects": transects},
    predict_file=predict_file, predict_options=("mask_var", "allow_outliers"),
)
