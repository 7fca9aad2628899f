"""The ``downscale`` task: super-resolve a coarsened grid (srcnn, rsrcnn, srgan).

Data: a complete high-res grid with projected (x, y in metres) or geographic coordinates:
``jacksboro`` (a real SRTM DEM shipped with matplotlib, the default) or ``antarctica`` (ice
thickness at 5 km, polar stereographic, shipped with geonb), or any NetCDF/zarr grid. Low-res inputs
are block means of the target. Cells at or below ``valid_above`` (ice-free ground) are a mask:
out of the loss and the metrics, kept as they are in the output. The grid is split into
regions — column bands train | val | test, or blocks in a lattice — and no training patch,
halo included, touches a val or test cell. Conditioning layers are the grid's other
variables (antarctica: log10 ``beta``), layers derived from an elevation grid (``surface``,
``velocity``, DeepBedMap-style) and the coordinates (``x``, ``y``).
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr

from .. import methods, plots, terrain
from ..baselines import bicubic, cubic_spline
from ..data import load_grid
from ..errors import GeonbError
from ..io import open_dataset, write_netcdf, write_text
from ..outputs import check_outputs, locked
from ..losses import DEEPBEDMAP_WEIGHTS
from ..metrics import rmse, roughness
from ..metrics.superres import masked_scores, radial_spectrum, spectrum_ratio, topographic_consistency
from ..modelfile import TrainedModel
from ..normalise import Normaliser
from ..params import ALLOW_OUTLIERS, AMP, COMMON, Param, cli_type
from ..predict import Predictor, channels_to_fine, fine_to_channels, lazy_map
from ..registry import get_arch, list_archs
from ..report import Report
from ..resample import block_mean, check_factor, check_finite, coarsen, nearest_filled, refine_coords
from ..checkpoints import config_key
from ..training import Accelerator, accelerator, run_accelerator
from ..transect import line_points, line_points_projected, sample_line, straight_line
from . import Task

PARAMS = COMMON.override(
    data={"default": "jacksboro",
          "help": "embedded grid (jacksboro, topobathy, synthetic, antarctica) or NetCDF/zarr path"},
    epochs={"quick": 2},
    batch_size={"default": 16, "quick": 4},
    transect_start={"help": "[lat, lon] start of the 06 line; None: across the roughest test region"},
    transect_end={"help": "[lat, lon] end of the 06 line; None: across the roughest test region"},
) + (
    ALLOW_OUTLIERS,
    Param("factor", int, 4, "scale factor: 2, 4, 8 or 16", "simulate", allowed=(2, 4, 8, 16)),
    Param("cond", str, "", "conditioning layers, e.g. 'beta' or 'surface,velocity@2' or 'beta,x,y' "
          "(x, y: coordinates; @r: resolution × low-res grid)"),
    Param("block", int, None, "split blocks in high-res cells; 0: column bands train | val | test; "
          "None: the data's (antarctica 256, others 0)", "data_prep", quick=0, min=0),
    Param("valid_above", float, None, "cells at or below this value are masked out of loss and metrics and "
          "kept in the output; None: the data's (antarctica 0 m of ice, others none)", "data_prep"),
    Param("synthetic", int, None, "extra 256×256 synthetic terrain scenes mixed into training; "
          "None: 8 for elevation grids, 0 for antarctica", quick=0, min=0, max=1000),
    Param("patch_lr", int, 16, "training tile in low-res cells", quick=8, min=1, max=1024),
    Param("steps_per_epoch", int, 40, "batches per epoch", quick=4, min=1, max=100_000),
    Param("n_blocks", int, 12, "srgan: residual-in-residual dense blocks (DeepBedMap: 12)", quick=1, min=1, max=64),
    Param("nf", int, 64, "srgan: feature maps", quick=16, min=1, max=512),
    Param("beta", float, 0.2, "srgan: residual scaling"),
    Param("w_content", float, DEEPBEDMAP_WEIGHTS["w_content"], "srgan: weight of the L1 content loss (DeepBedMap)", min=0),
    Param("w_adversarial", float, DEEPBEDMAP_WEIGHTS["w_adversarial"], "srgan: weight of the adversarial loss", min=0),
    Param("w_topographic", float, DEEPBEDMAP_WEIGHTS["w_topographic"], "srgan: weight of the topographic loss", min=0),
    Param("w_structural", float, DEEPBEDMAP_WEIGHTS["w_structural"], "srgan: weight of 1 − SSIM (DeepBedMap)", min=0),
    Param("tune_trials", int, 0, "> 0: optuna search (TPE + Hyperband) on the val region before training", min=0, max=10_000),
    Param("tune_epochs", int, 6, "epochs per optuna trial at most", min=1, max=10_000),
)
DERIVED = ("surface", "velocity")  # layers geonb.terrain derives from an elevation grid
COORDS = ("x", "y")
# Settings that follow the data when left at None.
DATA_DEFAULTS = {"antarctica": {"block": 256, "valid_above": 0.0, "synthetic": 0}}
FALLBACK = {"block": 0, "valid_above": None, "synthetic": 8}
QUICK_CROP = (128, 192)
MARGIN = 64  # high-res cells of input context around a val region (a multiple of every factor)
# The halo kept clear of the test region: the network's receptive field, capped (srgan's nominal
# field is 187 low-res cells; at ×16 on a 5 km grid an uncapped field leaves no training patch).
HALO_CAP = 64
MIN_VALID = 0.25  # share of valid cells a training patch (or a scored block) needs
HPARAMS = ("n_blocks", "nf", "beta")  # network settings; each arch's generator takes those it has


# ---------------------------------------------------------------- helpers
def setting(run, name: str):
    """A run's ``block``/``valid_above``/``synthetic``: the user's value, else the data's."""
    value = run[name]
    return DATA_DEFAULTS.get(str(run["data"]), FALLBACK).get(name, FALLBACK[name]) if value is None else value


def _load(run) -> xr.Dataset:
    path = run.path("data.nc")
    if not path.exists():
        raise GeonbError(f"{path} is missing; run 01_data_prep (or run.step('data_prep')) first.")
    return open_dataset(path)


def _layer(ds: xr.Dataset, name: str) -> np.ndarray:
    """A conditioning layer on the high-res grid: a variable of 01's data, or a coordinate."""
    if name in COORDS:
        y, x = np.meshgrid(ds.y.values, ds.x.values, indexing="ij")
        return x if name == "x" else y
    return ds[name].values.astype("float64")


