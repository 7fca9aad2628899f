"""The downscale task's parameters, data defaults, regions (train | val | test) and classical baselines."""
from __future__ import annotations

import re

import numpy as np
import torch
import xarray as xr

from ...baselines import bicubic, cubic_spline
from ...errors import GeonbError
from ...io import open_dataset
from ...losses import DEEPBEDMAP_WEIGHTS
from ...metrics import roughness
from ...normalise import Normaliser
from ...params import ALLOW_OUTLIERS, COMMON, Param
from ...resample import block_mean, check_factor


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
    Param("sigma", bool, False, "a predictive σ per fine cell (<var>_error): a Gaussian-NLL head trained on the "
          "frozen network (srcnn, srgan), its scale fitted on the val region"),
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


# amp auto: bf16 on native-bf16 CPUs for the plain regression networks (srcnn, 3 seeds: every held-out number
# within float32's spread, benchmarks/results/bf16_srcnn.md); not srgan, whose first epoch on the Antarctic grid
# diverged to NaN under bf16 (benchmarks/RESULTS.md, downscaling σ): it trains in float32
CPU_BF16 = ("srcnn", "rsrcnn")


LOSS_WEIGHTS = tuple(DEEPBEDMAP_WEIGHTS)  # srgan's loss weights, parameters of the same names


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


ERROR = "_error"  # a model's σ in 04's predictions: ``<name>_error``, as `geonb predict` names ``<var>_error``


_NAME = re.compile(r"^(?P<method>.+?)_x(?P<factor>\d+)(?:_(?P<inputs>.+))?$")


def _label(name: str) -> str:
    """``srcnn_x4_beta`` → ``srcnn ×4 +beta`` (figure titles and legends)."""
    m = _NAME.match(name)
    return f"{m['method']} ×{m['factor']}" + (f" +{m['inputs'].replace('+', ',')}" if m["inputs"] else "")


def _methods(pred: xr.Dataset):
    """(name, factor) of every prediction, baselines first within each factor."""
    names = [v for v in pred.data_vars if _NAME.match(v) and not v.endswith(ERROR)]
    return sorted(((v, int(_NAME.match(v)["factor"])) for v in names),
                  key=lambda t: (t[1], not t[0].startswith(BASELINES), t[0]))


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


def baseline(name: str, low_res: np.ndarray, factor: int) -> np.ndarray:
    """The classical upsampling ``name``: Keys bicubic or the cubic B-spline, both pixel-area aligned."""
    return (bicubic if name == "bicubic" else cubic_spline)(low_res, factor)


def baseline_rmse(vals: list, factor: int) -> dict[str, float]:
    """Each baseline's RMSE (normalised) on the valid cells of the ``vals`` scenes, weighted as
    ``train_model``'s validation scores the model: the model's val_loss beside the classical methods."""
    sse, n = dict.fromkeys(BASELINES, 0.0), 0.0
    for v in vals:
        low_res = block_mean(torch.as_tensor(v.hr, dtype=torch.float64)[None, None], factor)[0, 0].numpy()
        h, w = low_res.shape[0] * factor, low_res.shape[1] * factor  # the cells the model predicts too
        weight = (np.ones(v.hr.shape) if v.valid is None else v.valid)[:h, :w]
        for b in BASELINES:
            sse[b] += float((weight * (baseline(b, low_res, factor) - v.hr[:h, :w]) ** 2).sum())
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
