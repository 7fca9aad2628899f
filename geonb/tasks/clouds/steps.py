"""The clouds task's notebook steps: cube, hole sets, training, scores per hole set beside biharmonic, local
mean and DINEOF, calibration, transect."""
from __future__ import annotations

import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr

from ... import holes as holesets, metrics, plots
from ...cv import cloud_cv_mask
from ...cloudmodel import train_on_cube
from ...metrics.probabilistic import distance_to_observed, reliability, rmse_by_distance, score, spread_skill
from ...data import load_field
from ...dineof import dineof
from ...draw import MASK_FILE, load_mask
from ...errors import GeonbError
from ...io import write_netcdf, write_text
from ...modelfile import TrainedModel
from ...registry import METHODS, get_arch
from ...report import Report
from ...training import run_accelerator
from ...transect import line_points, sample_line
from ...units import unit_text
from .data import (
    QUICK_BOX, TRANSECT, _compare, _days, _encode, _field, _hole_sets, _options, _points, _show_day, hole_sets,
    methods, per_set)
from .infer import predictions


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
    fig = plots.map_panels(panels, run.figure("01_days"), ncols=4, units=field.attrs.get("units", ""), domain=sea,
                           gap="cloud")
    gaps = np.diff(field.time.values) / np.timedelta64(1, "D") if np.issubdtype(field.time.dtype, np.datetime64) else []
    note = f"; time gaps of {sorted(set(np.round(gaps, 2)) - {1.0})} days" if len(gaps) and np.any(np.asarray(gaps) != 1) else ""
    return Report("Cloudy cube", f"{dict(field.sizes)}, {int(sea.sum())} sea pixels, "
                  f"{100 * cloud.mean():.0f} % cloud on average{note}.", {"cloud fraction per day": table}, [fig])


def simulate(run) -> Report:
    field, sea = _field(run)
    obs = np.isfinite(field.values)
    cv, sets = np.zeros_like(obs), {}
    for k, name in enumerate(_hole_sets(run)):  # disjoint sets: each point belongs to one
        sets[name] = (cloud_cv_mask(obs, int(run["cv_fraction"] * obs.sum()), seed=run["seed"], sea=sea)
                      if name == "clouds" else holesets.over_observed(obs, name, seed=run["seed"] + 10 + k, exclude=cv))
        cv |= sets[name]
    if run.path(MASK_FILE).exists():  # drawn in 02 (geonb.draw_mask): its cells on every day they were observed
        sets["drawn"] = load_mask(run.path(MASK_FILE), field)[None] & obs & ~cv
        cv |= sets["drawn"]
    rest = obs & ~cv
    val = cloud_cv_mask(rest, int(run["val_fraction"] * rest.sum()), seed=run["seed"] + 1, sea=sea)
    dims = ("time", "lat", "lon")
    code, flags = _encode(sets)
    write_netcdf(xr.Dataset({"cv": (dims, code, flags), "val": (dims, val.astype("int8"))}, coords=field.coords),
                 run.path("points.nc"))
    hidden = obs & ~cv & ~val
    rows = {name: {"points": int(m.sum()), "% of observed": 100 * m.sum() / obs.sum(),
                   "median distance to an observed pixel (px)": float(np.median(distance_to_observed(hidden)[m]))}
            for name, m in {**sets, "validation": val}.items()}
    t = _show_day(run, cv)
    shown = np.where(cv[t], code[t] + 1, np.where(val[t], 1, np.where(obs[t], 0, np.nan)))
    panels = [("observed", field.values[t], field.lat, field.lon, "sst"),
              ("hidden pixels", shown, field.lat, field.lon, ("kept", "validation", *sets))]
    fig = plots.map_panels(panels, run.figure("02_points"), ncols=2, units=field.attrs.get("units", ""), domain=sea,
                           gap="cloud",
                           suptitle=f"day {str(field.time.values[t])[:10]}: the hole sets over observed pixels")
    return Report("Hole sets over observed pixels", "Every set hides pixels that were observed, so the truth is "
                  "known; none of them (nor the validation points) is seen in training. Each set is filled with "
                  "only its own points hidden.", {"hidden points": pd.DataFrame.from_dict(rows, orient="index")}, [fig])


