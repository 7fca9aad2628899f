"""The downscale task's notebook steps 01, 02, 04, 05, 06: data, degradation, scores, scatter, transect."""
from __future__ import annotations


import numpy as np
import pandas as pd
import torch
import xarray as xr

from ... import plots, terrain
from ...data import load_grid
from ...errors import GeonbError
from ...io import open_dataset, write_netcdf, write_text
from ...metrics import rmse, roughness
from ...metrics.probabilistic import score, spread_skill
from ...metrics.superres import masked_scores, radial_spectrum, spectrum_ratio, topographic_consistency
from ...modelfile import TrainedModel
from ...predict import Predictor
from ...report import Report
from ...resample import block_mean, check_factor, check_finite, coarsen
from ...transect import line_points, line_points_projected, sample_line, straight_line
from .data import (
    BASELINES, ERROR, QUICK_CROP, _NAME, _box_axes, _crop, _crop16, _data_id, _kind, _label, _layer, _load, _map_box,
    _methods, baseline, setting, split_map)
from .infer import has_sigma, predict_grid


def data_prep(run) -> Report:
    """Load the high-res grid and its layers, mask, split into train / val / test regions."""
    name = run["data"] or "jacksboro"
    if name == "synthetic":
        t = terrain.terrain_dataset(344, 400, seed=int(run["seed"]))
        grid = t[["elevation"]].rename(lat="y", lon="x")
        grid.attrs = {"target": "elevation", "crs": "", "y_name": "lat", "x_name": "lon"}
    else:
        grid = load_grid(name, run["var"], run["allow_outliers"])
    var = grid.attrs["target"]
    if run["quick"]:
        ny, nx = QUICK_CROP
        y0, x0 = max(0, (grid.sizes["y"] - ny) // 2), max(0, (grid.sizes["x"] - nx) // 2)
        grid = grid.isel(y=slice(y0, y0 + ny), x=slice(x0, x0 + nx))
    block, above = setting(run, "block"), setting(run, "valid_above")
    grid = _crop16(grid, (max(64, 3 * block), max(96, 3 * block)),
                   f"and 3 blocks of {block} each way for a block split; or a smaller block, 0: column bands")
    ny, nx = grid.sizes["y"], grid.sizes["x"]
    hr = check_finite(grid[var].values.astype("float64"), f"the target grid {name}:{var}")
    valid = hr > above if above is not None else np.ones(hr.shape, bool)
    split = split_map(hr.shape, block)
    for k, region in enumerate(("train", "val", "test")):
        if not (valid & (split == k)).any():
            raise GeonbError(f"the {region} region has no valid cells (above {above}); choose another block size.")
    units = grid[var].attrs.get("units", "")
    layers = {v: grid[v] for v in grid.data_vars if v != var}
    if not layers:  # an elevation grid alone: derive DeepBedMap-style surface and velocity layers
        surface = terrain.surface_layer(hr)
        layers = {"surface": xr.DataArray(surface.astype("float32"), dims=("y", "x"), attrs={
                      "units": units, "long_name": "smoothed surface (geonb.terrain.surface_layer)"}),
                  "velocity": xr.DataArray(terrain.velocity_layer(surface, hr).astype("float32"), dims=("y", "x"),
                                           attrs={"long_name": "log10 slope-driven speed (geonb.terrain.velocity_layer)"})}
    for n, da in layers.items():
        check_finite(da.values, f"conditioning layer {n!r}")
    ds = xr.Dataset(
        {"target": (("y", "x"), hr.astype("float32"), {**grid[var].attrs, "variable": var}),
         **{n: (("y", "x"), da.values.astype("float32"), da.attrs) for n, da in layers.items()},
         "valid": (("y", "x"), valid.astype("uint8"), {"long_name": f"cells that count (target > {above})"}),
         "split": (("y", "x"), split, {"flag_values": "0 1 2", "flag_meanings": "train val test"})},
        coords={"y": grid.y, "x": grid.x},
        attrs={"source_name": name, "units": units, "crs": grid.attrs["crs"], "y_name": grid.attrs["y_name"],
               "x_name": grid.attrs["x_name"], "block": block, "valid_above": "none" if above is None else above},
    )
    write_netcdf(ds, run.path("data.nc"))
    # the shared layout (docs/DESIGN.md): what geonb.explore shows for any task
    field_da = ds["target"].rename(y="lat", x="lon") if grid.attrs["y_name"] == "lat" else ds["target"]
    write_netcdf(field_da.expand_dims(time=[0]).to_dataset(name="field"), run.path("field.nc"))
    rows = {r: {"cells": int((split == k).sum()), "valid cells": int((valid & (split == k)).sum())}
            for k, r in enumerate(("train", "val", "test"))}
    kind = _kind(ds)
    panels = [(f"{var} ({units})", np.where(valid, hr, np.nan), ds.y, ds.x, kind),
              ("split: train | val | test (valid cells)", np.where(valid, split, np.nan), ds.y, ds.x, "split")]
    # one kind per layer: each gets its own colour limits
    panels += [(f"{n} ({da.attrs.get('units', '')})", da.values, ds.y, ds.x, f"layer {n}") for n, da in layers.items()]
    fig = plots.map_panels(panels, run.figure("01_data"), ncols=len(panels), crs=ds.attrs["crs"])
    return Report(f"01 data: {name} {ny}×{nx}",
                  ("Blocks" if block else "Column bands") + " train | val | test; the test region is never used "
                  "for training or tuning, and no training patch (with its halo) reaches a val or test cell. "
                  f"Layers: {', '.join(layers)} (+ coordinates x, y).", {"regions": pd.DataFrame.from_dict(rows, orient="index")}, [fig])


def simulate(run) -> Report:
    """Degradation examples: block means and both classical upsamplings, scored on the test region."""
    ds = _load(run)
    f = check_factor(run["factor"])
    truth = ds["target"].values.astype("float64")
    scored = (ds["split"].values == 2) & (ds["valid"].values == 1)
    rows = {}
    for g in (2, 4, 8, 16):
        low_res = coarsen(truth, g)
        rows[f"×{g}"] = {"low-res shape": f"{low_res.shape[0]}×{low_res.shape[1]}",
                         **{f"{b} RMSE": rmse(baseline(b, low_res, g), truth, scored) for b in BASELINES}}
    low_res = coarsen(truth, f)
    box = _map_box(ds)
    y, x = _box_axes(ds, box)
    ly, lx = y.reshape(-1, f).mean(1), x.reshape(-1, f).mean(1)
    kind, units = _kind(ds), ds.attrs.get("units", "")
    panels = [("truth (a test block)", _crop(truth, box), y, x, kind),
              (f"low-res: {f}×{f} block mean", coarsen(_crop(truth, box), f), ly, lx, kind)]
    for b in BASELINES:
        up = _crop(baseline(b, low_res, f), box)
        panels.append((f"{b} ×{f} − truth", np.where(_crop(scored, box), up - _crop(truth, box), np.nan), y, x, "diff"))
    fig = plots.map_panels(panels, run.figure(f"02_degradation_x{f}"), ncols=4, units=units, crs=ds.attrs["crs"])
    return Report(f"02 degradation ×{f}", "Low-res inputs are block means of the target (a block's value sits at its "
                  "centre). Baselines: Keys bicubic and the cubic B-spline of the block means, both pixel-area aligned; "
                  "RMSE on the valid cells of the test region.", {"baselines on the test region": pd.DataFrame.from_dict(rows, orient="index")},
                  [fig])


def _evaluate(run) -> xr.Dataset:
    """Predict the whole grid from its block means with every model of this run trained on this data,
    and both baselines; masked cells are kept as they are (the truth) in every output."""
    ds = _load(run)
    truth = ds["target"].values.astype("float64")
    valid = ds["valid"].values.astype(bool)
    models = run.trained()
    if not models:
        raise GeonbError(f"no model in {run.path('models')}; run 03_train first.")
    out = ds[["target", "valid", "split"]].rename(target="truth")
    keep = lambda a: (("y", "x"), np.where(valid, a, truth))  # noqa: E731
    for name, path in models.items():
        model = TrainedModel.load(path, task="downscale")
        if not model.info["trained_on"].startswith(_data_id(ds)):
            print(f"[geonb] skipping {name}: trained on {model.info['trained_on']}, not this data")
            continue
        f = model.arch_args["factor"]
        low_res = coarsen(truth, f)
        for b in BASELINES:
            out[f"{b}_x{f}"] = keep(baseline(b, low_res, f))
        conds = [block_mean(torch.as_tensor(_layer(ds, c))[None, None], f // r)[0, 0].numpy()
                 for c, r in zip(model.inputs["cond"], model.arch_args["cond_res"])]
        if has_sigma(model):
            mean, sd = predict_grid(Predictor(model), low_res, conds, tile="auto", sigma=True)
            out[name], out[name + ERROR] = keep(mean), (("y", "x"), np.where(valid, sd, np.nan))
        else:
            out[name] = keep(predict_grid(Predictor(model), low_res, conds, tile="auto"))
    return out


def _sigma_report(run, pred, scored, box):
    """For each model with σ: coverage and spread–skill on the valid test cells that have a σ (cells passed
    through at or below ``valid_above`` have none), a map of its error beside its σ (the test block of the maps)."""
    names = [n for n, _ in _methods(pred) if n + ERROR in pred]
    if not names:
        return {}, []
    truth, units, crs = pred["truth"].values, pred.attrs.get("units", ""), pred.attrs.get("crs", "")
    rows, skill, figures = {}, {}, []
    y, x = _box_axes(pred, box)
    for name in names:
        error, sd = pred[name].values - truth, pred[name + ERROR].values
        has = scored & np.isfinite(sd)
        s = score(truth, pred[name].values, has, sd)
        skill[_label(name)] = table = spread_skill(error[has], sd[has])
        rows[_label(name)] = {"cells": int(has.sum()), "passed through (no σ)": int((scored & ~has).sum()),"1σ coverage %": 100 * s["cover_1sigma"], "2σ coverage %": 100 * s["cover_2sigma"],
                              "RMSE": s["rmse"], "mean σ": s["mean_sigma"], "CRPS": s["crps"],
                              "RMSE top / bottom σ decile": table["rmse"].iloc[-1] / table["rmse"].iloc[0]}
        figures.append(plots.map_panels(
            [(f"{_label(name)} − truth", np.where(_crop(scored, box), _crop(error, box), np.nan), y, x, "diff"),
             (f"{_label(name)} σ", np.where(_crop(scored, box), _crop(sd, box), np.nan), y, x, "sigma")],
            run.figure(f"04_sigma_{name}"), ncols=2, units=units, crs=crs,
            suptitle="error (centred) beside the predicted σ: valid test cells of the map block"))
    figures.insert(0, plots.spread_skill(skill, run.figure("04_spread_skill"), units=units,
                                         title="predictive σ on the valid cells of the test region"))
    table = pd.DataFrame(rows).T
    write_text(run.metrics_path("test_region_sigma"), table.to_csv())
    return {"predictive σ (target: 1σ 68 ± 5 %, 2σ 95 ± 3 %)": table,
            **{f"spread–skill {k} ({units})": t for k, t in skill.items()}}, figures


def error_maps(run) -> Report:
    """Metric table (models vs both baselines on the held-out test region), maps and spectra."""
    pred = _evaluate(run)
    pred.attrs["methods"] = ",".join(n for n, _ in _methods(pred))  # what geonb.explore offers: not the σ grids
    write_netcdf(pred, run.prediction_path("test_region"))
    truth, scored = pred["truth"].values, (pred["split"].values == 2) & (pred["valid"].values == 1)
    box = _map_box(pred.rename(truth="target"))
    rows = []
    for name, f in _methods(pred):
        values = pred[name].values
        s = masked_scores(values, truth, scored)
        base = {b: rmse(pred[f"{b}_x{f}"].values, truth, scored) for b in BASELINES}
        rows.append({"method": _label(name).split(" ×")[0], "factor": f, "inputs": _NAME.match(name)["inputs"] or "",
                     "RMSE": s["rmse"], "MAE": s["mae"], "bias": s["bias"], "PSNR dB": s["psnr"], "SSIM": s["ssim"],
                     **{f"ratio to {b}": s["rmse"] / base[b] for b in BASELINES},
                     "topo consistency": topographic_consistency(values, coarsen(truth, f), f, scored),
                     "spectrum ratio": spectrum_ratio(_crop(values, box), _crop(truth, box), f)})
    table = pd.DataFrame(rows).set_index(["method", "factor", "inputs"])
    write_text(run.metrics_path("test_region"), table.to_csv())
    crs, units, kind = pred.attrs.get("crs", ""), pred.attrs.get("units", ""), _kind(pred.rename(truth="target"))
    y, x = _box_axes(pred, box)
    factors = sorted({f for _, f in _methods(pred)})
    figures = []
    for f in factors:  # one map figure per factor: truth, its baselines and models, their errors
        names = [n for n, g in _methods(pred) if g == f]
        panels = [("truth", _crop(truth, box), y, x, kind)]
        panels += [(_label(n), _crop(pred[n].values, box), y, x, kind) for n in names]
        panels += [(f"{_label(n)} − truth", np.where(_crop(scored, box), _crop(pred[n].values - truth, box), np.nan),
                    y, x, "diff") for n in names]
        figures.append(plots.map_panels(panels, run.figure(f"04_maps_x{f}"), ncols=len(names) + 1, units=units,
                                        crs=crs, suptitle=f"×{f}: the roughest held-out test block "
                                        "(errors on its valid test cells)"))
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(factors), figsize=(6 * len(factors), 4), squeeze=False)
    k, p = radial_spectrum(_crop(truth, box))
    for ax, f in zip(axes[0], factors):
        ax.loglog(k[1:], p[1:], "k", lw=2, label="truth")
        for n in (n for n, g in _methods(pred) if g == f):
            ax.loglog(k[1:], radial_spectrum(_crop(pred[n].values, box))[1][1:], label=_label(n))
        ax.axvline(0.5 / f, color="0.6", ls=":", lw=1)
        ax.set(xlabel="wavenumber (cycles / high-res cell); dotted: low-res Nyquist", ylabel="power",
               title=f"×{f}: radially averaged power spectrum, the test block of the maps")
        ax.legend(fontsize=7)
    figures.append(plots.save_figure(fig, run.figure("04_spectra")))
    sigma_tables, sigma_figures = _sigma_report(run, pred, scored, box)
    return Report("04 error maps (held-out test region)",
                  "RMSE, MAE, bias, PSNR, SSIM (torchmetrics) on the valid cells of the test region; the ratios compare "
                  "RMSE with Keys bicubic and the cubic B-spline on the same cells; topo consistency = RMSE between "
                  "the block mean of the output and the low-res input; spectrum ratio = fine-scale power (above the "
                  "low-res Nyquist) recovered, output / truth, on the test block of the maps. A model trained with "
                  "sigma adds its σ: coverage of 1σ and 2σ, CRPS and the RMSE per σ decile (spread–skill), and "
                  "its error beside its σ on the map block.", {"metrics": table, **sigma_tables}, figures + sigma_figures)


def _predictions(run) -> xr.Dataset:
    run.require("error_maps")
    return open_dataset(run.prediction_path("test_region"))


def scatter_plots(run) -> Report:
    pred = _predictions(run)
    scored = (pred["split"].values == 2) & (pred["valid"].values == 1)
    truth = pred["truth"].values[scored]
    series = {_label(n): (truth, pred[n].values[scored]) for n, _ in _methods(pred)}
    fig = plots.scatter_density(series, run.figure("05_scatter"), units=pred.attrs.get("units", ""),
                                title="predicted vs true, valid cells of the test region")
    return Report("05 scatter (test region)", "Binned mean and 95 % interval of the prediction per true-value bin.",
                  {}, [fig])


def _line(run, pred):
    """(y, x, km) of the 06 line: from the user's [lat, lon] ends, or across the roughest test block."""
    crs = pred.attrs.get("crs", "")
    if run["transect_start"] is None or run["transect_end"] is None:
        # across the roughest test block, along its row with the most valid test cells (a diagonal
        # can run through ocean), from its first valid cell to its last
        y0, y1, x0, x1 = _map_box(pred.rename(truth="target"))
        scored = _crop(((pred["split"] == 2) & (pred["valid"] == 1)).values, (y0, y1, x0, x1))
        row = int(scored.sum(1).argmax())
        cols = np.nonzero(scored[row])[0]
        ys, xs = pred.y.values, pred.x.values
        start, end = (ys[y0 + row], xs[x0 + cols[0]]), (ys[y0 + row], xs[x0 + cols[-1]])
        return line_points(start, end) if crs in ("", "EPSG:4326") else straight_line(start, end)
    start, end = run["transect_start"], run["transect_end"]
    y, x, km = (line_points(start, end) if crs in ("", "EPSG:4326") else line_points_projected(start, end, crs))
    inside = lambda v, c: c.min() <= v <= c.max()  # noqa: E731
    for point, py, px in ((start, y[0], x[0]), (end, y[-1], x[-1])):
        if not (inside(py, pred.y.values) and inside(px, pred.x.values)):
            raise GeonbError(f"transect point {point!r} is outside the grid; pick [lat, lon] points inside it.")
    return y, x, km


def transects(run) -> Report:
    """Values and roughness (5×5 moving std) along a line for truth, baselines and models."""
    pred = _predictions(run)
    y, x, km = _line(run, pred)
    names = ["truth"] + [n for n, _ in _methods(pred)]
    values = {("truth" if nm == "truth" else _label(nm)): sample_line(pred[nm], y, x) for nm in names}
    rough = {("truth" if nm == "truth" else _label(nm)): sample_line(pred[nm].copy(data=roughness(pred[nm].values)), y, x)
             for nm in names}
    scored = sample_line(((pred["split"] == 2) & (pred["valid"] == 1)), y, x).astype(bool)
    units = pred.attrs.get("units", "")
    fig = plots.transect_plot(km, values, rough, run.figure("06_transect"), units=units, shade=~scored,
                              shade_label="not scored (train/val or masked)",
                              title=f"transect across a rough test block ({len(km)} points, {km[-1]:.0f} km); "
                              "shaded: not scored")
    table = pd.DataFrame({k: {"RMSE along line (scored cells)": rmse(v[scored], values["truth"][scored]),
                              "mean roughness": float(np.nanmean(rough[k][scored]))} for k, v in values.items()}).T
    return Report("06 transect (test region)", "Top: the field; bottom: roughness = 5×5 moving std, which a model "
                  "must restore and a smooth interpolation cannot.", {"along the transect": table}, [fig])
