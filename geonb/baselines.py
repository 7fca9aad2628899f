"""Classical methods to measure models against, on exactly the same pixels: gap fillers, bicubic
and the cubic B-spline."""
from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import uniform_filter, zoom
from skimage.restoration import inpaint_biharmonic

from .resample import check_factor, upsample_bicubic


def local_mean(field: np.ndarray, hidden: np.ndarray, size: int = 9) -> np.ndarray:
    """Fill hidden/NaN pixels with the mean of observed pixels in a box around them.

    The box grows (×2) for pixels with no observed neighbour, so every pixel with any
    observation in the patch gets a value. Works on (..., y, x); observed pixels unchanged.
    """
    observed = np.isfinite(field) & ~hidden
    values = np.where(observed, field, 0.0)
    out = np.where(observed, field, np.nan)
    box = size
    axes = (0,) * (field.ndim - 2) + (1, 1)
    while np.isnan(out).any() & (box <= 4 * max(field.shape[-2:])):
        win = tuple(box if a else 1 for a in axes)
        num = uniform_filter(values, win, mode="constant")
        den = uniform_filter(observed.astype(float), win, mode="constant")
        with np.errstate(invalid="ignore", divide="ignore"):
            estimate = np.where(den > 1e-9, num / den, np.nan)
        out = np.where(np.isnan(out), estimate, out)
        box *= 2
    return out


def biharmonic(field: np.ndarray, hidden: np.ndarray) -> np.ndarray:
    """scikit-image biharmonic inpainting of hidden pixels, per 2-D image (land left NaN)."""
    field = np.asarray(field, dtype="float64")
    out = np.empty_like(field)
    flat_f, flat_h, flat_o = field.reshape(-1, *field.shape[-2:]), hidden.reshape(-1, *field.shape[-2:]), out.reshape(-1, *field.shape[-2:])
    for f, h, o in zip(flat_f, flat_h, flat_o):
        land = ~np.isfinite(f) & ~h
        fill = np.isnan(f) | h
        start = np.where(fill, np.nanmean(np.where(h, np.nan, f)), f)
        o[:] = inpaint_biharmonic(start, fill)
        o[land] = np.nan
    return out


def bicubic(lr: np.ndarray, factor: int) -> np.ndarray:
    """Bicubic upsampling of a low-res grid of block means, pixel-area aligned (float64)."""
    t = torch.as_tensor(np.asarray(lr, dtype="float64"))[None, None]
    return upsample_bicubic(t, check_factor(factor))[0, 0].numpy()


def cubic_spline(lr: np.ndarray, factor: int) -> np.ndarray:
    """Cubic B-spline interpolation of a low-res grid of block means (scipy), pixel-area aligned
    (``grid_mode``: a block's value sits at its centre); on smooth fields far stronger than bicubic."""
    return zoom(np.asarray(lr, dtype="float64"), check_factor(factor), order=3, grid_mode=True, mode="reflect")
