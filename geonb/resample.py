"""Changing resolution: the block-mean degradation we learn to invert, and interpolation.

A low-res cell is the mean of its factor×factor block, so its value sits at the block's
centre: every upsampling here is pixel-area aligned (``align_corners=False``).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .errors import GeonbError


def check_factor(factor) -> int:
    """The scale factor as an int; a power of 2 (2, 4, 8, 16, ...) or a GeonbError."""
    try:
        f = int(factor)
    except (TypeError, ValueError):
        f = 0
    if f != factor or f < 2 or f & (f - 1):
        raise GeonbError(f"scale factor {factor!r} is not a power of 2; use 2, 4, 8 or 16 "
                         "(models upsample in ×2 steps).")
    return f


def check_finite(grid, what: str):
    """``grid`` (numpy, or dask: counted chunk by chunk, not loaded) when every cell is finite."""
    grid = grid if hasattr(grid, "dask") else np.asarray(grid)
    bad = int((~np.isfinite(grid)).sum())
    if bad:
        raise GeonbError(f"{what} has {bad} NaN/inf cells (of {grid.size}); downscaling needs a "
                         "complete grid. Fill the gaps first (e.g. the inpaint task) or crop to a complete region.")
    return grid


def nearest_filled(grid: np.ndarray) -> np.ndarray:
    """``grid`` (y, x) with each NaN cell given the value of its nearest finite cell: what a network sees
    where a time step has clouds or land, so no NaN enters a convolution (those cells are out of the loss
    and NaN in the output)."""
    missing = ~np.isfinite(grid)
    if not missing.any() or missing.all():
        return grid
    from scipy.ndimage import distance_transform_edt

    idx = distance_transform_edt(missing, return_distances=False, return_indices=True)
    return grid[tuple(idx)]


def crop_to_multiple(grid: np.ndarray, m: int) -> np.ndarray:
    ny, nx = grid.shape[-2:]
    return grid[..., : ny - ny % m, : nx - nx % m]


def coarsen(hr: np.ndarray, factor: int) -> np.ndarray:
    """Block-average a high-res grid by ``factor`` (the degradation we learn to invert)."""
    factor = check_factor(factor)
    hr = check_finite(hr, "the high-res grid")
    ny, nx = hr.shape
    if ny % factor or nx % factor:
        raise GeonbError(f"a {ny}×{nx} grid does not divide into {factor}×{factor} blocks; "
                         "crop it (geonb.resample.crop_to_multiple) first.")
    return hr.reshape(ny // factor, factor, nx // factor, factor).mean(axis=(1, 3))


def upsample_bicubic(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Bicubic ×scale (pixel-area aligned, as block-averaged grids are); identity for 1."""
    if scale == 1:
        return x
    return F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)


def block_mean(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Average over factor×factor blocks: the degradation that makes low-res grids."""
    return x if factor == 1 else F.avg_pool2d(x, factor)


def to_resolution(x: torch.Tensor, r_from: int, r_to: int) -> torch.Tensor:
    """Bring a grid at resolution ``r_from`` onto resolution ``r_to`` (both powers of 2)."""
    if r_to >= r_from:
        return upsample_bicubic(x, r_to // r_from)
    return block_mean(x, r_from // r_to)


def refine_coords(c: np.ndarray, factor: int) -> np.ndarray:
    """Cell centres of the high-res grid inside low-res cells with centres ``c``: linear between the coarse
    centres (the edge step beyond them), so unevenly spaced cells (a Mercator latitude axis) keep their
    positions and fine cells never overlap."""
    c = np.asarray(c, dtype="float64")
    sub = (np.arange(factor) + 0.5) / factor - 0.5
    if c.size < 2:
        return (c[:, None] + sub[None, :]).ravel()
    at = (np.arange(c.size)[:, None] + sub[None, :]).ravel()  # fine centres in coarse index units
    i = np.clip(np.floor(at), 0, c.size - 2).astype(int)
    return c[i] + (at - i) * (c[i + 1] - c[i])