def train(run) -> Report:
    field, sea = _field(run)
    cv, val, sets = _points(run)
    inp = np.where(cv, np.nan, field.values)  # no score point of any set is seen in training
    coords = (field.lat.values, field.lon.values, field.time.values)
    rows, figures = [], []
    for arch in ["dincae"] + [a for a in _compare(run) if a == "unet"]:
        model = train_on_cube(inp, *coords, arch=arch, val_points=val, device=run_accelerator(run),
                              ckpt_dir=run.checkpoint_dir(arch), seed=run["seed"], units=field.attrs.get("units", ""),
                              init=run["init"] if arch == run["arch"] else "", **_options(run))
        model.save(run.model_path(arch))
        history = model.info["history"]
        loss = METHODS.get(get_arch(arch).method).loss_name
        figures.append(plots.loss_curves(history, run.figure(f"03_loss_{arch}"), f"{arch}: {loss} on hidden pixels"))
        rows.append({"method": arch, "epochs": len(history), "train seconds": model.info["train_seconds"],
                     "σ scale (val)": model.method_args["sigma_scale"] if model.inputs["window"] else np.nan})
    if "dineof" in _compare(run):  # DINEOF learns from the cube it fills: one reconstruction per hole set
        t0, modes = time.perf_counter(), []

        def reconstruct(inp):
            result = dineof(inp, _days(field), sea=sea, seed=run["seed"], progress=False)
            modes.append(result.n_modes)
            return (result.filled,)

        filled, = per_set(reconstruct, field.values, sets)
        write_netcdf(xr.Dataset({"filled": (("time", "lat", "lon"), filled)}, coords=field.coords),
                     run.path("models", "dineof", "filled.nc"))
        rows.append({"method": "dineof", "epochs": np.nan, "train seconds": time.perf_counter() - t0,
                     "σ scale (val)": np.nan, "modes": ", ".join(map(str, modes))})
    return Report("Trained on the cloudy cube", "Self-supervised: the clouds of another day hide observed pixels of "
                  "day t; the loss is taken on those. The σ scale is fitted on the validation points (68 % within 1σ).",
                  {"training": pd.DataFrame(rows).set_index("method")}, figures)


def score_table(ds) -> pd.DataFrame:
    """Scores of every method on every CV point (all sets together), σ coverage and CRPS where there is a σ."""
    cv = ds.holes.values > 0
    rows = {m: score(ds.truth.values, ds[m].values, cv, ds[f"{m}_sigma"].values if f"{m}_sigma" in ds else None)
            for m in methods(ds)}
    return pd.DataFrame.from_dict(rows, orient="index")


def rmse_per_set(ds) -> pd.DataFrame:
    """RMSE of every method in each hole set and in all of them (the README's first table), and each
    learned method's ratio to biharmonic, the strongest classical filler per day."""
    sets = {**hole_sets(ds), "all": ds.holes.values > 0}
    table = pd.DataFrame({name: {m: metrics.rmse(ds[m].values, ds.truth.values, points) for m in methods(ds)}
                          for name, points in sets.items()})
    table.loc["n points"] = [int(points.sum()) for points in sets.values()]
    for m in [m for m in ("dincae", "unet") if m in table.index]:
        table.loc[f"{m} / biharmonic"] = table.loc[m] / table.loc["biharmonic"]
    return table


def error_maps(run) -> Report:
    ds = predictions(run)
    cv = ds.holes.values > 0
    per_set_table, table = rmse_per_set(ds), score_table(ds)
    write_text(run.metrics_path("cv"), per_set_table.to_csv())
    obs_input = np.isfinite(ds.input.values)
    by_dist = pd.concat({m: rmse_by_distance(ds.truth.values, ds[m].values, cv, obs_input).set_index("distance_px")
                         for m in methods(ds)}, axis=1)
    t = _show_day(run, cv)
    lat, lon = ds.lat, ds.lon
    units = unit_text(ds.truth.attrs.get("units", ""))
    shown = [m for m in ("dincae", "unet", "dineof", "biharmonic") if m in ds]
    panels = [("input (every hole set hidden)", ds.input.values[t], lat, lon, "sst"),
              *[(f"{m} filled", _composite(ds, m, t), lat, lon, "sst") for m in shown],
              ("dincae σ", ds.dincae_sigma.values[t], lat, lon, "sigma"),
              *[(f"{m} error at CV points", np.where(cv[t], ds[m].values[t] - ds.truth.values[t], np.nan),
                 lat, lon, "diff") for m in shown]]
    fig = plots.map_panels(panels, run.figure("04_maps"), ncols=len(shown) + 1 if len(shown) < 5 else 3, units=units,
                           domain=np.isfinite(ds.truth.values).any(0), gap="no value: cloud, hidden, or not a CV point",
                           suptitle=f"day {str(ds.time.values[t])[:10]}")
    best = per_set_table.loc[[m for m in ("dincae", "unet") if m in per_set_table.index]].min()
    wins = [n for n in per_set_table.columns[:-1] if best[n] < per_set_table.loc["biharmonic", n]]
    text = (f"{int(cv.sum())} CV points in {per_set_table.shape[1] - 1} hole sets, each filled with only its own points "
            f"hidden. dincae averages the last {_n_states(run)} epochs; 'dincae_last_epoch' is the last epoch alone. "
            f"Filling the cube with the trained dincae took {ds.attrs['dincae_fill_seconds']:.1f} s. "
            + (f"A learned method beats biharmonic per day on {', '.join(wins)}." if wins else
               "Biharmonic per day beats every learned method on every hole set."))
    return Report("Scores at the CV points", text,
                  {f"RMSE per hole set ({units})": per_set_table, "scores at every CV point": table,
                   "RMSE by distance to the nearest pixel outside the hole sets": by_dist}, [fig])


