"""The inpaint task's parameters and notebook steps: patches, hole sets, training, scores per hole set beside
biharmonic, local mean and pixel mean, scatter, transect."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import xarray as xr

from ... import baselines, holes as holesets, methods, metrics, plots
from ...data import load_field
from ...errors import GeonbError
from ...io import write_netcdf, write_text
from ...losses import masked_mse
from ...methods.masked import loss_weights
from ...modelfile import TrainedModel
from ...normalise import Normaliser
from ...params import ALLOW_OUTLIERS, COMMON, Param
from ...report import Report
from ...units import unit_text
from ...tiling import SPLITS, cut_patches, split_blocks
from ...training import run_accelerator
from ...transect import line_points, sample_line
from .infer import PREFILLS, composite, fill_holes, network_inputs, trained_models


PARAMS = COMMON.override(
    data={"default": "hadisst"},
    epochs={"quick": 5},
    transect_start={"help": "[lat, lon] start of the 06 line; None: [30.5, -79.5], across the Gulf Stream"},
    transect_end={"help": "[lat, lon] end of the 06 line; None: [45.5, -40.5]"},
) + (
    ALLOW_OUTLIERS,
    Param("patch", int, 64, "patch size in grid cells", "data_prep", min=16, max=1024),
    Param("overlap", int, 56, "overlap of neighbouring patches (cells)", "data_prep", min=0),
    Param("cut", str, "grid", "grid (sliding, xbatcher) or corners (the four corners, as the seed cut)", "data_prep",
          allowed=("grid", "corners")),
    Param("split_by", str, "auto", "time, region or auto (time when ≥ 5 time steps)", "data_prep",
          allowed=("time", "region", "auto")),
    Param("hole_sets", str, "square,many,varied,clouds", "comma list of square, many, varied, clouds", "simulate"),
    Param("cloud_source", str, "alboran", "cloudy cube for the 'clouds' set: embedded name or NetCDF path", "simulate"),
    Param("hole_weight", float, 0.1, "loss weight on hole pixels (0.1 as in the seed)", min=0),
    Param("ring_weight", float, 1.0, "loss weight on the ring around holes", min=0),
    Param("ring_width", int, 3, "width of that ring (cells)", min=0, max=64),
    Param("adv_weight", float, 1e-3, "ctxgan: weight of the adversarial term", min=0),
    Param("prefill", str, "biharmonic", "holes in the input: biharmonic or local_mean (+ learned residual), "
          "or zero (the seed)", allowed=("biharmonic", "local_mean", "zero")),
    Param("n_examples", int, 2, "test patches mapped per hole set in 04", None, min=0, max=100),
)


TRANSECT = ([30.5, -79.5], [45.5, -40.5])  # lat, lon: across the Gulf Stream


QUICK_PATCHES = {"train": 12, "val": 4, "test": 4}


def data_prep(run) -> Report:
    field = load_field(run["data"], run["var"], run["allow_outliers"])
    split = split_blocks(field, run["patch"], run["seed"], run["split_by"])
    patches = cut_patches(field, split, run["patch"], run["overlap"], run["cut"])
    if run["quick"]:
        rng = np.random.default_rng(run["seed"])
        keep = np.concatenate([rng.permutation(np.nonzero(patches.split.values == s)[0])[:QUICK_PATCHES[s]]
                               for s in SPLITS])
        patches = patches.isel(patch=np.sort(keep))
    missing = [s for s in SPLITS if not (patches.split == s).any()]
    if missing:
        raise GeonbError(f"no patch in the {missing} split(s); use a smaller patch/overlap or more data.")
    norm = Normaliser.fit(patches.field.values[patches.split.values == "train"])
    norm.save(run.path("norm.json"))
    write_netcdf(field.to_dataset(name="field"), run.path("field.nc"))
    write_netcdf(split.to_dataset(), run.path("split.nc"))
    write_netcdf(patches, run.path("patches.nc"))
    counts = pd.DataFrame({"patches": [int((patches.split == s).sum()) for s in SPLITS]}, index=list(SPLITS))
    t = int(patches.time_index[0])
    fig = plots.map_panels(
        [(f"{field.name} ({unit_text(field.attrs.get('units', ''))})", field[t].values, field.lat, field.lon, "sst"),
         ("blocked split: train / val / test", split[t].where(np.isfinite(field[t])).values, field.lat, field.lon, "split")],
        run.figure("01_field_split"), ncols=2, units=field.attrs.get("units", ""),
        domain=np.isfinite(field.values).any(0), gap="sea ice / no value")
    return Report("Data prepared", f"{field.sizes} → {patches.sizes['patch']} patches of {run['patch']}²; "
                  f"normalisation from the training split: mean {norm.mean:.3f}, std {norm.std:.3f}",
                  {"patches per split": counts}, [fig])


def _load_patches(run):
    return xr.open_dataset(run.path("patches.nc")).load(), Normaliser.load(run.path("norm.json"))


def simulate(run) -> Report:
    patches, _ = _load_patches(run)
    valid = np.isfinite(patches.field.values)
    rng = np.random.default_rng(run["seed"] + 1)
    sets, notes = {}, []
    for kind in [s.strip() for s in run["hole_sets"].split(",") if s.strip()]:
        index = np.repeat(np.arange(len(valid)), holesets.PLACEMENTS)
        if kind == "clouds":
            try:
                cube = load_field(run["cloud_source"])
            except GeonbError as exc:
                notes.append(f"'clouds' hole set skipped: {exc}")
                continue
            sea = np.isfinite(cube.values).any(0)
            library = holesets.cloud_library(cube, sea, run["patch"], 200, rng)
            masks = library[rng.integers(len(library), size=len(index))] & valid[index]
        else:
            masks = np.stack([holesets.simulate(valid[i], kind, rng) for i in index])
        sets[kind] = (index, masks)
    drawn_path = run.path("drawn_mask.nc")
    if drawn_path.exists():
        drawn = xr.open_dataarray(drawn_path).load()
        index, masks = holesets.drawn_holes(patches, drawn)
        sets["drawn"] = (index, masks)
        notes.append(f"'drawn' hole set from {drawn_path}: {len(index)} patches touched")
    if not sets:
        raise GeonbError(f"no hole set made from hole_sets={run['hole_sets']!r}; use square, many, varied, clouds.")
    ds = xr.Dataset()
    for kind, (index, masks) in sets.items():
        ds[f"holes_{kind}"] = ((f"sample_{kind}", "y", "x"), masks.astype("uint8"), {"long_name": f"{kind} holes, 1 = hidden"})
        ds[f"patch_{kind}"] = ((f"sample_{kind}",), index)
    ds.attrs["sets"] = ",".join(sets)
    write_netcdf(ds, run.path("holes.nc"))
    table = pd.DataFrame.from_dict({
        kind: {"samples": len(index), "hole fraction of valid pixels": float(masks.sum() / max(valid[index].sum(), 1)),
               **{f"{s} samples": int((patches.split.values[index] == s).sum()) for s in SPLITS}}
        for kind, (index, masks) in sets.items()}, orient="index")
    panels = []
    for kind, (index, masks) in sets.items():
        i = index[0] if len(index) else 0
        shown = np.where(masks[0], np.nan, patches.field.values[i]) if len(index) else patches.field.values[i]
        panels.append((f"{kind}", shown, patches.lat[i], patches.lon[i], "sst", np.isfinite(patches.field.values[i])))
    fig = plots.map_panels(panels, run.figure("02_hole_sets"), ncols=len(panels), gap="hidden",
                           units=patches.field.attrs.get("units", ""), suptitle="one example per hole set")
    return Report("Hole sets simulated", "; ".join(notes), {"hole sets": table}, [fig])


def load_holes(run) -> dict:
    ds = xr.open_dataset(run.path("holes.nc")).load()
    return {k: (ds[f"patch_{k}"].values, ds[f"holes_{k}"].values.astype(bool)) for k in ds.attrs["sets"].split(",")}


def _samples(patches, norm, sets, split, prefill):
    """Inputs, targets and loss-pixel masks of one split, all hole sets together."""
    field = norm(patches.field.values)
    xs, ys, hs = [], [], []
    for index, masks in sets.values():
        sel = patches.split.values[index] == split
        xs.append(network_inputs(field[index[sel]], masks[sel], prefill))
        ys.append(field[index[sel]])
        hs.append(masks[sel])
    return np.concatenate(xs), np.concatenate(ys)[:, None], np.concatenate(hs)[:, None]


def train(run) -> Report:
    patches, norm = _load_patches(run)
    sets = load_holes(run)
    arch, name = run.arch, run["arch"]
    acc = run_accelerator(run)
    device = acc.device
    prefill = run["prefill"]
    data = {s: [torch.from_numpy(a) for a in _samples(patches, norm, sets, s, prefill)] for s in ("train", "val")}
    weights = {s: loss_weights(data[s][2], data[s][1], run["hole_weight"], run["ring_weight"], run["ring_width"])
               for s in data}
    residual = PREFILLS[prefill] is not None
    method = methods.build(arch, {"in_channels": 2}, lr=run["lr"], seed=run["seed"], device=acc,
                           residual=residual, adv_weight=run["adv_weight"], init=run["init"])
    n = len(data["train"][0])

    def batches(epoch):
        g = torch.Generator().manual_seed(run["seed"] * 1000 + epoch)
        order = torch.randperm(n, generator=g)
        for start in range(0, n, run["batch_size"]):
            idx = order[start:start + run["batch_size"]]
            x, y, w = data["train"][0][idx], data["train"][1][idx], weights["train"][idx]
            flips = [d for d, f in zip((-1, -2), torch.rand(2, generator=g)) if f < 0.5]
            if flips:  # flip augmentation: the field has no preferred left/right or up/down locally
                x, y, w = (torch.flip(t, flips) for t in (x, y, w))
            yield x, y, w

    def validate():
        x, y, w = data["val"][0].to(device), data["val"][1].to(device), weights["val"].to(device)
        pred = torch.cat([method.predict(x[i:i + 64]) for i in range(0, len(x), 64)])
        hidden = data["val"][2].to(device)
        return {"val_loss": masked_mse(pred, y, w).item(),
                "val_rmse_holes": masked_mse(pred, y, hidden.float() * torch.isfinite(y)).sqrt().item()}

    history = method.fit(batches, validate, run.checkpoint_dir(name), epochs=run["epochs"], patience=run["patience"],
                         seed=run["seed"], desc=f"train {name}")
    model = TrainedModel("inpaint", name, {"in_channels": 2}, method.weights(), {"field": norm},
                         method_args={"residual": residual},
                         inputs={"variable": patches.attrs["variable"], "prefill": prefill,
                                 "units": {"field": str(patches.field.attrs.get("units", ""))}}, info={"history": history})
    path = model.save(run.model_path(name))
    fig = plots.loss_curves(history, run.figure(f"03_loss_{name}"), f"{name}: {type(method).loss_name}")
    table = pd.DataFrame(history).set_index("epoch")
    return Report(f"Trained {name}", f"{n} training samples; {len(history)} epochs; best val_loss "
                  f"{table.val_loss.min():.4f} (model file {path})", {"history": table.tail(5)}, [fig])


def error_maps(run) -> Report:
    patches, _ = _load_patches(run)
    sets = load_holes(run)
    models = trained_models(run)
    units = unit_text(patches.field.attrs.get("units", ""))
    climatology = pixel_mean(run)
    rows, figures = [], []
    for kind, (index, masks) in sets.items():
        sel = patches.split.values[index] == "test"
        if not sel.any():
            rows.append({"hole set": kind, "method": "(no test samples)"})
            continue
        truth, hidden = patches.field.values[index[sel]], masks[sel]
        observed_input = np.where(hidden, np.nan, truth)
        raw = {name: fill_holes(predictor, truth, hidden) for name, predictor in models.items()}
        filled = {name: composite(truth, hidden, r) for name, r in raw.items()}
        filled["biharmonic"] = baselines.biharmonic(observed_input, hidden)
        filled["local_mean"] = baselines.local_mean(observed_input, hidden)
        if climatology is not None:
            filled["pixel_mean"] = composite(truth, hidden, np.stack(
                [climatology.sel(lat=patches.lat[i], lon=patches.lon[i]).values for i in index[sel]]))
        for method, f in filled.items():
            rows.append({"hole set": kind, "method": method, "n holes": metrics.count(f, truth, hidden),
                         "rmse_raw": metrics.rmse(raw[method], truth) if method in raw else np.nan,
                         "rmse_image": metrics.rmse(f, truth), "rmse_holes": metrics.rmse(f, truth, hidden)})
        saved = xr.Dataset({"truth": (("sample", "y", "x"), truth, {"units": units}),
                            "holes": (("sample", "y", "x"), hidden.astype("uint8"), {"long_name": "1 = hidden"}),
                            **{m: (("sample", "y", "x"), f.astype("float32"), {"units": units, "long_name": f"{m}, holes filled"})
                               for m, f in filled.items()}},
                           coords={"lat": (("sample", "y"), patches.lat.values[index[sel]]),
                                   "lon": (("sample", "x"), patches.lon.values[index[sel]])},
                           attrs={"hole_set": kind, "methods": ",".join(filled)})
        write_netcdf(saved, run.prediction_path(f"{kind}"))
        figures.append(_example_maps(run, kind, patches, index[sel], truth, hidden, raw, filled, units))
    table = pd.DataFrame(rows).set_index(["hole set", "method"])
    write_text(run.metrics_path("holes"), table.to_csv())
    text = (f"RMSE in {units} on the test patches; rmse_holes scores the hidden pixels only, rmse_image the "
            "final image (observed pixels kept), rmse_raw the network output everywhere; pixel_mean (per-pixel "
            "mean of the training days) appears when the split is by time. Models: "
            f"{', '.join(models) or 'none trained yet'}.")
    return Report("Error maps and metrics", text, {"RMSE per hole set": table}, figures)


def pixel_mean(run):
    """Per-pixel mean over the training days (None when the split is by region: no such days)."""
    field = xr.open_dataset(run.path("field.nc")).field.load()
    split = xr.open_dataset(run.path("split.nc")).split.load()
    train_days = (split == 0).all(("lat", "lon"))
    if int(train_days.sum()) < 2:
        return None
    return field.isel(time=train_days.values).mean("time")


def _example_maps(run, kind, patches, index, truth, hidden, raw, filled, units):
    panels = []
    distinct = np.unique(index, return_index=True)[1]  # one sample per patch: different places
    picks = distinct[np.linspace(0, len(distinct) - 1, min(run["n_examples"], len(distinct))).astype(int)]
    for j in picks:
        i = index[j]
        lat, lon = patches.lat[i].values, patches.lon[i].values
        first = len(panels)
        panels.append(("input with holes", np.where(hidden[j], np.nan, truth[j]), lat, lon, "sst"))
        panels.append(("truth", truth[j], lat, lon, "sst"))
        for name in raw:
            panels.append((f"{name} prediction", raw[name][j], lat, lon, "sst"))
            panels.append((f"{name} in holes", filled[name][j], lat, lon, "sst"))
            panels.append((f"{name} − truth (holes)", np.where(hidden[j], filled[name][j] - truth[j], np.nan),
                           lat, lon, "diff"))
        panels.append(("biharmonic − truth (holes)", np.where(hidden[j], filled["biharmonic"][j] - truth[j], np.nan),
                       lat, lon, "diff"))
        panels[first:] = [(*panel, np.isfinite(truth[j])) for panel in panels[first:]]  # land vs holes
    ncols = 3 + 3 * len(raw)
    return plots.map_panels(panels, run.figure(f"04_maps_{kind}"), ncols=ncols, units=units,
                            gap="hidden (input) / not a hole (errors)",
                            suptitle=f"hole set '{kind}': test examples")


def load_predictions(run) -> dict[str, xr.Dataset]:
    """04's test-set predictions: one Dataset per hole set (truth, holes, each method)."""
    run.require("error_maps")
    return {name: xr.open_dataset(path).load() for name, path in run.predictions().items()}


