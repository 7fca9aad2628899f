"""Scores of super-resolved grids on the cells that count (a mask): RMSE, MAE, bias, PSNR and SSIM
from torchmetrics, consistency with the low-res input, fine-scale power."""
from __future__ import annotations

import numpy as np
import torch

from ..resample import coarsen
from . import rmse


def topographic_consistency(pred, lr, factor: int, mask=None) -> float:
    """RMSE between the block-mean of the prediction and the low-res input (0 = consistent),
    over the low-res cells whose whole block is in ``mask`` (all by default)."""
    coarse = coarsen(np.asarray(pred, float), factor)
    if mask is None:
        return rmse(coarse, lr)
    whole = coarsen(np.asarray(mask, float), factor) == 1
    return rmse(coarse[whole], np.asarray(lr)[whole]) if whole.any() else float("nan")


def masked_scores(pred, truth, mask) -> dict:
    """RMSE, MAE, bias, PSNR (peak: the truth's range on the mask) and SSIM (torchmetrics, 11-px
    Gaussian window over the whole grid, its map averaged over the mask) on the cells of ``mask``."""
    from torchmetrics.functional import mean_absolute_error, mean_squared_error
    from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

    p, t = torch.as_tensor(np.asarray(pred, "float64")), torch.as_tensor(np.asarray(truth, "float64"))
    m = torch.as_tensor(np.asarray(mask, bool))
    peak = float(t[m].max() - t[m].min()) or 1.0
    _, ssim_map = structural_similarity_index_measure(p[None, None], t[None, None], data_range=peak,
                                                      return_full_image=True)
    return {"rmse": float(mean_squared_error(p[m], t[m], squared=False)), "mae": float(mean_absolute_error(p[m], t[m])),
            "bias": float((p[m] - t[m]).mean()), "psnr": float(peak_signal_noise_ratio(p[m], t[m], data_range=peak)),
            "ssim": float(ssim_map[0, 0][m].mean())}


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
