"""The ``downscale`` task: super-resolve a coarsened elevation grid (srcnn, rsrcnn, srgan).

Data: a complete high-res grid (default ``jacksboro``, a real SRTM DEM shipped with
matplotlib), split into three column bands — train | val | test — so the test region is
never seen in training or tuning. Low-res inputs are block averages of the target.
Optional conditioning layers (``surface``, ``velocity``, DeepBedMap-style) are derived
from the grid with geonb.terrain; ``synthetic`` extra fractal-terrain scenes can be
mixed into training (never into validation or test).
"""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import xarray as xr
from scipy import ndimage

from .. import plots, superres, terrain
from ..data import load_field
from ..errors import GeonbError
from ..io import open_dataset, write_netcdf
from ..metrics import rmse, roughness
from ..report import Report
from ..tiling import Normaliser

PARAMS = {
    "factor": 4,             # 2, 4, 8 or 16
    "cond": "",              # conditioning layers, e.g. "surface,velocity@2" (@r: resolution × low-res grid)
    "synthetic": 8,          # extra 256×256 synthetic terrain scenes mixed into training (0 = real only)
    "patch": 16,             # training tile in low-res px
    "steps_per_epoch": 40,
    "batch_size": 16,
    "lr": 0.0,               # 0 = the arch's default (1e-3 SRCNN, 1.7e-4 DeepBedMap ESRGAN)
    "n_blocks": 12,          # srgan: residual-in-residual dense blocks (DeepBedMap: 12)
    "nf": 64,                # srgan: feature maps
    "beta": 0.2,             # srgan: residual scaling
    "w_content": 1e-2, "w_adversarial": 2e-2, "w_topographic": 2e-3, "w_structural": 5.25,  # DeepBedMap
    "tune_trials": 0,        # > 0: optuna search (TPE + Hyperband) on the val region before training
    "tune_epochs": 6,
    "transect_start": "",    # "lat,lon"; "" = across the test region
    "transect_end": "",
}
_DATA_KEYS = ("data", "var", "quick", "seed")
STEP_KEYS = {
    "data_prep": _DATA_KEYS,
    "simulate": ("factor",),
    "train": ("arch", "factor", "cond", "synthetic", "patch", "steps_per_epoch", "batch_size", "lr", "n_blocks",
              "nf", "beta", "w_content", "w_adversarial", "w_topographic", "w_structural", "tune_trials",
              "tune_epochs", "epochs", "patience"),
    "error_maps": (),
}
LAYERS = ("surface", "velocity")
QUICK = {"crop": (128, 192), "epochs": 2, "steps": 4, "batch": 4, "patch": 8, "synthetic": 0, "n_blocks": 1, "nf": 16}


# ---------------------------------------------------------------- helpers
def _settings(run) -> dict:
    """Effective training settings (quick mode shrinks everything)."""
    q = run["quick"]
    return {
        "epochs": QUICK["epochs"] if q else int(run["epochs"]),
        "steps": QUICK["steps"] if q else int(run["steps_per_epoch"]),
        "batch_size": QUICK["batch"] if q else int(run["batch_size"]),
        "patch_lr": QUICK["patch"] if q else int(run["patch"]),
        "synthetic": QUICK["synthetic"] if q else int(run["synthetic"]),
        "n_blocks": QUICK["n_blocks"] if q else int(run["n_blocks"]),
        "nf": QUICK["nf"] if q else int(run["nf"]),
    }


def _load(run) -> xr.Dataset:
    path = run.path("data.nc")
    if not path.exists():
        raise GeonbError(f"{path} is missing; run 01_data_prep (or run.step('data_prep')) first.")
    return open_dataset(path)


def _band(ds, name) -> xr.Dataset:
    return ds.isel(lon=np.nonzero(ds["split"].values == ("train", "val", "test").index(name))[0])


def _coarse_coords(ds, factor):
    return ds.lat.values.reshape(-1, factor).mean(1), ds.lon.values.reshape(-1, factor).mean(1)


def _hparams(run, s) -> dict:
    return {"n_blocks": s["n_blocks"], "nf": s["nf"], "beta": float(run["beta"])} if run["arch"] == "srgan" else {}


def _scene(ds, norm, cond_norms, cond, name) -> superres.Scene:
    return superres.Scene(norm(ds["elevation"].values), [n(ds[c].values) for (c, _), n in zip(cond, cond_norms)], name)