def scatter_plots(run) -> Report:
    figures, rows = [], []
    for kind, pred in load_predictions(run).items():
        hidden = pred.holes.values.astype(bool)
        truth = pred.truth.values[hidden]
        series = {m: (truth, pred[m].values[hidden]) for m in pred.attrs["methods"].split(",")}
        for m, (t, p) in series.items():
            rows.append({"hole set": kind, "method": m, "n": metrics.count(p, t), "rmse": metrics.rmse(p, t),
                         "bias": metrics.bias(p, t), "correlation": metrics.correlation(p, t)})
        figures.append(plots.scatter_density(series, run.figure(f"05_scatter_{kind}"),
                                             pred.truth.attrs.get("units", ""),
                                             f"hole set '{kind}': predicted vs true in the holes"))
    table = pd.DataFrame(rows).set_index(["hole set", "method"])
    return Report("Predicted vs true in the holes", "Hexbin density, 1:1 line, binned mean and 95 % interval.",
                  {"scores in the holes": table}, figures)


def transects(run) -> Report:
    run.require("train")
    t = int(xr.open_dataset(run.path("patches.nc")).time_index.values[-1])
    field = xr.open_dataset(run.path("field.nc")).field[t].load()
    units = unit_text(field.attrs.get("units", ""))
    rng = np.random.default_rng(run["seed"] + 2)
    valid = np.isfinite(field.values)
    area = valid.size / run["patch"] ** 2
    hidden = holesets.simulate(valid, "varied", rng, many=int(12 * max(area, 1)))
    observed = np.where(hidden, np.nan, field.values)
    grids = {"truth": field.values}
    for name, predictor in trained_models(run).items():
        grids[name] = composite(field.values, hidden, fill_holes(predictor, field.values[None], hidden[None])[0])
    grids["biharmonic"] = baselines.biharmonic(observed, hidden)
    grids["local_mean"] = baselines.local_mean(observed, hidden)
    start, end = run["transect_start"] or TRANSECT[0], run["transect_end"] or TRANSECT[1]
    lat, lon, dist = line_points(start, end)
    as_grid = {k: field.copy(data=v) for k, v in grids.items()}
    values = {k: sample_line(g, lat, lon) for k, g in as_grid.items()}
    rough = {k: sample_line(field.copy(data=metrics.roughness(v)), lat, lon) for k, v in grids.items()}
    shade = sample_line(field.copy(data=hidden.astype(float)), lat, lon) > 0.5
    split = xr.open_dataset(run.path("split.nc")).split[t].load()
    held_out = sample_line(split, lat, lon) == 2  # models saw the rest of the line in training
    fig = plots.transect_plot(dist, values, rough, run.figure("06_transect"), units, shade,
                              f"{start} → {end} (lat, lon)")
    pad = 5
    box = field.sel(lat=slice(*sorted([min(lat) - pad, max(lat) + pad], reverse=bool(field.lat[0] > field.lat[-1]))),
                    lon=slice(min(lon) - pad, max(lon) + pad))
    sub = {k: g.sel(lat=box.lat, lon=box.lon).values for k, g in as_grid.items()}
    panels = [(k, v, box.lat, box.lon, "sst") for k, v in sub.items()]
    fig_map = plots.map_panels(panels, run.figure("06_transect_map"), ncols=len(panels), units=units,
                               line=(lat, lon), suptitle="fields with holes filled; magenta = transect")
    rows = [{"method": k, "rmse, holes in test blocks": metrics.rmse(v, values["truth"], shade & held_out),
             "rmse, all holes": metrics.rmse(v, values["truth"], shade),
             "rmse of roughness": metrics.rmse(rough[k], rough["truth"])} for k, v in values.items() if k != "truth"]
    return Report("Transect", f"{shade.sum()} of {len(shade)} line samples fall in holes (grey), "
                  f"{(shade & held_out).sum()} of them in test blocks; the rest of the line was seen in training.",
                  {"along the transect": pd.DataFrame(rows).set_index("method")}, [fig, fig_map])
