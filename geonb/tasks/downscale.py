"""The ``downscale`` task: super-resolve a coarsened elevation grid (srcnn, rsrcnn, srgan).

Data: a complete high-res grid (default ``jacksboro``, a real SRTM DEM shipped with
matplotlib), split into three column bands — train | val | test — so the test region is
never seen in training or tuning. Low-res inputs are block averages of the target.
Optional conditioning layers (``surface``, ``velocity``, DeepBedMap-style) are derived
from the grid with geonb.terrain; ``synthetic`` extra fractal-terrain scenes can be
mixed into training (never into validation or test).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import xarray as xr

from .. import methods, plots, terrain
from ..baselines import bicubic
from ..data import load_field
from ..errors import GeonbError
from ..io import open_dataset, refuse_input_as_output, write_netcdf
from ..losses import DEEPBEDMAP_WEIGHTS
from ..metrics import rmse, roughness
from ..metrics.superres import radial_spectrum, sr_scores
from ..modelfile import TrainedModel
from ..normalise import Normaliser
from ..params import COMMON, Param
from ..predict import Predictor
from ..registry import get_arch, list_archs
from ..report import Report
from ..resample import block_mean, check_factor, check_finite, coarsen, crop_to_multiple, refine_coords
from ..training import pick_device
from ..transect import line_points, sample_line
from . import Task

PARAMS = COMMON.override(
    data={"default": "jacksboro", "help": "embedded grid (jacksboro, topobathy, synthetic) or NetCDF/zarr path"},
    epochs={"quick": 2},
    batch_size={"default": 16, "quick": 4},
    transect_start={"help": "[lat, lon] start of the 06 line; None: across the test band"},
    transect_end={"help": "[lat, lon] end of the 06 line; None: across the test band"},
) + (
    Param("factor", int, 4, "scale factor: 2, 4, 8 or 16", "simulate"),
    Param("cond", str, "", "conditioning layers, e.g. 'surface,velocity@2' (@r: resolution × low-res grid)"),
    Param("synthetic", int, 8, "extra 256×256 synthetic terrain scenes mixed into training (0 = real only)", quick=0),
    Param("patch_lr", int, 16, "training tile in low-res cells", quick=8),
    Param("steps_per_epoch", int, 40, "batches per epoch", quick=4),
    Param("n_blocks", int, 12, "srgan: residual-in-residual dense blocks (DeepBedMap: 12)", quick=1),
    Param("nf", int, 64, "srgan: feature maps", quick=16),
    Param("beta", float, 0.2, "srgan: residual scaling"),
    Param("w_content", float, DEEPBEDMAP_WEIGHTS["w_content"], "srgan: weight of the L1 content loss (DeepBedMap)"),
    Param("w_adversarial", float, DEEPBEDMAP_WEIGHTS["w_adversarial"], "srgan: weight of the adversarial loss"),
    Param("w_topographic", float, DEEPBEDMAP_WEIGHTS["w_topographic"], "srgan: weight of the topographic loss"),
    Param("w_structural", float, DEEPBEDMAP_WEIGHTS["w_structural"], "srgan: weight of 1 − SSIM (DeepBedMap)"),
    Param("tune_trials", int, 0, "> 0: optuna search (TPE + Hyperband) on the val band before training"),
    Param("tune_epochs", int, 6, "epochs per optuna trial at most"),
)
LAYERS = ("surface", "velocity")
QUICK_CROP = (128, 192)
HPARAMS = ("n_blocks", "nf", "beta")  # network settings; each arch's generator takes those it has


# ---------------------------------------------------------------- helpers
def _load(run) -> xr.Dataset:
    path = run.path("data.nc")
    if not path.exists():
        raise GeonbError(f"{path} is missing; run 01_data_prep (or run.step('data_prep')) first.")
    return open_dataset(path)


def _band(ds, name) -> xr.Dataset:
    return ds.isel(lon=np.nonzero(ds["split"].values == ("train", "val", "test").index(name))[0])


def _coarse_coords(ds, factor):
    return ds.lat.values.reshape(-1, factor).mean(1), ds.lon.values.reshape(-1, factor).mean(1)


def _hparams(run) -> dict:
    """The generator settings among ``HPARAMS`` that the run's arch takes."""
    return run.arch.accepts("generator", {k: run[k] for k in HPARAMS})