def _synthetic_scenes(n, seed, cond) -> list[superres.Scene]:
    """Fractal terrain, each scene standardised by its own statistics (shape, not level)."""
    scenes = []
    for k in range(n):
        t = terrain.terrain_dataset(256, 256, seed=10_000 + 97 * seed + k)
        std = lambda a: (a - a.mean()) / a.std()  # noqa: E731
        scenes.append(superres.Scene(std(t["elevation"].values), [std(t[c].values) for c, _ in cond], f"synthetic {k}"))
    return scenes


def _data_id(ds) -> str:
    return f"{ds.attrs.get('source_name')} {ds.sizes['lat']}x{ds.sizes['lon']}"


# ---------------------------------------------------------------- 01
def data_prep(run) -> Report:
    """Load the high-res grid, derive conditioning layers, split into train|val|test bands."""
    name = run["data"] or "jacksboro"
    if name == "synthetic":
        ds = terrain.terrain_dataset(344, 400, seed=int(run["seed"]))
        hr, lat, lon, units = ds["elevation"].values, ds.lat.values, ds.lon.values, "m"
    else:
        da = load_field(name, run["var"]).isel(time=0)
        hr, lat, lon, units = da.values.astype("float64"), da.lat.values, da.lon.values, da.attrs.get("units", "")
    superres.check_finite(hr, f"the target grid {name!r}")
    if run["quick"]:
        ny, nx = QUICK["crop"]
        y0, x0 = max(0, (hr.shape[0] - ny) // 2), max(0, (hr.shape[1] - nx) // 2)
        hr, lat, lon = hr[y0:y0 + ny, x0:x0 + nx], lat[y0:y0 + ny], lon[x0:x0 + nx]
    # Multiples of 16 so every factor (2..16) tiles the grid and each band exactly.
    hr = superres.crop_to_multiple(hr, 16)
    ny, nx = hr.shape
    lat, lon = lat[:ny], lon[:nx]
    if ny < 64 or nx < 96:
        raise GeonbError(f"the grid is {ny}×{nx} after cropping to multiples of 16; downscaling needs at least "
                         "64×96 cells (train, val and test bands). Use a larger grid.")
    n_test = max(16, int(round(0.24 * nx / 16)) * 16)
    n_val = max(16, int(round(0.12 * nx / 16)) * 16)
    split = np.r_[np.zeros(nx - n_test - n_val), np.ones(n_val), 2 * np.ones(n_test)].astype("int8")
    surface = terrain.surface_layer(hr)
    ds = xr.Dataset(
        {"elevation": (("lat", "lon"), hr.astype("float32"), {"units": units, "long_name": "target elevation"}),
         "surface": (("lat", "lon"), surface.astype("float32"),
                     {"units": units, "long_name": "smoothed surface (geonb.terrain.surface_layer)"}),
         "velocity": (("lat", "lon"), terrain.velocity_layer(surface, hr).astype("float32"),
                      {"long_name": "log10 slope-driven speed (geonb.terrain.velocity_layer)"}),
         "split": (("lon",), split, {"flag_values": "0 1 2", "flag_meanings": "train val test"})},
        coords={"lat": lat, "lon": lon},
        attrs={"source_name": name, "units": units},
    )
    write_netcdf(ds, run.path("data.nc"))
    # the shared layout (docs/DESIGN.md): what geonb.explore shows for any task
    write_netcdf(ds["elevation"].expand_dims(time=[0]).to_dataset(name="field"), run.path("field.nc"))
    sizes = pd.DataFrame({b: {"columns": int((split == i).sum()), "rows": ny, "cells": int((split == i).sum()) * ny}
                          for i, b in enumerate(("train", "val", "test"))}).T
    fig = plots.map_panels(
        [("elevation (train | val | test)", np.where(np.r_[np.diff(split), 0][None, :] != 0, np.nan, hr), lat, lon, "elevation"),
         ("surface layer", surface, lat, lon, "elevation"),
         ("velocity layer", ds["velocity"].values, lat, lon, "sigma")],
        run.path("figures", "01_data.png"), ncols=3, units=units)
    return Report(f"01 data: {name} {ny}×{nx}",
                  "Column bands train | val | test (white lines mark the borders); the test band is never "
                  "used for training or tuning.", {"regions": sizes}, [fig])


# ---------------------------------------------------------------- 02
def simulate(run) -> Report:
    """Degradation examples: block-averaged low-res grid and its bicubic upsampling."""
    ds = _load(run)
    f = superres.check_factor(run["factor"])
    test = _band(ds, "test")
    truth = test["elevation"].values.astype("float64")
    rows = {}
    for g in (2, 4, 8, 16):
        lr = superres.coarsen(truth, g)
        rows[f"×{g}"] = {"low-res shape": f"{lr.shape[0]}×{lr.shape[1]}",
                         "bicubic RMSE": rmse(superres.bicubic(lr, g), truth)}
    lr = superres.coarsen(truth, f)
    up = superres.bicubic(lr, f)
    clat, clon = _coarse_coords(test, f)
    units = ds.attrs.get("units", "")
    fig = plots.map_panels(
        [("truth (test band)", truth, test.lat, test.lon, "elevation"),
         (f"low-res: {f}×{f} block mean", lr, clat, clon, "elevation"),
         (f"bicubic ×{f}", up, test.lat, test.lon, "elevation"),
         ("bicubic − truth", up - truth, test.lat, test.lon, "diff")],
        run.path("figures", f"02_degradation_x{f}.png"), ncols=4, units=units)
    return Report(f"02 degradation ×{f}", "Low-res inputs are block averages of the target; bicubic is the baseline.",
                  {"bicubic on the test band": pd.DataFrame(rows).T}, [fig])


# ---------------------------------------------------------------- 03
def _training_data(run, ds, s, cond):
    train, val = _band(ds, "train"), _band(ds, "val")
    norm = Normaliser.fit(train["elevation"].values)
    cond_norms = [Normaliser.fit(train[c].values) for c, _ in cond]
    scenes = [_scene(train, norm, cond_norms, cond, "train band")] + _synthetic_scenes(s["synthetic"], run["seed"], cond)
    return scenes, _scene(val, norm, cond_norms, cond, "val band"), norm, cond_norms


def _cond(run):
    cond = superres.parse_cond(run["cond"], superres.check_factor(run["factor"]))
    unknown = [c for c, _ in cond if c not in LAYERS]
    if unknown:
        raise GeonbError(f"conditioning layer(s) {unknown} unknown; this task derives {', '.join(LAYERS)}.")
    return cond


def train(run) -> Report:
    """Train the run's arch (after an optuna search when tune_trials > 0); save the model file."""
    arch, f = run["arch"], superres.check_factor(run["factor"])
    ds, s, cond = _load(run), _settings(run), _cond(run)
    scenes, val, norm, cond_norms = _training_data(run, ds, s, cond)
    hp, lr, batch = _hparams(run, s), float(run["lr"]), s["batch_size"]
    weights = {k: float(run[f"w_{k}"]) for k in superres.LOSS_WEIGHTS}
    stamp = hashlib.sha1(json.dumps(run.stamp("train"), sort_keys=True).encode()).hexdigest()[:8]
    tables, figures = {}, []
    if int(run["tune_trials"]) > 0:
        from .. import tuning

        def objective(params, on_epoch, trial_dir):
            hp_t = {**hp, **{k: params[k] for k in ("n_blocks", "beta") if k in params and hp}}
            _, hist = superres.train_model(
                arch, f, [r for _, r in cond], hp_t, scenes, val, trial_dir, epochs=int(run["tune_epochs"]),
                steps=s["steps"], batch_size=params["batch_size"], lr=params["lr"], patch_lr=s["patch_lr"],
                patience=int(run["patience"]), seed=int(run["seed"]), weights=weights, on_epoch=on_epoch,
                units=float(norm.std))
            return min(h["val_loss"] for h in hist)

        best, trials, fig = tuning.tune(objective, run.path("tuning", f"{arch}_x{f}_{stamp}"), int(run["tune_trials"]),
                                        seed=int(run["seed"]), max_epochs=int(run["tune_epochs"]),
                                        search_blocks=arch == "srgan")
        lr, batch = best["lr"], best["batch_size"]
        hp.update({k: best[k] for k in ("n_blocks", "beta") if k in best and hp})
        tables["optuna trials (val RMSE, normalised)"] = trials
        figures.append(fig)
    model, history = superres.train_model(
        arch, f, [r for _, r in cond], hp, scenes, val, run.path("checkpoints", f"{arch}_x{f}_{stamp}"),
        epochs=s["epochs"], steps=s["steps"], batch_size=batch, lr=lr, patch_lr=s["patch_lr"],
        patience=int(run["patience"]), seed=int(run["seed"]), weights=weights, units=float(norm.std))
    trained_on = f"{_data_id(ds)} train band + {s['synthetic']} synthetic scenes"
    meta = superres.model_meta(arch, f, "elevation", cond, norm, cond_norms, hp, trained_on)
    path = superres.save_model(run.path("models", f"{arch}_x{f}.pt"), model, meta)
    figures.insert(0, plots.loss_curves(history, run.path("figures", f"03_loss_{arch}_x{f}.png"),
                                        title=f"{arch} ×{f} (val loss = val-band RMSE, normalised)"))
    tables["history (last epochs)"] = pd.DataFrame(history).tail(5).set_index("epoch")
    return Report(f"03 train {arch} ×{f}", f"Model file: `{path}` ({trained_on}; lr {lr or superres.DEFAULT_LR[arch]:.3g}, "
                  f"batch {batch}, {hp or 'default SRCNN'}).", tables, figures)


# ---------------------------------------------------------------- 04
def _evaluate(run) -> xr.Dataset:
    """Predict the test band with every model in this run dir trained on this data (+ bicubic)."""
    ds = _load(run)
    test = _band(ds, "test")
    truth = test["elevation"].values.astype("float64")
    models = sorted(run.path("models").glob("*.pt"))
    if not models:
        raise GeonbError(f"no model in {run.path('models')}; run 03_train first.")
    out = xr.Dataset({"truth": (("lat", "lon"), truth)}, coords={"lat": test.lat, "lon": test.lon})
    for path in models:
        model, meta = superres.load_model(path)
        if not meta["trained_on"].startswith(_data_id(ds)):
            print(f"[geonb] skipping {path.name}: trained on {meta['trained_on']}, not this data")
            continue
        f = meta["factor"]
        lr = superres.coarsen(truth, f)
        conds = [superres.coarsen(test[c].values.astype("float64"), f // r) for c, r in zip(meta["cond"], meta["cond_res"])]
        out[f"bicubic_x{f}"] = (("lat", "lon"), superres.bicubic(lr, f))
        out[f"{meta['arch']}_x{f}"] = (("lat", "lon"), superres.predict_grid(model, meta, lr, conds))
    out.attrs.update(units=ds.attrs.get("units", ""), source_name=ds.attrs["source_name"])
    return out


def _label(name: str) -> str:
    """``srcnn_x4`` → ``srcnn ×4`` (figure titles and legends)."""
    return name.replace("_x", " ×")


def _methods(pred: xr.Dataset):
    """(name, factor) of every prediction, bicubic first within each factor."""
    names = [v for v in pred.data_vars if v != "truth"]
    return sorted(((v, int(v.rsplit("_x", 1)[1])) for v in names), key=lambda t: (t[1], not t[0].startswith("bicubic"), t[0]))


def error_maps(run) -> Report:
    """Metric table (model vs bicubic on the held-out test band), maps and spectra."""
    pred = _evaluate(run)
    pred.attrs["methods"] = ",".join(n for n, _ in _methods(pred))
    write_netcdf(pred, run.path("predictions", "test_band.nc"))
    truth = pred["truth"].values
    rows = []
    for name, f in _methods(pred):
        scores = superres.sr_scores(pred[name].values, truth, superres.coarsen(truth, f), f)
        base = rmse(pred[f"bicubic_x{f}"].values, truth)
        rows.append({"method": name.rsplit("_x", 1)[0], "factor": f, "RMSE": scores["rmse"], "RMSE bicubic": base,
                     "ratio to bicubic": scores["rmse"] / base, "PSNR dB": scores["psnr"], "SSIM": scores["ssim"],
                     "topo consistency": scores["topo_consistency"], "spectrum ratio": scores["spectrum_ratio"]})
    table = pd.DataFrame(rows).set_index(["method", "factor"])
    table.to_csv(run.path("eval", "metrics.csv"))
    units, lat, lon = pred.attrs.get("units", ""), pred.lat, pred.lon
    panels = [("truth", truth, lat, lon, "elevation")]
    panels += [(_label(n), pred[n].values, lat, lon, "elevation") for n, _ in _methods(pred)]
    panels += [(f"{_label(n)} − truth", pred[n].values - truth, lat, lon, "diff") for n, _ in _methods(pred)]
    maps = plots.map_panels(panels, run.path("figures", "04_maps.png"), ncols=len(_methods(pred)) + 1, units=units,
                            suptitle="held-out test band")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    k, p = superres.radial_spectrum(truth)
    ax.loglog(k[1:], p[1:], "k", lw=2, label="truth")
    for n, _ in _methods(pred):
        ax.loglog(k[1:], superres.radial_spectrum(pred[n].values)[1][1:], label=_label(n))
    for f in sorted({f for _, f in _methods(pred)}):
        ax.axvline(0.5 / f, color="0.6", ls=":", lw=1)
    ax.set(xlabel="wavenumber (cycles / high-res px); dotted: low-res Nyquist", ylabel="power",
           title="radially averaged power spectrum, test band")
    ax.legend(fontsize=7)
    spec = plots.save_figure(fig, run.path("figures", "04_spectra.png"))
    return Report("04 error maps (held-out test band)",
                  "RMSE, PSNR, SSIM against the truth; topo consistency = RMSE between the block mean of the "
                  "output and the low-res input; spectrum ratio = fine-scale power (above the low-res Nyquist) "
                  "recovered, output / truth.", {"metrics": table}, [maps, spec])


# ---------------------------------------------------------------- 05
def _predictions(run) -> xr.Dataset:
    run.require("error_maps")
    return open_dataset(run.path("predictions", "test_band.nc"))


def scatter_plots(run) -> Report:
    pred = _predictions(run)
    series = {_label(n): (pred["truth"].values, pred[n].values) for n, _ in _methods(pred)}
    fig = plots.scatter_density(series, run.path("figures", "05_scatter.png"), units=pred.attrs.get("units", ""),
                                title="predicted vs true elevation, test band")
    return Report("05 scatter (test band)", "Binned mean and 95 % interval of the prediction per true-value bin.",
                  {}, [fig])


# ---------------------------------------------------------------- 06
def _point(text, default, lat, lon):
    if not str(text).strip():
        return default
    try:
        la, lo = (float(v) for v in str(text).split(","))
    except ValueError:
        raise GeonbError(f"transect point {text!r}: write it as 'lat,lon', e.g. '36.6,-84.1'.") from None
    if not (min(lat) <= la <= max(lat) and min(lon) <= lo <= max(lon)):
        raise GeonbError(f"transect point {text!r} is outside the test band (lat {min(lat):.4f}..{max(lat):.4f}, "
                         f"lon {min(lon):.4f}..{max(lon):.4f}); pick points inside it.")
    return la, lo


def _index(values, coords):
    """Fractional pixel index of coordinate values on a regular (ascending or descending) axis."""
    idx = np.arange(len(coords), dtype=float)
    return np.interp(values, coords, idx) if coords[0] < coords[-1] else np.interp(values, coords[::-1], idx[::-1])


def transects(run) -> Report:
    """Elevation and roughness (5×5 moving std) along a line for truth, bicubic and models."""
    pred = _predictions(run)
    lat, lon = pred.lat.values, pred.lon.values
    start = _point(run["transect_start"], (lat[len(lat) // 5], lon[0]), lat, lon)
    end = _point(run["transect_end"], (lat[4 * len(lat) // 5], lon[-1]), lat, lon)
    # Fractional pixel indices along the line (lat/lon are regular), sampled at ~1 px.
    iy, ix = _index([start[0], end[0]], lat), _index([start[1], end[1]], lon)
    n = int(np.hypot(np.diff(iy), np.diff(ix))[0]) + 1
    yy, xx = np.linspace(iy[0], iy[1], n), np.linspace(ix[0], ix[1], n)
    km = np.hypot((yy - yy[0]) * abs(lat[1] - lat[0]) * 111.2,
                  (xx - xx[0]) * abs(lon[1] - lon[0]) * 111.2 * np.cos(np.deg2rad(lat.mean())))
    names = ["truth"] + [n_ for n_, _ in _methods(pred)]
    sample = lambda g: ndimage.map_coordinates(g, [yy, xx], order=1)  # noqa: E731
    values = {_label(nm): sample(pred[nm].values) for nm in names}
    rough = {_label(nm): sample(roughness(pred[nm].values)) for nm in names}
    units = pred.attrs.get("units", "")
    fig = plots.transect_plot(km, values, rough, run.path("figures", "06_transect.png"), units=units,
                              title=f"transect ({start[0]:.4f}, {start[1]:.4f}) → ({end[0]:.4f}, {end[1]:.4f})")
    table = pd.DataFrame({k: {"RMSE along line": rmse(v, values["truth"]),
                              "mean roughness": float(np.mean(rough[k]))} for k, v in values.items()}).T
    return Report("06 transect (test band)", "Top: elevation; bottom: roughness = 5×5 moving std.",
                  {"along the transect": table}, [fig])