def _layer_norm(ds, name, train) -> Normaliser:
    """Layers are standardised on the training cells; coordinates spanned onto [−1, 1]."""
    return Normaliser.span(ds[name].values) if name in COORDS else Normaliser.fit(ds[name].values[train])


def _hparams(run) -> dict:
    """The generator settings among ``HPARAMS`` that the run's arch takes."""
    return run.arch.accepts("generator", {k: run[k] for k in HPARAMS})


def _data_id(ds) -> str:
    return f"{ds.attrs.get('source_name')} {ds.sizes['y']}x{ds.sizes['x']}"


def model_name(arch: str, factor: int, cond) -> str:
    """``srcnn_x4``, ``srgan_x4_beta+x+y``: the model's folder, its row in the tables."""
    return f"{arch}_x{factor}" + (f"_{'+'.join(n for n, _ in cond)}" if cond else "")


_NAME = re.compile(r"^(?P<method>.+?)_x(?P<factor>\d+)(?:_(?P<inputs>.+))?$")


def _label(name: str) -> str:
    """``srcnn_x4_beta`` → ``srcnn ×4 +beta`` (figure titles and legends)."""
    m = _NAME.match(name)
    return f"{m['method']} ×{m['factor']}" + (f" +{m['inputs'].replace('+', ',')}" if m["inputs"] else "")


def _methods(pred: xr.Dataset):
    """(name, factor) of every prediction, baselines first within each factor."""
    names = [v for v in pred.data_vars if _NAME.match(v)]
    return sorted(((v, int(_NAME.match(v)["factor"])) for v in names),
                  key=lambda t: (t[1], not t[0].startswith(BASELINES), t[0]))


