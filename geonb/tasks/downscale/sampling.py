"""Training scenes of the downscale task: the regions as scenes, random factor-aligned patches off the
val and test regions (their halo included), time series split by time."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ... import terrain
from ...errors import GeonbError
from ...normalise import Normaliser
from ...resample import block_mean, nearest_filled
from .data import DERIVED, MARGIN, MIN_VALID, _crop, _grown, _layer, _layer_norm, _scored_boxes, setting


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
    """(B, 1+nc+1, H, W) scene stack → a batch ``((low_res, [cond at its r]), hr, weights)``."""
    hr = stack[:, :1]
    low_res = block_mean(hr, factor)
    conds = [block_mean(stack[:, 1 + i: 2 + i], factor // r) for i, r in enumerate(cond_res)]
    return (low_res, conds), hr, stack[:, -1:]


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