def _n_states(run) -> int:
    return len(TrainedModel.load(run.model_path("dincae"), task="clouds").weights)


def _composite(ds, method, t) -> np.ndarray:
    """Observed pixels as given, the method's values elsewhere (what a user gets)."""
    inp = ds.input.values[t]
    return np.where(np.isfinite(inp), inp, ds[method].values[t])


def scatter_plots(run) -> Report:
    ds = predictions(run)
    cv = ds.holes.values > 0
    truth = ds.truth.values[cv]
    units = unit_text(ds.truth.attrs.get("units", ""))
    series = {m: (truth, ds[m].values[cv]) for m in methods(ds) if m != "dincae_last_epoch"}
    fig_density = plots.scatter_density(series, run.figure("05_scatter"), units, "at the CV points")
    fig_bars = errorbar_scatter(truth, ds.dincae.values[cv], ds.dincae_sigma.values[cv],
                                {m: ds[m].values[cv] for m in ("unet", "dineof", "biharmonic") if m in ds},
                                run.figure("05_errorbars"), units, run["seed"])
    rel = {m: reliability(ds.truth.values, ds[m].values, ds[f"{m}_sigma"].values, cv)
           for m in ("dincae", "dincae_last_epoch")}
    fig_rel = reliability_plot(rel, run.figure("05_reliability"))
    table = pd.concat({m: r.set_index("nominal") for m, r in rel.items()}, axis=1)
    skill = {m: spread_skill(ds[m].values[cv] - truth, ds[f"{m}_sigma"].values[cv]) for m in ("dincae", "dincae_last_epoch")}
    fig_skill = plots.spread_skill(skill, run.figure("05_spread_skill"), units, "σ against the error at the CV points")
    top = skill["dincae"]["rmse"].iloc[-1] / skill["dincae"]["rmse"].iloc[0]
    return Report("Predicted vs true at the CV points, and calibration",
                  "Error bars: dincae ±1σ on a random subset of CV points. Reliability: fraction of CV points "
                  "inside the central interval of each nominal probability (on the diagonal = calibrated). "
                  f"Spread–skill: the CV points in deciles of σ; the RMSE in dincae's top σ decile is {top:.1f}× "
                  "the bottom decile's (a σ that knows where it is wrong rises with the error).",
                  {"reliability (fraction inside)": table, f"spread–skill, dincae ({units})": skill["dincae"]},
                  [fig_density, fig_bars, fig_rel, fig_skill])


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


def transects(run) -> Report:
    ds = predictions(run)
    cv = ds.holes.values > 0
    t = _show_day(run, cv)
    day = ds.isel(time=t)
    lat, lon, dist = line_points(run["transect_start"] or TRANSECT[0], run["transect_end"] or TRANSECT[1])
    inside = (min(lat) >= float(ds.lat.min())) & (max(lat) <= float(ds.lat.max())) & \
             (min(lon) >= float(ds.lon.min())) & (max(lon) <= float(ds.lon.max()))
    if not inside:  # quick mode crops the cube: fall back to its diagonal
        lat, lon, dist = line_points([float(ds.lat[0]), float(ds.lon[0])], [float(ds.lat[-1]), float(ds.lon[-1])])
    grids = {"observed": day.truth.where(np.isfinite(day.truth))}
    for m in [m for m in ("dincae", "unet", "dineof", "biharmonic") if m in ds]:
        grids[m] = day.truth.copy(data=_composite(ds, m, t))
    values = {("truth" if k == "observed" else k): sample_line(g, lat, lon) for k, g in grids.items()}
    rough = {("truth" if k == "observed" else k): sample_line(g.copy(data=metrics.roughness(g.values)), lat, lon)
             for k, g in grids.items()}
    shade = ~np.isfinite(sample_line(day.input, lat, lon))
    units = unit_text(ds.truth.attrs.get("units", ""))
    fig = plots.transect_plot(dist, values, rough, run.figure("06_transect"), units, shade,
                              f"day {str(ds.time.values[t])[:10]}: 'truth' = observed (gaps where cloudy)")
    sigma = sample_line(day.dincae_sigma, lat, lon)
    panels = [(k, g.values, ds.lat, ds.lon, "sst") for k, g in grids.items()]
    fig_map = plots.map_panels(panels, run.figure("06_transect_map"), ncols=len(panels),
                               units=units, line=(lat, lon), domain=np.isfinite(ds.truth.values).any(0), gap="cloud")
    cv_line = sample_line(day.holes, lat, lon) > 0
    rows = [{"method": m, "rmse at CV points on the line": metrics.rmse(values[m], values["truth"], cv_line),
             "n CV points": int(cv_line.sum())} for m in values if m != "truth"]
    return Report("Transect", f"{int(shade.sum())} of {len(shade)} line samples are gaps in the input (grey); "
                  f"mean dincae σ there: {np.nanmean(sigma[shade]) if shade.any() else np.nan:.3f} {units}.",
                  {"along the transect": pd.DataFrame(rows).set_index("method")}, [fig, fig_map])
