"""Scores of super-resolved grids: PSNR, SSIM, consistency with the low-res input, fine-scale power."""
from __future__ import annotations

import numpy as np
import torch

from ..losses import ssim as ssim_torch
from ..resample import coarsen
from . import rmse


def psnr(pred, truth) -> float:
    """Peak signal-to-noise ratio (dB) with the truth's range as the peak."""
    truth = np.asarray(truth, float)
    return float(20 * np.log10((np.nanmax(truth) - np.nanmin(truth)) / rmse(pred, truth)))


def ssim(pred, truth) -> float:
    truth = np.asarray(truth, float)
    t = torch.as_tensor(truth)[None, None]
    p = torch.as_tensor(np.asarray(pred, float))[None, None]
    return float(ssim_torch(p, t, float(truth.max() - truth.min()) or 1.0))


def topographic_consistency(pred, lr, factor: int) -> float:
    """RMSE between the block-mean of the prediction and the low-res input (0 = consistent)."""
    return rmse(coarsen(np.asarray(pred, float), factor), lr)


def radial_spectrum(grid) -> tuple[np.ndarray, np.ndarray]:
    """(wavenumber in cycles/px, radially averaged power) of a plane-detrended, Hann-tapered grid."""
    g = np.asarray(grid, float)
    ny, nx = g.shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    design = np.c_[np.ones(g.size), yy.ravel(), xx.ravel()]
    g = g - (design @ np.linalg.lstsq(design, g.ravel(), rcond=None)[0]).reshape(ny, nx)
    g = g * np.outer(np.hanning(ny), np.hanning(nx))
    power = np.abs(np.fft.fft2(g)) ** 2
    k = np.hypot(*np.meshgrid(np.fft.fftfreq(ny), np.fft.fftfreq(nx), indexing="ij"))
    edges = np.linspace(0, 0.5, min(ny, nx) // 2 + 1)
    idx = np.digitize(k.ravel(), edges) - 1
    ok = (idx >= 0) & (idx < len(edges) - 1)
    sums = np.bincount(idx[ok], power.ravel()[ok], len(edges) - 1)
    counts = np.bincount(idx[ok], minlength=len(edges) - 1)
    return (edges[:-1] + edges[1:]) / 2, sums / np.maximum(counts, 1)


def spectrum_ratio(pred, truth, factor: int) -> float:
    """Fine-scale variance recovered: power at wavenumbers the low-res grid cannot hold
    (above its Nyquist, 1/(2·factor) cycles/px), prediction over truth (1 = all of it)."""
    k, p_pred = radial_spectrum(pred)
    _, p_true = radial_spectrum(truth)
    fine = k > 0.5 / factor
    return float(p_pred[fine].sum() / p_true[fine].sum())


def sr_scores(pred, truth, lr, factor) -> dict:
    return {"rmse": rmse(pred, truth), "psnr": psnr(pred, truth), "ssim": ssim(pred, truth),
            "topo_consistency": topographic_consistency(pred, lr, factor),
            "spectrum_ratio": spectrum_ratio(pred, truth, factor)}