def _scene(ds, norm, cond_norms, cond, name) -> Scene:
    return Scene(norm(ds["elevation"].values), [n(ds[c].values) for (c, _), n in zip(cond, cond_norms)], name)


def _synthetic_scenes(n, seed, cond) -> list[Scene]:
    """Fractal terrain, each scene standardised by its own statistics (shape, not level)."""
    scenes = []
    for k in range(n):
        t = terrain.terrain_dataset(256, 256, seed=10_000 + 97 * seed + k)
        std = lambda a: (a - a.mean()) / a.std()  # noqa: E731
        scenes.append(Scene(std(t["elevation"].values), [std(t[c].values) for c, _ in cond], f"synthetic {k}"))
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
    check_finite(hr, f"the target grid {name!r}")
    if run["quick"]:
        ny, nx = QUICK_CROP
        y0, x0 = max(0, (hr.shape[0] - ny) // 2), max(0, (hr.shape[1] - nx) // 2)
        hr, lat, lon = hr[y0:y0 + ny, x0:x0 + nx], lat[y0:y0 + ny], lon[x0:x0 + nx]
    # Multiples of 16 so every factor (2..16) tiles the grid and each band exactly.
    hr = crop_to_multiple(hr, 16)
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
        run.figure("01_data"), ncols=3, units=units)
    return Report(f"01 data: {name} {ny}×{nx}",
                  "Column bands train | val | test (white lines mark the borders); the test band is never "
                  "used for training or tuning.", {"regions": sizes}, [fig])


# ---------------------------------------------------------------- 02
def simulate(run) -> Report:
    """Degradation examples: block-averaged low-res grid and its bicubic upsampling."""
    ds = _load(run)
    f = check_factor(run["factor"])
    test = _band(ds, "test")
    truth = test["elevation"].values.astype("float64")
    rows = {}
    for g in (2, 4, 8, 16):
        lr = coarsen(truth, g)
        rows[f"×{g}"] = {"low-res shape": f"{lr.shape[0]}×{lr.shape[1]}", "bicubic RMSE": rmse(bicubic(lr, g), truth)}
    lr = coarsen(truth, f)
    up = bicubic(lr, f)
    clat, clon = _coarse_coords(test, f)
    units = ds.attrs.get("units", "")
    fig = plots.map_panels(
        [("truth (test band)", truth, test.lat, test.lon, "elevation"),
         (f"low-res: {f}×{f} block mean", lr, clat, clon, "elevation"),
         (f"bicubic ×{f}", up, test.lat, test.lon, "elevation"),
         ("bicubic − truth", up - truth, test.lat, test.lon, "diff")],
        run.figure(f"02_degradation_x{f}"), ncols=4, units=units)
    return Report(f"02 degradation ×{f}", "Low-res inputs are block averages of the target; bicubic is the baseline.",
                  {"bicubic on the test band": pd.DataFrame(rows).T}, [fig])


# ---------------------------------------------------------------- 03
@dataclass
class Scene:
    """One complete high-res grid (normalised) with its conditioning grids at the same resolution."""
    hr: np.ndarray
    conds: list = field(default_factory=list)
    name: str = ""

    def tensor(self) -> torch.Tensor:
        return torch.as_tensor(np.stack([self.hr, *self.conds]).astype("float32"))