# ---------------------------------------------------------------- regions
def split_map(shape, block: int, test: bool = True) -> np.ndarray:
    """Train 0 / val 1 / test 2 per cell: column bands (``block`` 0: west 64 % | 12 % | east 24 %)
    or ``block``-cell squares in a lattice (block (i, j): test if (i + 2j) mod 5 = 0, val if 2):
    a fifth each for val and test, spread over the whole grid, every test block beside a val block
    (training patches reach val cells with their halo only). ``test=False``: no test region."""
    ny, nx = shape
    if block:
        i, j = np.meshgrid(np.arange(ny) // block, np.arange(nx) // block, indexing="ij")
        code = (i + 2 * j) % 5
        split = np.where(code == 2, 1, np.where((code == 0) & test, 2, 0))
    else:
        n_test = max(16, int(round(0.24 * nx / 16)) * 16) if test else 0
        n_val = max(16, int(round(0.12 * nx / 16)) * 16)
        split = np.broadcast_to(np.r_[np.zeros(nx - n_test - n_val), np.ones(n_val), 2 * np.ones(n_test)], (ny, nx))
    return np.ascontiguousarray(split, dtype="int8")


def _boxes(region: np.ndarray, block: int):
    """Bounding boxes (y0, y1, x0, x1) of a region's blocks (one box per band or block)."""
    ny, nx = region.shape
    step_y, step_x = (block, block) if block else (ny, nx)
    for y0 in range(0, ny, step_y):
        for x0 in range(0, nx, step_x):
            ys, xs = np.nonzero(region[y0:y0 + step_y, x0:x0 + step_x])
            if ys.size:
                yield y0 + ys.min(), y0 + ys.max() + 1, x0 + xs.min(), x0 + xs.max() + 1


def _grown(box, shape, margin: int):
    """A box grown by ``margin`` cells each side, clipped to the grid, corners kept on the 16-cell lattice."""
    y0, y1, x0, x1 = box
    down = lambda v: max(0, (v - margin) // 16 * 16)  # noqa: E731
    up = lambda v, n: min(n, -(-(v + margin) // 16) * 16)  # noqa: E731
    return down(y0), up(y1, shape[0]), down(x0), up(x1, shape[1])


def _scored_boxes(split, valid, which: int, block: int, least: float = MIN_VALID):
    """Boxes of a region with enough valid cells to score (a share of at least ``least``, and one cell)."""
    region = (split == which)
    return [b for b in _boxes(region, block)
            if (share := valid[b[0]:b[1], b[2]:b[3]][region[b[0]:b[1], b[2]:b[3]]].mean()) >= least and share > 0]


# ---------------------------------------------------------------- 01
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
                  f"Layers: {', '.join(layers)} (+ coordinates x, y).", {"regions": pd.DataFrame(rows).T}, [fig])


def _crop16(grid: xr.Dataset, need: tuple[int, int], why: str) -> xr.Dataset:
    """The grid cut to multiples of 16 cells, so every factor (2..16) tiles it and each region exactly; one
    smaller than ``need`` cells after the cut is refused before any work (``why``: what needs them)."""
    ny, nx = grid.sizes["y"] // 16 * 16, grid.sizes["x"] // 16 * 16
    if ny < need[0] or nx < need[1]:
        raise GeonbError(f"the grid is {grid.sizes['y']}×{grid.sizes['x']} cells, {ny}×{nx} in whole 16-cell blocks; "
                         f"downscaling needs at least {need[0]}×{need[1]} ({why}). Use a larger grid.")
    return grid.isel(y=slice(0, ny), x=slice(0, nx))


def _kind(ds) -> str:
    """The colour map of the target: ice thickness, or elevation."""
    return "thickness" if "thickness" in str(ds["target"].attrs.get("variable", "")) else "elevation"


BASELINES = ("bicubic", "spline")


def baseline(name: str, lr: np.ndarray, factor: int) -> np.ndarray:
    """The classical upsampling ``name``: Keys bicubic or the cubic B-spline, both pixel-area aligned."""
    return (bicubic if name == "bicubic" else cubic_spline)(lr, factor)


def baseline_rmse(vals: list[Scene], factor: int) -> dict[str, float]:
    """Each baseline's RMSE (normalised) on the valid cells of the ``vals`` scenes, weighted as
    ``train_model``'s validation scores the model: the model's val_loss beside the classical methods."""
    sse, n = dict.fromkeys(BASELINES, 0.0), 0.0
    for v in vals:
        lr = block_mean(torch.as_tensor(v.hr, dtype=torch.float64)[None, None], factor)[0, 0].numpy()
        h, w = lr.shape[0] * factor, lr.shape[1] * factor  # the cells the model predicts too
        weight = (np.ones(v.hr.shape) if v.valid is None else v.valid)[:h, :w]
        for b in BASELINES:
            sse[b] += float((weight * (baseline(b, lr, factor) - v.hr[:h, :w]) ** 2).sum())
        n += float(weight.sum())
    return {b: (sse[b] / n) ** 0.5 for b in BASELINES}


def _map_box(ds) -> tuple:
    """The test box shown in 02/04 maps and crossed by the 06 transect: the roughest one."""
    truth, valid, split = ds["target"].values, ds["valid"].values.astype(bool), ds["split"].values
    boxes = _scored_boxes(split, valid, 2, int(ds.attrs["block"]))
    rough = roughness(np.where(valid, truth, np.nan))
    return max(boxes, key=lambda b: np.nanmean(rough[b[0]:b[1], b[2]:b[3]]))


def _crop(a, box):
    return a[..., box[0]:box[1], box[2]:box[3]]


def _box_axes(ds, box):
    """The y and x coordinates of a box."""
    return ds.y.values[box[0]:box[1]], ds.x.values[box[2]:box[3]]


# ---------------------------------------------------------------- 02
def simulate(run) -> Report:
    """Degradation examples: block means and both classical upsamplings, scored on the test region."""
    ds = _load(run)
    f = check_factor(run["factor"])
    truth = ds["target"].values.astype("float64")
    scored = (ds["split"].values == 2) & (ds["valid"].values == 1)
    rows = {}
    for g in (2, 4, 8, 16):
        lr = coarsen(truth, g)
        rows[f"×{g}"] = {"low-res shape": f"{lr.shape[0]}×{lr.shape[1]}",
                         **{f"{b} RMSE": rmse(baseline(b, lr, g), truth, scored) for b in BASELINES}}
    lr = coarsen(truth, f)
    box = _map_box(ds)
    y, x = _box_axes(ds, box)
    ly, lx = y.reshape(-1, f).mean(1), x.reshape(-1, f).mean(1)
    kind, units = _kind(ds), ds.attrs.get("units", "")
    panels = [("truth (a test block)", _crop(truth, box), y, x, kind),
              (f"low-res: {f}×{f} block mean", coarsen(_crop(truth, box), f), ly, lx, kind)]
    for b in BASELINES:
        up = _crop(baseline(b, lr, f), box)
        panels.append((f"{b} ×{f} − truth", np.where(_crop(scored, box), up - _crop(truth, box), np.nan), y, x, "diff"))
    fig = plots.map_panels(panels, run.figure(f"02_degradation_x{f}"), ncols=4, units=units, crs=ds.attrs["crs"])
    return Report(f"02 degradation ×{f}", "Low-res inputs are block means of the target (a block's value sits at its "
                  "centre). Baselines: Keys bicubic and the cubic B-spline of the block means, both pixel-area aligned; "
                  "RMSE on the valid cells of the test region.", {"baselines on the test region": pd.DataFrame(rows).T},
                  [fig])


# ---------------------------------------------------------------- 03
@dataclass
class Scene:
    """One high-res grid (normalised) with its conditioning grids at the same resolution.

    ``valid``: the cells that count in the loss and the score (None: all); ``region``: the cells a
    training patch may cover (None: all); ``clear``: the cells no training patch may reach, its
    halo included (the test region; None: none).
    """
    hr: np.ndarray
    conds: list = field(default_factory=list)
    name: str = ""
    valid: np.ndarray | None = None
    region: np.ndarray | None = None
    clear: np.ndarray | None = None

    def tensor(self) -> torch.Tensor:
        """(1 + conditioning grids + 1, H, W): the target, its conditioning grids, the loss weights."""
        w = np.ones(self.hr.shape) if self.valid is None else self.valid
        return torch.as_tensor(np.stack([self.hr, *self.conds, w]).astype("float32"))


def split_tensor(stack: torch.Tensor, factor: int, cond_res) -> tuple:
    """(B, 1+nc+1, H, W) scene stack → a batch ``((lr, [cond at its r]), hr, weights)``."""
    hr = stack[:, :1]
    lr = block_mean(hr, factor)
    conds = [block_mean(stack[:, 1 + i: 2 + i], factor // r) for i, r in enumerate(cond_res)]
    return (lr, conds), hr, stack[:, -1:]


def _corners(scene: Scene, size: int, factor: int, margin: int) -> np.ndarray:
    """Top-left corners (factor-aligned) of the size×size patches inside the scene's region, whose
    window grown by ``margin`` (the halo) misses its ``clear`` cells, holding ``MIN_VALID`` valid cells."""
    ny, nx = scene.hr.shape
    iy, ix = np.meshgrid(np.arange(0, ny - size + 1, factor), np.arange(0, nx - size + 1, factor), indexing="ij")
    iy, ix = iy.ravel(), ix.ravel()

    def window_sum(a, grow):
        c = np.pad(np.cumsum(np.cumsum(a.astype("float64"), 0), 1), ((1, 0), (1, 0)))
        y0, x0 = np.clip(iy - grow, 0, ny), np.clip(ix - grow, 0, nx)
        y1, x1 = np.clip(iy + size + grow, 0, ny), np.clip(ix + size + grow, 0, nx)
        return c[y1, x1] - c[y0, x1] - c[y1, x0] + c[y0, x0]

    ok = np.ones(iy.size, bool)
    if scene.region is not None:
        ok &= window_sum(~scene.region, 0) == 0
    if scene.clear is not None:
        ok &= window_sum(scene.clear, margin) == 0
    if scene.valid is not None:
        ok &= window_sum(scene.valid, 0) >= MIN_VALID * size * size
    return np.c_[iy[ok], ix[ok]]


def patch_sampler(scenes: list[Scene], factor: int, cond_res, patch_lr: int, batch_size: int, steps: int, seed: int,
                  margin: int = 0):
    """``batches(epoch)`` for training: random factor-aligned high-res patches inside the training
    region (``margin`` cells of halo kept clear of other regions), split into batches."""
    size = patch_lr * factor
    for s in scenes:
        if min(s.hr.shape) < size:
            raise GeonbError(f"grid {s.name or ''} of {s.hr.shape[0]}×{s.hr.shape[1]} is smaller than one training "
                             f"tile ({size}×{size} = {patch_lr} low-res px × factor {factor}); use a smaller "
                             "patch_lr, a smaller factor or a larger grid.")
    corners = [_corners(s, size, factor, margin) for s in scenes]
    counts = np.array([len(c) for c in corners], float)
    if not counts.sum():
        raise GeonbError(f"no {size}×{size} training patch fits inside the training region with {MIN_VALID:.0%} valid "
                         f"cells and its halo ({margin} cells) clear of the test region; use a smaller patch_lr or "
                         "factor, or larger blocks.")
    stacks = [s.tensor() for s in scenes]

    def batches(epoch: int):
        rng = np.random.default_rng([seed, epoch])
        for _ in range(steps):
            items = []
            for k in rng.choice(len(stacks), batch_size, p=counts / counts.sum()):
                i, j = corners[k][rng.integers(len(corners[k]))]
                items.append(stacks[k][:, i:i + size, j:j + size])
            yield split_tensor(torch.stack(items), factor, cond_res)

    return batches


def train_model(arch: str, factor: int, cond_res, hparams: dict, scenes: list[Scene], vals, ckpt_dir, *,
                epochs: int, steps: int, batch_size: int, lr: float, patch_lr: int, patience: int, seed: int,
                losses: dict | None = None, on_epoch=None, units: float = 1.0, device: Accelerator | None = None):
    """Train ``arch`` on random patches of the ``scenes``; early-stop on the RMSE of the ``vals``
    scenes (one Scene or a list) on their valid cells.

    ``on_epoch(epoch, val_rmse)`` is called after each validation (optuna pruning).
    ``units``: physical units (e.g. metres) per normalised unit (the normaliser's std), for
    the DeepBedMap loss; ``losses``: its weights (``w_content``…, ``w_adversarial``; default DeepBedMap's);
    ``device``: the ``training.Accelerator`` (default: the CPU). Returns (method, history); the trained generator is ``method.generator``.
    """
    factor, cond_res = check_factor(factor), tuple(cond_res)
    acc = device or Accelerator(torch.device("cpu"))
    spec = get_arch(arch)
    w = {**DEEPBEDMAP_WEIGHTS, **(losses or {})}
    method = methods.build(spec, {"factor": factor, "cond_res": cond_res, **hparams}, lr=lr, seed=seed, device=acc,
                           adv_weight=w.pop("w_adversarial", 0.0), content_args={"factor": factor, "units": units, **w})
    batches = patch_sampler(scenes, factor, cond_res, patch_lr, batch_size, steps, seed,
                            margin=min(method.generator.halo * factor, HALO_CAP))
    vals = [split_tensor(v.tensor()[None].to(acc.device), factor, cond_res) for v in ([vals] if isinstance(vals, Scene) else vals)]
    count = [0]

    def validate():
        """RMSE (normalised) on the valid val cells at the prediction's resolution (stagewise: per stage)."""
        sse = n = 0.0
        for x, hr, wt in vals:
            pred = method.predict(x)
            k = hr.shape[-1] // pred.shape[-1]
            wk = block_mean(wt, k)
            sse += float((wk * (pred - block_mean(hr, k)) ** 2).sum())
            n += float(wk.sum())
        score = (sse / n) ** 0.5
        count[0] += 1
        if on_epoch is not None:
            on_epoch(count[0], score)
        return {"val_loss": score}

    history = method.fit(batches, validate, ckpt_dir, epochs=epochs, patience=patience, seed=seed, desc=arch, steps=steps)
    return method, history


def save_model(path, method, arch: str, hparams: dict, var: str, cond, norm: Normaliser, cond_norms,
               trained_on: str, history, valid_above=None, crs: str = "", units: str = ""):
    """The model file: generator settings, normalisers of the target and each conditioning grid,
    the mask threshold, the grid's CRS and the target's units."""
    arch_args = {"factor": method.generator.factor, "cond_res": [int(r) for _, r in cond], **hparams}
    norms = {"target": norm, **{f"cond {n}": cn for (n, _), cn in zip(cond, cond_norms)}}
    model = TrainedModel("downscale", arch, arch_args, method.weights(), norms,
                         inputs={"variable": str(var), "cond": [n for n, _ in cond],
                                 "valid_above": None if valid_above is None else float(valid_above), "crs": str(crs),
                                 "units": {"target": str(units)}},
                         info={"trained_on": str(trained_on), "history": history})
    return model.save(path)


def time_blocks(n: int) -> np.ndarray:
    """Which of ``n`` time steps validate: the last fifth as one block (at least one step, and at least
    one left to train on), so validation is on times after every training step, as a forecast would be."""
    if n < 2:
        raise GeonbError(f"a time series of {n} step cannot be split into training and validation times; give "
                         "at least 2 steps, or one 2-D grid.")
    return np.arange(n) >= n - max(1, n // 5)


def _synthetic_scenes(n, seed, cond) -> list[Scene]:
    """Fractal terrain, each scene standardised by its own statistics (shape, not level)."""
    scenes = []
    for k in range(n):
        t = terrain.terrain_dataset(256, 256, seed=10_000 + 97 * seed + k)
        std = lambda a: (a - a.mean()) / a.std()  # noqa: E731
        scenes.append(Scene(std(t["elevation"].values), [std(t[c].values) for c, _ in cond], f"synthetic {k}"))
    return scenes


def region_scenes(ds, cond):
    """From a grid with ``target``, ``valid``, ``split`` and its layers: the training scenes (the whole
    grid, patches kept to the train region and off the test region), the val scenes (each val box with
    ``MARGIN`` cells of context, scored on its valid val cells) and the normalisers.

    A time series (``target`` and ``valid`` (time, y, x)) is split by time too: the steps marked in
    ``val_step`` give the val scenes, the others a training scene each, so no val cell is trained on at
    another time; NaN cells (clouds, land) are invalid and nearest-filled for the network's input."""
    split, target = ds["split"].values, ds["target"].values.astype("float64")
    target, valid = (target, ds["valid"].values.astype(bool)) if target.ndim == 3 else \
        (target[None], ds["valid"].values.astype(bool)[None])
    val_step = ds["val_step"].values.astype(bool) if "val_step" in ds else None
    fit_steps = ~val_step if val_step is not None else np.ones(len(target), bool)
    train = split == 0
    norm = Normaliser.fit(target[fit_steps][train & valid[fit_steps]] if val_step is not None else target[0][train & valid[0]])
    cond_norms = [_layer_norm(ds, c, train) for c, _ in cond]
    conds = [n(_layer(ds, c)) for (c, _), n in zip(cond, cond_norms)]
    scenes, vals = [], []
    for t, (hr, ok) in enumerate(zip(norm(target), valid)):
        hr, name = nearest_filled(hr), f" t={t}" if val_step is not None else ""
        if val_step is None or not val_step[t]:
            scenes.append(Scene(hr, conds, f"train region{name}", ok.astype("float64"), train, split == 2))
        if val_step is None or val_step[t]:
            # a cloudy step still scores what it saw: the val RMSE weighs every valid cell alike
            for box in _scored_boxes(split, ok, 1, int(ds.attrs["block"]), MIN_VALID if val_step is None else 0):
                g = _grown(box, hr.shape, MARGIN)
                vals.append(Scene(_crop(hr, g), [_crop(c, g) for c in conds], f"val {g}{name}",
                                  _crop((split == 1) & ok, g).astype("float64")))
    return scenes, vals, norm, cond_norms


def _training_data(run, ds, cond):
    """``region_scenes`` of 01's data, plus the run's synthetic terrain scenes."""
    scenes, vals, norm, cond_norms = region_scenes(ds, cond)
    n_synth = setting(run, "synthetic")
    if n_synth and any(c not in DERIVED for c, _ in cond):
        raise GeonbError(f"synthetic terrain scenes have only {', '.join(DERIVED)} layers, not {run['cond']!r}; "
                         "set synthetic to 0.")
    return [*scenes, *_synthetic_scenes(n_synth, run["seed"], cond)], vals, norm, cond_norms


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


def _cond(run, ds):
    cond = parse_cond(run["cond"], check_factor(run["factor"]))
    have = [v for v in ds.data_vars if v not in ("target", "valid", "split")] + list(COORDS)
    unknown = [c for c, _ in cond if c not in have]
    if unknown:
        raise GeonbError(f"conditioning layer(s) {unknown} unknown; {ds.attrs['source_name']} has {', '.join(have)}.")
    return cond


def train(run) -> Report:
    """Train the run's arch (after an optuna search when tune_trials > 0); save the model file."""
    arch, f = run["arch"], check_factor(run["factor"])
    ds = _load(run)
    cond = _cond(run, ds)
    name = model_name(arch, f, cond)
    scenes, vals, norm, cond_norms = _training_data(run, ds, cond)
    hp, lr, batch = _hparams(run), run["lr"], run["batch_size"]
    device = run_accelerator(run)
    settings = dict(steps=run["steps_per_epoch"], patch_lr=run["patch_lr"], patience=run["patience"], seed=run["seed"],
                    losses={k: run[k] for k in ("w_content", "w_adversarial", "w_topographic", "w_structural")},
                    units=float(norm.std), device=device)
    tables, figures = {}, []
    if run["tune_trials"] > 0:
        from .. import tuning

        searched = run.arch.accepts("generator", {"n_blocks": 0, "beta": 0})

        def objective(params, on_epoch, trial_dir):
            hp_t = {**hp, **{k: params[k] for k in searched if k in params}}
            _, hist = train_model(arch, f, [r for _, r in cond], hp_t, scenes, vals, trial_dir,
                                  epochs=run["tune_epochs"], batch_size=params["batch_size"], lr=params["lr"],
                                  on_epoch=on_epoch, **settings)
            return min(h["val_loss"] for h in hist)

        best, trials, fig = tuning.tune(objective, run.checkpoint_dir(f"tuning_{name}"), run["tune_trials"],
                                        seed=run["seed"], max_epochs=run["tune_epochs"], search_blocks=bool(searched))
        lr, batch = best["lr"], best["batch_size"]
        hp.update({k: best[k] for k in searched if k in best})
        tables["optuna trials (val RMSE, normalised)"] = trials
        figures.append(fig)
    method, history = train_model(arch, f, [r for _, r in cond], hp, scenes, vals, run.checkpoint_dir(name),
                                  epochs=run["epochs"], batch_size=batch, lr=lr, **settings)
    trained_on = f"{_data_id(ds)} train region + {setting(run, 'synthetic')} synthetic scenes"
    above = setting(run, "valid_above")
    path = save_model(run.model_path(name), method, arch, hp, ds["target"].attrs["variable"], cond, norm, cond_norms,
                      trained_on, history, above, ds.attrs["crs"], ds["target"].attrs.get("units", ""))
    figures.insert(0, plots.loss_curves(history, run.figure(f"03_loss_{name}"),
                                        title=f"{_label(name)} (val loss = val-region RMSE, normalised)"))
    tables["history (last epochs)"] = pd.DataFrame(history).tail(5).set_index("epoch")
    return Report(f"03 train {_label(name)}", f"Model file: `{path}` ({trained_on}; lr {lr:.3g}, "
                  f"batch {batch}, {hp or 'default SRCNN'}; device {device.device}).", tables, figures)


# ---------------------------------------------------------------- prediction
def predict_grid(predictor: Predictor, lr: np.ndarray, conds=(), *, halo=None, tile=None) -> np.ndarray:
    """Physical-units low-res grid (+ conditioning grids at their resolutions) → high-res grid (float64).

    Low-res cells at or below the model's ``valid_above`` (ice-free) keep their value in every
    high-res cell they hold: masked cells are passed through, not invented.
    """
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
    hr = out[0].astype("float64") * norm.std + norm.mean
    above = model.inputs.get("valid_above")
    if above is not None:
        f = model.arch_args["factor"]
        coarse = np.kron(lr, np.ones((f, f)))
        hr = np.where(coarse <= above, coarse, hr)
    return hr


def predict_lazy(predictor: Predictor, lr, conds=(), *, chunk: int | None = 512, tile: int | None = 64):
    """``predict_grid`` out of core: a low-res grid (numpy or dask, e.g. from ``xr.open_zarr``) in
    chunks of ``chunk`` cells (None: a dask grid's own chunks), each with the network's halo of neighbours (``predict.lazy_map``)
    and predicted in ``tile``-cell tiles → a lazy (y·f, x·f) float32 dask array equal to the
    in-memory prediction; memory is bounded by the chunk size, not the grid's. Conditioning grids
    (numpy/dask, at their resolutions) travel with the chunks as channels."""
    import dask.array as dsa

    model = predictor.model
    rs = model.arch_args["cond_res"]
    if len(conds) != len(rs):
        raise GeonbError(f"this model needs {len(rs)} conditioning grid(s) ({', '.join(model.inputs['cond']) or 'none'}); "
                         f"got {len(conds)}. Pass them with --cond FILE:VAR.")
    lr = lr if isinstance(lr, dsa.Array) else dsa.from_array(np.asarray(lr), chunks=chunk or 512)
    lr = lr.rechunk(chunk) if chunk else lr
    parts = [lr[..., None]] + [fine_to_channels(dsa.asarray(c).rechunk(tuple(tuple(k * r for k in ks) for ks in lr.chunks)), r)
                               for c, r in zip(conds, rs)]
    edges = np.cumsum([0] + [r * r for r in rs])

    def block(b):
        cs = [channels_to_fine(b[..., 1 + edges[k]:1 + edges[k + 1]], r) for k, r in enumerate(rs)]
        return predict_grid(predictor, b[..., 0], cs, tile=tile).astype(np.float32)

    return lazy_map(block, dsa.concatenate(parts, axis=2), halo=predictor.halo, factor=model.arch_args["factor"])


# ---------------------------------------------------------------- 04
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
        lr = coarsen(truth, f)
        for b in BASELINES:
            out[f"{b}_x{f}"] = keep(baseline(b, lr, f))
        conds = [block_mean(torch.as_tensor(_layer(ds, c))[None, None], f // r)[0, 0].numpy()
                 for c, r in zip(model.inputs["cond"], model.arch_args["cond_res"])]
        out[name] = keep(predict_grid(Predictor(model), lr, conds, tile=64))
    return out


def error_maps(run) -> Report:
    """Metric table (models vs both baselines on the held-out test region), maps and spectra."""
    pred = _evaluate(run)
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
    return Report("04 error maps (held-out test region)",
                  "RMSE, MAE, bias, PSNR, SSIM (torchmetrics) on the valid cells of the test region; the ratios compare "
                  "RMSE with Keys bicubic and the cubic B-spline on the same cells; topo consistency = RMSE between "
                  "the block mean of the output and the low-res input; spectrum ratio = fine-scale power (above the "
                  "low-res Nyquist) recovered, output / truth, on the test block of the maps.",
                  {"metrics": table}, figures)


# ---------------------------------------------------------------- 05
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


# ---------------------------------------------------------------- 06
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


# ---------------------------------------------------------------- command line: geonb train, geonb predict
def _cond_on_grid(spec: str, target: xr.Dataset, factor: int, allow_outliers: bool):
    """``FILE:VAR[@r]`` (or ``x``/``y``: a coordinate) → (name, r, values on the target's cells)."""
    if spec in COORDS:
        return spec, factor, _layer(target, spec)
    path, sep, var = spec.rpartition(":")
    if not sep or not path or not var:
        raise GeonbError(f"--cond {spec!r}: write FILE:VAR (e.g. surface.nc:elevation), optionally FILE:VAR@r, "
                         "or x / y for a coordinate.")
    [(var, r)] = parse_cond(var, factor)
    grid = load_grid(path, var, allow_outliers)
    if grid.attrs["crs"] != target.attrs["crs"]:
        if not (grid.attrs["crs"] and target.attrs["crs"]):
            raise GeonbError(f"conditioning grid {spec!r} is in {grid.attrs['crs'] or 'no declared CRS'} but the target "
                             f"in {target.attrs['crs'] or 'none'}; declare both CRS (a CF grid mapping) so geonb can match them.")
        return var, r, check_finite(_reprojected(grid[var], grid.attrs["crs"], target, spec),
                                    f"conditioning grid {spec!r} on the target grid")
    da = grid[var]
    for axis in ("y", "x"):
        have, want = da[axis].values, target[axis].values
        half = abs(np.diff(have).mean()) / 2 if have.size > 1 else 0
        if want.min() < have.min() - half or want.max() > have.max() + half:
            raise GeonbError(f"conditioning grid {spec!r} covers {axis} {have.min():.4f}..{have.max():.4f} but the "
                             f"target needs {want.min():.4f}..{want.max():.4f}; give a grid that covers the target's extent.")
    # Coverage is checked to half a cell: clip the last half cell onto the edge centres.
    values = da.interp(y=np.clip(target.y.values, da.y.min().item(), da.y.max().item()),
                       x=np.clip(target.x.values, da.x.min().item(), da.x.max().item())).values
    return var, r, check_finite(values, f"conditioning grid {spec!r} on the target grid")


def _reprojected(da: xr.DataArray, crs: str, target: xr.Dataset, spec: str) -> np.ndarray:
    """``da`` (in ``crs``) resampled bilinearly onto the target's cells in the target's CRS (rioxarray's
    reproject_match, GDAL warp); refused when it leaves any target cell uncovered."""
    import rioxarray  # noqa: F401  (registers .rio)
    from rasterio.enums import Resampling

    template = xr.DataArray(np.zeros((target.sizes["y"], target.sizes["x"]), "float32"), dims=("y", "x"),
                            coords={"y": target.y.values, "x": target.x.values}).rio.write_crs(target.attrs["crs"])
    source = da.astype("float32").rio.write_crs(crs).rio.write_nodata(np.nan, encoded=False)
    # warping a field of ones marks the target cells the source grid reaches (NaN outside it)
    reach = xr.ones_like(source).rio.write_nodata(np.nan, encoded=False)
    covered = np.isfinite(reach.rio.reproject_match(template, resampling=Resampling.nearest).values)
    if not covered.all():
        raise GeonbError(f"conditioning grid {spec!r} (in {crs}) covers only {covered.mean():.1%} of the target's "
                         f"cells once matched to {target.attrs['crs']}; give a grid that covers the target's extent.")
    return source.rio.reproject_match(template, resampling=Resampling.bilinear).values


def cli_train(args) -> int:
    """``geonb train``: coarsen the high-res grid, train on it, validate on val bands or blocks."""
    if get_arch(args.arch).task != "downscale":
        raise GeonbError(f"`geonb train` trains downscaling archs ({', '.join(_archs())}); {args.arch!r} is a "
                         f"{get_arch(args.arch).task} arch: use `geonb run -p arch {args.arch}` or the notebooks.")
    out = Path(args.model).expanduser()  # the path checked is the path written
    checkpoints = out.with_name(out.stem + "_checkpoints")
    check_outputs({"--model": out, "checkpoints": checkpoints}, [args.data, *(c.rpartition(":")[0] for c in args.cond or [])],
                  overwrite=args.overwrite, folders=("checkpoints",))
    f = check_factor(args.factor)
    grid = load_grid(args.data, args.var, allow_outliers=args.allow_outliers, steps=True)
    var = grid.attrs["target"]
    size = args.patch * f
    grid = _crop16(grid, (max(16, size), -(-size // 16) * 16 + 16),
                   f"a training tile of {size} cells, --patch {args.patch} × --factor {f}, beside a 16-cell validation "
                   "band; or a smaller --patch or --factor")
    ny, nx = grid.sizes["y"], grid.sizes["x"]
    hr = grid[var].values.astype("float64")
    dims = grid[var].dims  # (y, x), or (time, y, x): a series learns from every step
    defaults = DATA_DEFAULTS.get(str(args.data), FALLBACK)
    above = args.valid_above if args.valid_above is not None else defaults.get("valid_above")
    block = defaults.get("block", 0) if min(ny, nx) >= 3 * defaults.get("block", 0) else 0
    if "time" in dims:  # clouds and land: out of the loss (region_scenes); a step all NaN teaches nothing
        valid = np.isfinite(hr) & (hr > (above if above is not None else -np.inf))
        if not valid.any(axis=(1, 2)).all():
            raise GeonbError(f"{args.data}:{var} has time steps without a single valid cell; drop them first.")
    else:
        check_finite(hr, f"{args.data}:{var}")
        valid = hr > above if above is not None else np.ones(hr.shape, bool)
    conds = [_cond_on_grid(spec, grid, f, args.allow_outliers) for spec in args.cond or []]
    ds = xr.Dataset({"target": (dims, hr), "valid": (dims, valid.astype("uint8")),
                     "split": (("y", "x"), split_map((ny, nx), block, test=False)),
                     **{n: (("y", "x"), v) for n, _, v in conds if n not in COORDS},
                     **({"val_step": ("time", time_blocks(hr.shape[0]))} if "time" in dims else {})},
                    coords={"y": grid.y, "x": grid.x}, attrs={"block": block})
    cond = [(n, r) for n, r, _ in conds]
    scenes, vals, norm, cond_norms = region_scenes(ds, cond)
    if not vals:
        raise GeonbError(f"{args.data}:{var} leaves no valid cell in the validation region; give a larger grid "
                         "or more time steps.")
    hp = get_arch(args.arch).accepts("generator", {"n_blocks": args.n_blocks, "nf": args.nf, "beta": args.beta})
    settings = dict(epochs=args.epochs, steps=args.steps, batch_size=args.batch_size, lr=args.lr or get_arch(args.arch).lr,
                    patch_lr=args.patch, patience=args.patience, seed=args.seed)
    # checkpoints keyed by everything the training depends on, data included: another run never resumes them
    key = config_key({"arch": args.arch, "factor": f, "hparams": hp, "cond": cond, "valid_above": above, **settings,
                      "data": hashlib.sha256(b"".join(ds[v].values.tobytes() for v in sorted(ds.data_vars))).hexdigest()})
    with locked(checkpoints / key, "the checkpoint folder"):
        acc = accelerator(args.device, args.amp, args.compile, args.workers, TASK.cpu_bf16)
        method, history = train_model(args.arch, f, [r for _, r in cond], hp, scenes, vals, checkpoints / key,
                                      units=float(norm.std), device=acc, **settings)
    steps = f"{hr.shape[0]} steps of " if "time" in dims else ""
    save_model(out, method, args.arch, hp, var, cond, norm, cond_norms, f"{args.data} {steps}{ny}x{nx}", history,
               above, grid.attrs["crs"], grid[var].attrs.get("units", ""))
    print(f"wrote {out}")
    units, best = grid[var].attrs.get("units", ""), min(h["val_loss"] for h in history) * norm.std
    classical = {b: r * norm.std for b, r in baseline_rmse(vals, f).items()}
    print(f"[geonb train] skill on the validation region (never trained on; it chose the epoch): RMSE {best:.4g} "
          f"{units}; bicubic {classical['bicubic']:.4g}, cubic spline {classical['spline']:.4g} {units}: "
          f"{best / min(classical.values()):.3f} × the better baseline.")
    return 0


def predict_file(model: TrainedModel, args) -> xr.Dataset:
    """``geonb predict`` for a downscaling model: a low-res grid in, the grid × factor out (CF NetCDF, zarr or
    GeoTIFF) with the input's coordinate names and attributes and its CRS; lazy (``predict_lazy``), so the
    writer streams it chunk by chunk."""
    grid = load_grid(args.input, args.var or model.inputs["variable"], lazy=True, allow_outliers=args.allow_outliers,
                     steps=True)
    da = grid[grid.attrs["target"]]
    predictor = Predictor(model)
    ny, nx = da.shape[-2:]
    if min(ny, nx) < predictor.halo:  # the chunks' overlap with their neighbours needs that many cells
        raise GeonbError(f"{args.input}:{da.name} is {ny}×{nx} cells; this model needs at least "
                         f"{predictor.halo}×{predictor.halo} (its receptive field). Give a larger grid.")
    conds = conditioning(model, grid, args.cond, args.allow_outliers)
    check_inputs(model, da, conds, f"{args.input}:{da.name}")
    if "time" in da.dims:
        hr = predict_steps(predictor, da.data, conds, tile=args.tile or 64)
    else:
        check_finite(da.data, f"{args.input}:{da.name}")  # one lazy pass over the input before any prediction
        hr = predict_lazy(predictor, da.data, conds, chunk=args.chunk or 512, tile=args.tile or 64)
    return super_resolved(model, grid, hr, f"{args.input}", f"geonb model {args.model}")


def check_inputs(model: TrainedModel, lr: xr.DataArray, conds, what: str) -> None:
    """The low-res grid and the conditioning grids in the units and value range the model was trained on
    (``TrainedModel.check_input``); x and y are positions, any region's."""
    model.check_input("target", lr.data, lr.attrs.get("units"), what)
    for name, c in zip(model.inputs["cond"], conds):
        if name not in COORDS:
            model.check_input(f"cond {name}", c, None, f"conditioning grid {name!r}")


def predict_steps(predictor: Predictor, lr, conds=(), *, tile: int | None = 64):
    """Every step of a (time, y, x) low-res series (numpy or dask), lazily, one dask chunk per step: the
    step's NaN cells (clouds, land) nearest-filled for the network and NaN again in the output (each
    covers its factor × factor fine cells), as training treated them."""
    import dask.array as dsa

    f = predictor.model.arch_args["factor"]
    lr = dsa.asarray(lr).rechunk({0: 1, 1: -1, 2: -1})

    def step(block):
        out = predict_grid(predictor, nearest_filled(block[0].astype("float64")), conds, tile=tile)
        gaps = np.kron(~np.isfinite(block[0]), np.ones((f, f), bool))
        return np.where(gaps, np.nan, out).astype(np.float32)[None]

    return lr.map_blocks(step, dtype=np.float32, chunks=((1,) * lr.shape[0], (lr.shape[1] * f,), (lr.shape[2] * f,)))


def conditioning(model: TrainedModel, grid: xr.Dataset, specs, allow_outliers: bool = False) -> list[np.ndarray]:
    """The model's conditioning grids (``FILE:VAR[@r]`` or ``x``/``y`` specs) on ``grid``'s cells refined ×r."""
    specs = list(specs or [])
    if specs and not model.inputs["cond"]:
        raise GeonbError(f"this model was trained without conditioning grids; drop --cond ({' '.join(specs)}).")
    if len(specs) != len(model.inputs["cond"]):
        raise GeonbError(f"this model needs {len(model.inputs['cond'])} conditioning grid(s) "
                         f"({', '.join(model.inputs['cond'])}); got {len(specs)}. Pass them with --cond FILE:VAR.")
    return [_cond_on_grid(spec, _refined(grid, r), r, allow_outliers)[2]
            for spec, r in zip(specs, model.arch_args["cond_res"])]


def super_resolved(model: TrainedModel, grid: xr.Dataset, hr, what: str, source: str) -> xr.Dataset:
    """The high-res grid ``hr`` (numpy or dask; (time, y, x) for a series) as a CF Dataset on ``grid``'s
    refined cells, with the input's coordinate names and attributes and its CRS (a grid-mapping coordinate,
    via rioxarray)."""
    import rioxarray  # noqa: F401  (registers .rio)

    f = model.arch_args["factor"]
    da = grid[grid.attrs["target"]]
    y_name, x_name = grid.attrs["y_name"], grid.attrs["x_name"]
    fine = _refined(grid, f)
    x = fine.x.values
    if "lon_seam" in grid.attrs:  # across the seam: back into the input's convention (0…360 or −180…180)
        x = (x - grid.attrs["lon_seam"]) % 360 + grid.attrs["lon_seam"]
    crs = grid.attrs["crs"]
    cf = ({"units": "degrees_north", "standard_name": "latitude"}, {"units": "degrees_east", "standard_name": "longitude"}) \
        if crs == "EPSG:4326" else ({}, {})
    t_name = grid.attrs.get("t_name")
    times = {t_name: (t_name, grid.time.values, grid.time.attrs)} if "time" in da.dims else {}
    out = xr.DataArray(
        hr, dims=(*times, y_name, x_name), name=str(da.name),
        coords={**times, y_name: (y_name, fine.y.values, {**cf[0], **grid.y.attrs}),
                x_name: (x_name, x, {**cf[1], **grid.x.attrs})},
        attrs={**{k: v for k, v in da.attrs.items() if k != "grid_mapping"},
               "long_name": f"{da.attrs.get('long_name', da.name)}, super-resolved ×{f}"},
    ).to_dataset()
    if crs:  # a CF grid-mapping coordinate: NetCDF, zarr and GeoTIFF readers all find the CRS
        out = out.rio.write_crs(crs)
    out.attrs.update(Conventions="CF-1.8", title=f"geonb {model.arch} ×{f} downscaling of {what}",
                     source=f"{source} ({model.arch}, trained on {model.info.get('trained_on', '?')})")
    return out


def _refined(grid: xr.Dataset, r: int) -> xr.Dataset:
    """An empty grid with the cell centres of ``grid`` refined ×r (its CRS kept)."""
    return xr.Dataset(coords={"y": refine_coords(grid.y.values, r), "x": refine_coords(grid.x.values, r)},
                      attrs={"crs": grid.attrs["crs"]})


def _archs() -> list[str]:
    return [a.name for a in list_archs() if a.task == "downscale"]


def add_cli(subparsers) -> None:
    """``geonb train``: a downscaling model from a high-res grid (it makes the low-res input itself)."""
    t = subparsers.add_parser("train", help="train a downscaling model on a high-res grid (makes the low-res input itself)")
    t.add_argument("--arch", required=True, help=f"one of {', '.join(_archs())}")
    t.add_argument("--data", required=True, help="high-res NetCDF/zarr file or embedded grid name (e.g. antarctica)")
    t.add_argument("--var", default="", help="variable in --data")
    t.add_argument("--factor", type=cli_type(PARAMS["factor"]), default=4, help="2, 4, 8 or 16")
    t.add_argument("--model", required=True, help="output model file (.pt); its checkpoints go to <name>_checkpoints/")
    t.add_argument("--overwrite", action="store_true", help="replace --model if it exists")
    t.add_argument("--allow-outliers", action="store_true", help="keep values far outside the grid's robust range")
    t.add_argument("--cond", nargs="*", metavar="FILE:VAR[@r]",
                   help="conditioning grids covering the target (x, y: the coordinates)")
    t.add_argument("--valid-above", type=cli_type(PARAMS["valid_above"]),
                   help="cells at or below are masked (default: the data's; antarctica 0)")
    t.add_argument("--epochs", type=cli_type(PARAMS["epochs"]), default=30)
    t.add_argument("--steps", type=cli_type(PARAMS["steps_per_epoch"], "steps"), default=40, help="batches per epoch")
    t.add_argument("--batch-size", type=cli_type(PARAMS["batch_size"]), default=16)
    t.add_argument("--lr", type=cli_type(PARAMS["lr"]), help="learning rate (default: the arch's)")
    t.add_argument("--patch", type=cli_type(PARAMS["patch_lr"], "patch"), default=16, help="training tile in low-res px")
    t.add_argument("--patience", type=cli_type(PARAMS["patience"]), default=5)
    t.add_argument("--n-blocks", type=cli_type(PARAMS["n_blocks"]), default=12, help="srgan RRDBs")
    t.add_argument("--nf", type=cli_type(PARAMS["nf"]), default=64, help="srgan feature maps")
    t.add_argument("--beta", type=cli_type(PARAMS["beta"]), default=0.2, help="srgan residual scaling")
    t.add_argument("--seed", type=cli_type(PARAMS["seed"]), default=0)
    t.add_argument("--device", type=cli_type(PARAMS["device"]), default="auto", help="auto (cuda if present), cpu or cuda")
    t.add_argument("--amp", default="auto", choices=AMP, help="bf16 autocast (auto: on GPUs that support it)")
    t.add_argument("--compile", action="store_true", help="torch.compile the networks")
    t.add_argument("--workers", type=cli_type(PARAMS["workers"]), default=0, help="DataLoader processes making batches")
    t.set_defaults(func=cli_train)


TASK = Task(
    "downscale", "super-resolution of coarsened grids (elevation, ice thickness)", PARAMS,
    {"data_prep": data_prep, "simulate": simulate, "train": train, "error_maps": error_maps,
     "scatter_plots": scatter_plots, "transects": transects},
    predict_file=predict_file, predict_options=("cond", "tile", "chunk", "allow_outliers"),
    cpu_bf16=True,  # srcnn, 3 seeds: every held-out number within float32's spread (benchmarks/results/bf16_srcnn.md)
)
