"""Hole sets for gap-filling experiments: simulated squares, real cloud shapes, drawn masks.

A hole set is a uint8 array (sample, y, x), 1 = hidden, with ``patch(sample)`` naming the
patch it belongs to. Holes only ever cover valid (finite) pixels: land is not a hole.
"""
from __future__ import annotations

import numpy as np
import xarray as xr

from .errors import GeonbError

SIMULATED = ("square", "many", "varied")
PLACEMENTS = 3  # each patch gets three different placements (the seed triples its data)


def _squares(valid: np.ndarray, sizes, rng) -> np.ndarray:
    """Place squares of the given sizes at random, preferring mostly-valid positions."""
    ny, nx = valid.shape
    hole = np.zeros_like(valid, dtype=bool)
    for size in (min(int(s), ny, nx) for s in sizes):  # a patch smaller than a square: clip it
        best, best_frac = None, -1.0
        for _ in range(20):  # a few tries to land on ocean rather than land
            y, x = rng.integers(0, ny - size + 1), rng.integers(0, nx - size + 1)
            frac = valid[y:y + size, x:x + size].mean()
            if frac > best_frac:
                best, best_frac = (y, x), frac
            if frac >= 0.9:
                break
        y, x = best
        hole[y:y + size, x:x + size] = True
    return hole & valid


def simulate(valid: np.ndarray, kind: str, rng, many: int = 12) -> np.ndarray:
    """One placement of hole set ``kind`` on a patch whose finite pixels are ``valid``."""
    if kind == "square":
        sizes = [10]
    elif kind == "many":
        sizes = [6] * many
    elif kind == "varied":
        sizes = list(rng.integers(3, 15, size=max(3, many // 2)))
    else:
        raise GeonbError(f"hole set {kind!r}? Simulated sets are {', '.join(SIMULATED)}.")
    return _squares(valid, sizes, rng)


def over_observed(obs: np.ndarray, kind: str, seed: int = 0, tile: int = 64, exclude=None) -> np.ndarray:
    """Hole set ``kind`` laid over the observed pixels of a cloudy cube ``obs`` (time, y, x): one placement
    per ``tile``×``tile`` tile and day (the seed's placements per patch, spread over the days), on
    pixels observed that day and not in ``exclude`` (another set's points). Returns bool like ``obs``."""
    rng = np.random.default_rng(seed)
    free = np.asarray(obs, bool) & (True if exclude is None else ~np.asarray(exclude, bool))
    hidden = np.zeros_like(free)
    nt, ny, nx = free.shape
    for t in range(nt):
        for y in range(0, ny - tile // 2, tile):  # a last part tile of at least half a tile
            for x in range(0, nx - tile // 2, tile):
                part = free[t, y:y + tile, x:x + tile]
                if part.mean() >= 0.5:  # mostly observed: holes in the open, not in clouds or on land
                    hidden[t, y:y + tile, x:x + tile] = simulate(part, kind, rng)
    return hidden


def cloud_library(cube: xr.DataArray, sea: np.ndarray, patch: int, n: int, rng,
                  cover=(0.1, 0.5)) -> np.ndarray:
    """``n`` patch-sized crops of real cloud masks (sea pixels missing on some day).

    Crops whose cloud cover lies within ``cover`` are kept: real shapes, usable amounts.
    """
    cloud = np.isnan(cube.values) & sea[None]
    nt, ny, nx = cloud.shape
    if patch > min(ny, nx):
        raise GeonbError(f"patch {patch} is larger than the cloud cube grid ({ny}×{nx}).")
    crops = []
    for _ in range(n * 50):
        t, y, x = rng.integers(nt), rng.integers(ny - patch + 1), rng.integers(nx - patch + 1)
        crop = cloud[t, y:y + patch, x:x + patch]
        sea_crop = sea[y:y + patch, x:x + patch]
        frac = crop.sum() / max(sea_crop.sum(), 1)
        if sea_crop.mean() > 0.8 and cover[0] <= frac <= cover[1]:
            crops.append(crop)
            if len(crops) == n:
                break
    if not crops:
        raise GeonbError(f"no cloud crop with {cover[0]:.0%}–{cover[1]:.0%} cover found in the cloud cube; "
                         "give a cloudier cube.")
    return np.stack(crops)


def drawn_holes(patches: xr.Dataset, drawn: xr.DataArray) -> tuple[np.ndarray, np.ndarray]:
    """Lay a drawn (lat, lon) mask on every patch it touches: (patch indices, holes)."""
    index, holes = [], []
    for i in range(patches.sizes["patch"]):
        sub = drawn.sel(lat=patches.lat[i].values, lon=patches.lon[i].values, method="nearest").values > 0
        sub &= np.isfinite(patches.field[i].values)
        if sub.any():
            index.append(i)
            holes.append(sub)
    if not holes:
        return np.zeros(0, int), np.zeros((0,) + patches.field.shape[1:], bool)
    return np.array(index), np.stack(holes)


def ring(holes: np.ndarray, width: int) -> np.ndarray:
    """Pixels within ``width`` of a hole but not in it (the seed's context band)."""
    from scipy.ndimage import binary_dilation

    if width <= 0:
        return np.zeros_like(holes, dtype=bool)
    structure = np.ones((1,) * (holes.ndim - 2) + (2 * width + 1, 2 * width + 1), bool)
    return binary_dilation(holes, structure=structure) & ~holes