def split_tensor(hr_stack: torch.Tensor, factor: int, cond_res) -> tuple:
    """(B, 1+nc, H, W) high-res stack → a batch ``((lr, [cond at its r]), hr, None)``."""
    hr = hr_stack[:, :1]
    lr = block_mean(hr, factor)
    conds = [block_mean(hr_stack[:, 1 + i: 2 + i], factor // r) for i, r in enumerate(cond_res)]
    return (lr, conds), hr, None


def patch_sampler(scenes: list[Scene], factor: int, cond_res, patch_lr: int, batch_size: int, steps: int, seed: int,
                  device="cpu"):
    """``batches(epoch)`` for training: random factor-aligned high-res patches, split into batches."""
    size = patch_lr * factor
    for s in scenes:
        if min(s.hr.shape) < size:
            raise GeonbError(f"grid {s.name or ''} of {s.hr.shape[0]}×{s.hr.shape[1]} is smaller than one training "
                             f"tile ({size}×{size} = {patch_lr} low-res px × factor {factor}); use a smaller "
                             "patch_lr, a smaller factor or a larger grid.")
    stacks = [s.tensor() for s in scenes]
    weights = np.array([s.hr.size for s in scenes], float)

    def batches(epoch: int):
        rng = np.random.default_rng([seed, epoch])
        for _ in range(steps):
            items = []
            for k in rng.choice(len(stacks), batch_size, p=weights / weights.sum()):
                _, ny, nx = stacks[k].shape
                i = rng.integers(0, (ny - size) // factor + 1) * factor
                j = rng.integers(0, (nx - size) // factor + 1) * factor
                items.append(stacks[k][:, i:i + size, j:j + size])
            yield split_tensor(torch.stack(items).to(device), factor, cond_res)

    return batches


def train_model(arch: str, factor: int, cond_res, hparams: dict, scenes: list[Scene], val: Scene, ckpt_dir, *,
                epochs: int, steps: int, batch_size: int, lr: float, patch_lr: int, patience: int, seed: int,
                losses: dict | None = None, on_epoch=None, units: float = 1.0, device="cpu"):
    """Train ``arch`` on random patches of the ``scenes``; early-stop on the RMSE of ``val``.

    ``on_epoch(epoch, val_rmse)`` is called after each validation (optuna pruning).
    ``units``: physical units (e.g. metres) per normalised unit (the normaliser's std), for
    the DeepBedMap loss; ``losses``: its weights (``w_content``…, ``w_adversarial``; default DeepBedMap's).
    Returns (method, history); the trained generator is ``method.generator``.
    """
    factor, cond_res = check_factor(factor), tuple(cond_res)
    spec = get_arch(arch)
    w = {**DEEPBEDMAP_WEIGHTS, **(losses or {})}
    method = methods.build(spec, {"factor": factor, "cond_res": cond_res, **hparams}, lr=lr, seed=seed, device=device,
                           adv_weight=w.pop("w_adversarial", 0.0), content_args={"factor": factor, "units": units, **w})
    batches = patch_sampler(scenes, factor, cond_res, patch_lr, batch_size, steps, seed, device)
    (val_lr, val_conds), val_hr, _ = split_tensor(val.tensor()[None].to(device), factor, cond_res)
    count = [0]

    def validate():
        """RMSE (normalised) of the whole val region at the prediction's resolution (stagewise: per stage)."""
        pred = method.predict((val_lr, val_conds))
        score = float(torch.sqrt(torch.nn.functional.mse_loss(pred, block_mean(val_hr, val_hr.shape[-1] // pred.shape[-1]))))
        count[0] += 1
        if on_epoch is not None:
            on_epoch(count[0], score)
        return {"val_loss": score}

    history = method.fit(batches, validate, ckpt_dir, epochs=epochs, patience=patience, seed=seed, desc=arch)
    return method, history


def save_model(path, method, arch: str, hparams: dict, var: str, cond, norm: Normaliser, cond_norms,
               trained_on: str, history):
    """The model file: generator settings, normalisers of the target and each conditioning grid."""
    arch_args = {"factor": method.generator.factor, "cond_res": [int(r) for _, r in cond], **hparams}
    norms = {"target": norm, **{f"cond {n}": cn for (n, _), cn in zip(cond, cond_norms)}}
    model = TrainedModel("downscale", arch, arch_args, method.weights(), norms,
                         inputs={"variable": str(var), "cond": [n for n, _ in cond]},
                         info={"trained_on": str(trained_on), "history": history})
    return model.save(path)


def _training_data(run, ds, cond):
    train, val = _band(ds, "train"), _band(ds, "val")
    norm = Normaliser.fit(train["elevation"].values)
    cond_norms = [Normaliser.fit(train[c].values) for c, _ in cond]
    scenes = [_scene(train, norm, cond_norms, cond, "train band")] + _synthetic_scenes(run["synthetic"], run["seed"], cond)
    return scenes, _scene(val, norm, cond_norms, cond, "val band"), norm, cond_norms


def parse_cond(spec, factor: int) -> list[tuple[str, int]]:
    """``"surface,velocity@2"`` → [("surface", factor), ("velocity", 2)].

    ``@r`` is the conditioning grid's resolution as a multiple of the low-res grid
    (a power of 2 ≤ factor); without it the grid is used at the target resolution.
    """
    if isinstance(spec, (list, tuple)):
        spec = ",".join(spec)
    out = []
    for item in filter(None, (s.strip() for s in str(spec or "").split(","))):
        name, _, res = item.partition("@")
        r = int(res) if res.isdigit() else (factor if not res else -1)
        if r < 1 or r > factor or r & (r - 1):
            raise GeonbError(f"conditioning {item!r}: resolution {res!r} must be a power of 2 between 1 and "
                             f"the factor {factor} (write name@r, e.g. velocity@2).")
        out.append((name, r))
    return out


def _cond(run):
    cond = parse_cond(run["cond"], check_factor(run["factor"]))
    unknown = [c for c, _ in cond if c not in LAYERS]
    if unknown:
        raise GeonbError(f"conditioning layer(s) {unknown} unknown; this task derives {', '.join(LAYERS)}.")
    return cond


def train(run) -> Report:
    """Train the run's arch (after an optuna search when tune_trials > 0); save the model file."""
    arch, f = run["arch"], check_factor(run["factor"])
    name = f"{arch}_x{f}"
    ds, cond = _load(run), _cond(run)
    scenes, val, norm, cond_norms = _training_data(run, ds, cond)
    hp, lr, batch = _hparams(run), run["lr"], run["batch_size"]
    device = pick_device(run["device"])
    settings = dict(steps=run["steps_per_epoch"], patch_lr=run["patch_lr"], patience=run["patience"], seed=run["seed"],
                    losses={k: run[k] for k in ("w_content", "w_adversarial", "w_topographic", "w_structural")},
                    units=float(norm.std), device=device)
    tables, figures = {}, []
    if run["tune_trials"] > 0:
        from .. import tuning

        searched = run.arch.accepts("generator", {"n_blocks": 0, "beta": 0})

        def objective(params, on_epoch, trial_dir):
            hp_t = {**hp, **{k: params[k] for k in searched if k in params}}
            _, hist = train_model(arch, f, [r for _, r in cond], hp_t, scenes, val, trial_dir,
                                  epochs=run["tune_epochs"], batch_size=params["batch_size"], lr=params["lr"],
                                  on_epoch=on_epoch, **settings)
            return min(h["val_loss"] for h in hist)

        best, trials, fig = tuning.tune(objective, run.checkpoint_dir(f"tuning_{name}"), run["tune_trials"],
                                        seed=run["seed"], max_epochs=run["tune_epochs"], search_blocks=bool(searched))
        lr, batch = best["lr"], best["batch_size"]
        hp.update({k: best[k] for k in searched if k in best})
        tables["optuna trials (val RMSE, normalised)"] = trials
        figures.append(fig)
    method, history = train_model(arch, f, [r for _, r in cond], hp, scenes, val, run.checkpoint_dir(name),
                                  epochs=run["epochs"], batch_size=batch, lr=lr, **settings)
    trained_on = f"{_data_id(ds)} train band + {run['synthetic']} synthetic scenes"
    path = save_model(run.model_path(name), method, arch, hp, "elevation", cond, norm, cond_norms, trained_on, history)
    figures.insert(0, plots.loss_curves(history, run.figure(f"03_loss_{name}"),
                                        title=f"{arch} ×{f} (val loss = val-band RMSE, normalised)"))
    tables["history (last epochs)"] = pd.DataFrame(history).tail(5).set_index("epoch")
    return Report(f"03 train {arch} ×{f}", f"Model file: `{path}` ({trained_on}; lr {lr:.3g}, "
                  f"batch {batch}, {hp or 'default SRCNN'}).", tables, figures)


# ---------------------------------------------------------------- prediction
def predict_grid(predictor: Predictor, lr: np.ndarray, conds=(), *, halo=None, tile=None) -> np.ndarray:
    """Physical-units low-res grid (+ conditioning grids at their resolutions) → high-res grid (float64)."""
    model = predictor.model
    lr = check_finite(lr, "the low-res input grid")
    names, cond_res = model.inputs["cond"], model.arch_args["cond_res"]
    if len(conds) != len(names):
        raise GeonbError(f"this model needs {len(names)} conditioning grid(s) ({', '.join(names) or 'none'}); "
                         f"got {len(conds)}. Pass them with --cond FILE:VAR.")
    norm = model.norms["target"]
    cs = []
    for c, name, r in zip(conds, names, cond_res):
        c = check_finite(c, f"conditioning grid {name!r}")
        if c.shape != (lr.shape[0] * r, lr.shape[1] * r):
            raise GeonbError(f"conditioning grid {name!r} is {c.shape}; expected {(lr.shape[0] * r, lr.shape[1] * r)} "
                             f"(the low-res grid × {r}).")
        cs.append(predictor.tensor(model.norms[f"cond {name}"](c))[None, None])
    out = predictor((predictor.tensor(norm(lr))[None, None], cs), tile=tile, halo=halo, batch=1)["mean"]
    return out[0].astype("float64") * norm.std + norm.mean


# ---------------------------------------------------------------- 04
def _evaluate(run) -> xr.Dataset:
    """Predict the test band with every model in this run dir trained on this data (+ bicubic)."""
    ds = _load(run)
    test = _band(ds, "test")
    truth = test["elevation"].values.astype("float64")
    models = run.trained()
    if not models:
        raise GeonbError(f"no model in {run.path('models')}; run 03_train first.")
    out = xr.Dataset({"truth": (("lat", "lon"), truth)}, coords={"lat": test.lat, "lon": test.lon})
    for name, path in models.items():
        model = TrainedModel.load(path, task="downscale")
        if not model.info["trained_on"].startswith(_data_id(ds)):
            print(f"[geonb] skipping {name}: trained on {model.info['trained_on']}, not this data")
            continue
        f = model.arch_args["factor"]
        lr = coarsen(truth, f)
        conds = [coarsen(test[c].values.astype("float64"), f // r)
                 for c, r in zip(model.inputs["cond"], model.arch_args["cond_res"])]
        out[f"bicubic_x{f}"] = (("lat", "lon"), bicubic(lr, f))
        out[name] = (("lat", "lon"), predict_grid(Predictor(model), lr, conds))
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
    write_netcdf(pred, run.prediction_path("test_band"))
    truth = pred["truth"].values
    rows = []
    for name, f in _methods(pred):
        scores = sr_scores(pred[name].values, truth, coarsen(truth, f), f)
        base = rmse(pred[f"bicubic_x{f}"].values, truth)
        rows.append({"method": name.rsplit("_x", 1)[0], "factor": f, "RMSE": scores["rmse"], "RMSE bicubic": base,
                     "ratio to bicubic": scores["rmse"] / base, "PSNR dB": scores["psnr"], "SSIM": scores["ssim"],
                     "topo consistency": scores["topo_consistency"], "spectrum ratio": scores["spectrum_ratio"]})
    table = pd.DataFrame(rows).set_index(["method", "factor"])
    table.to_csv(run.metrics_path("test_band"))
    units, lat, lon = pred.attrs.get("units", ""), pred.lat, pred.lon
    panels = [("truth", truth, lat, lon, "elevation")]
    panels += [(_label(n), pred[n].values, lat, lon, "elevation") for n, _ in _methods(pred)]
    panels += [(f"{_label(n)} − truth", pred[n].values - truth, lat, lon, "diff") for n, _ in _methods(pred)]
    maps = plots.map_panels(panels, run.figure("04_maps"), ncols=len(_methods(pred)) + 1, units=units,
                            suptitle="held-out test band")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    k, p = radial_spectrum(truth)
    ax.loglog(k[1:], p[1:], "k", lw=2, label="truth")
    for n, _ in _methods(pred):
        ax.loglog(k[1:], radial_spectrum(pred[n].values)[1][1:], label=_label(n))
    for f in sorted({f for _, f in _methods(pred)}):
        ax.axvline(0.5 / f, color="0.6", ls=":", lw=1)
    ax.set(xlabel="wavenumber (cycles / high-res px); dotted: low-res Nyquist", ylabel="power",
           title="radially averaged power spectrum, test band")
    ax.legend(fontsize=7)
    spec = plots.save_figure(fig, run.figure("04_spectra"))
    return Report("04 error maps (held-out test band)",
                  "RMSE, PSNR, SSIM against the truth; topo consistency = RMSE between the block mean of the "
                  "output and the low-res input; spectrum ratio = fine-scale power (above the low-res Nyquist) "
                  "recovered, output / truth.", {"metrics": table}, [maps, spec])


# ---------------------------------------------------------------- 05
def _predictions(run) -> xr.Dataset:
    run.require("error_maps")
    return open_dataset(run.prediction_path("test_band"))


def scatter_plots(run) -> Report:
    pred = _predictions(run)
    series = {_label(n): (pred["truth"].values, pred[n].values) for n, _ in _methods(pred)}
    fig = plots.scatter_density(series, run.figure("05_scatter"), units=pred.attrs.get("units", ""),
                                title="predicted vs true elevation, test band")
    return Report("05 scatter (test band)", "Binned mean and 95 % interval of the prediction per true-value bin.",
                  {}, [fig])


# ---------------------------------------------------------------- 06
def _point(point, default, lat, lon):
    """A [lat, lon] transect end inside the test band (``default`` when None)."""
    if point is None:
        return default
    la, lo = (float(v) for v in point)
    if not (min(lat) <= la <= max(lat) and min(lon) <= lo <= max(lon)):
        raise GeonbError(f"transect point {point!r} is outside the test band (lat {min(lat):.4f}..{max(lat):.4f}, "
                         f"lon {min(lon):.4f}..{max(lon):.4f}); pick points inside it.")
    return la, lo


def transects(run) -> Report:
    """Elevation and roughness (5×5 moving std) along a line for truth, bicubic and models."""
    pred = _predictions(run)
    lat, lon = pred.lat.values, pred.lon.values
    start = _point(run["transect_start"], (lat[len(lat) // 5], lon[0]), lat, lon)
    end = _point(run["transect_end"], (lat[4 * len(lat) // 5], lon[-1]), lat, lon)
    line_lat, line_lon, km = line_points(start, end)
    names = ["truth"] + [n_ for n_, _ in _methods(pred)]
    values = {_label(nm): sample_line(pred[nm], line_lat, line_lon) for nm in names}
    rough = {_label(nm): sample_line(pred[nm].copy(data=roughness(pred[nm].values)), line_lat, line_lon) for nm in names}
    units = pred.attrs.get("units", "")
    fig = plots.transect_plot(km, values, rough, run.figure("06_transect"), units=units,
                              title=f"transect ({start[0]:.4f}, {start[1]:.4f}) → ({end[0]:.4f}, {end[1]:.4f})")
    table = pd.DataFrame({k: {"RMSE along line": rmse(v, values["truth"]),
                              "mean roughness": float(np.mean(rough[k]))} for k, v in values.items()}).T
    return Report("06 transect (test band)", "Top: elevation; bottom: roughness = 5×5 moving std.",
                  {"along the transect": table}, [fig])



# ---------------------------------------------------------------- command line: geonb train, geonb predict
def _cond_on_grid(spec: str, lat, lon, factor: int):
    """``FILE:VAR[@r]`` → (name, r, values interpolated onto the (lat, lon) cell centres)."""
    path, sep, var = spec.rpartition(":")
    if not sep or not path or not var:
        raise GeonbError(f"--cond {spec!r}: write FILE:VAR (e.g. surface.nc:elevation), optionally FILE:VAR@r.")
    [(var, r)] = parse_cond(var, factor)
    da = load_field(path, var).isel(time=0)
    for axis, want in (("lat", lat), ("lon", lon)):
        have = da[axis].values
        half = abs(np.diff(have).mean()) / 2 if have.size > 1 else 0
        if min(want) < have.min() - half or max(want) > have.max() + half:
            raise GeonbError(f"conditioning grid {spec!r} covers {axis} {have.min():.4f}..{have.max():.4f} but the "
                             f"target needs {min(want):.4f}..{max(want):.4f}; give a grid that covers the target's extent.")
    # Coverage is checked to half a cell: clip the last half cell onto the edge centres.
    values = da.interp(lat=np.clip(lat, da.lat.min().item(), da.lat.max().item()),
                       lon=np.clip(lon, da.lon.min().item(), da.lon.max().item())).values
    return var, r, check_finite(values, f"conditioning grid {spec!r} on the target grid")


def cli_train(args) -> int:
    """``geonb train``: coarsen the high-res grid, train on its west 85 %, validate on the rest."""
    if get_arch(args.arch).task != "downscale":
        raise GeonbError(f"`geonb train` trains downscaling archs ({', '.join(_archs())}); {args.arch!r} is a "
                         f"{get_arch(args.arch).task} arch: use `geonb run -p arch {args.arch}` or the notebooks.")
    out = refuse_input_as_output(args.model, [args.data, *(c.rpartition(":")[0] for c in args.cond or [])], "--model")
    f = check_factor(args.factor)
    da = load_field(args.data, args.var).isel(time=0)
    hr = crop_to_multiple(check_finite(da.values.astype("float64"), f"{args.data}:{da.name}"), f)
    lat, lon = da.lat.values[: hr.shape[0]], da.lon.values[: hr.shape[1]]
    conds = [_cond_on_grid(spec, lat, lon, f) for spec in args.cond or []]
    n_val = max(f * args.patch, int(0.15 * hr.shape[1]) // f * f)
    if hr.shape[1] - n_val < f * args.patch:
        raise GeonbError(f"the grid is {hr.shape[0]}×{hr.shape[1]}: too small for a training band and a validation band "
                         f"of {f * args.patch} columns each (patch {args.patch} × factor {f}). Use --patch smaller or a larger grid.")
    norm = Normaliser.fit(hr[:, :-n_val])
    cond_norms = [Normaliser.fit(v[:, :-n_val]) for _, _, v in conds]
    scene = lambda sl, name: Scene(norm(hr[:, sl]), [n(v[:, sl]) for (_, _, v), n in zip(conds, cond_norms)], name)  # noqa: E731
    hp = get_arch(args.arch).accepts("generator", {"n_blocks": args.n_blocks, "nf": args.nf, "beta": args.beta})
    method, history = train_model(
        args.arch, f, [r for _, r, _ in conds], hp, [scene(slice(0, -n_val), "train")], scene(slice(-n_val, None), "val"),
        out.with_name(out.stem + "_checkpoints"), epochs=args.epochs, steps=args.steps, batch_size=args.batch_size,
        lr=args.lr or get_arch(args.arch).lr, patch_lr=args.patch, patience=args.patience, seed=args.seed,
        units=float(norm.std), device=pick_device(args.device))
    save_model(out, method, args.arch, hp, str(da.name), [(n, r) for n, r, _ in conds], norm, cond_norms,
               f"{args.data} {hr.shape[0]}x{hr.shape[1]}", history)
    print(f"wrote {out}")
    return 0


def predict_file(model: TrainedModel, args) -> xr.Dataset:
    """``geonb predict`` for a downscaling model: a low-res grid in, the grid × factor out (CF NetCDF)."""
    f = model.arch_args["factor"]
    da = load_field(args.input, args.var).isel(time=0)
    lr = check_finite(da.values.astype("float64"), f"{args.input}:{da.name}")
    conds = [_cond_on_grid(spec, refine_coords(da.lat.values, r), refine_coords(da.lon.values, r), r)[2]
             for spec, r in zip(args.cond or [], model.arch_args["cond_res"])]
    hr = predict_grid(Predictor(model), lr, conds, tile=args.tile or 64)
    lat, lon = refine_coords(da.lat.values, f), refine_coords(da.lon.values, f)
    name = str(da.name or model.inputs["variable"])
    out = xr.DataArray(
        hr.astype("float32"), dims=("lat", "lon"), name=name,
        coords={"lat": ("lat", lat, {"units": "degrees_north", "standard_name": "latitude"}),
                "lon": ("lon", lon, {"units": "degrees_east", "standard_name": "longitude"})},
        attrs={"units": da.attrs.get("units", ""), "long_name": f"{da.attrs.get('long_name', name)}, super-resolved ×{f}"},
    ).to_dataset()
    out.attrs.update(Conventions="CF-1.8", title=f"geonb {model.arch} ×{f} downscaling of {args.input}",
                     source=f"geonb model {args.model} ({model.arch}, trained on {model.info['trained_on']})")
    return out


def _archs() -> list[str]:
    return [a.name for a in list_archs() if a.task == "downscale"]


def add_cli(subparsers) -> None:
    """``geonb train``: a downscaling model from a high-res grid (it makes the low-res input itself)."""
    t = subparsers.add_parser("train", help="train a downscaling model on a high-res grid (makes the low-res input itself)")
    t.add_argument("--arch", required=True, help=f"one of {', '.join(_archs())}")
    t.add_argument("--data", required=True, help="high-res NetCDF/zarr file or embedded dataset name")
    t.add_argument("--var", default="", help="variable in --data")
    t.add_argument("--factor", type=int, default=4, help="2, 4, 8 or 16")
    t.add_argument("--model", required=True, help="output model file (.pt)")
    t.add_argument("--cond", nargs="*", metavar="FILE:VAR[@r]", help="conditioning grids covering the target")
    t.add_argument("--epochs", type=int, default=30)
    t.add_argument("--steps", type=int, default=40, help="batches per epoch")
    t.add_argument("--batch-size", type=int, default=16)
    t.add_argument("--lr", type=float, help="learning rate (default: the arch's)")
    t.add_argument("--patch", type=int, default=16, help="training tile in low-res px")
    t.add_argument("--patience", type=int, default=5)
    t.add_argument("--n-blocks", type=int, default=12, help="srgan RRDBs")
    t.add_argument("--nf", type=int, default=64, help="srgan feature maps")
    t.add_argument("--beta", type=float, default=0.2, help="srgan residual scaling")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="auto", help="auto (cuda if present), cpu or cuda")
    t.set_defaults(func=cli_train)


TASK = Task(
    "downscale", "super-resolution of coarsened grids (elevation by default)", PARAMS,
    {"data_prep": data_prep, "simulate": simulate, "train": train, "error_maps": error_maps,
     "scatter_plots": scatter_plots, "transects": transects},
    predict_file=predict_file,
)
