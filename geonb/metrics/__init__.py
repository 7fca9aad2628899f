"""Scores, one package: continuous scores here; ``superres`` (PSNR, SSIM, spectra) and
``probabilistic`` (coverage, CRPS, reliability) beside them.

Continuous scores work on NaN-masked arrays: pixels where either side is NaN (or
``where`` is False) are skipped.
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import uniform_filter


def _pair(pred, truth, where=None):
    pred, truth = np.asarray(pred, float), np.asarray(truth, float)
    ok = np.isfinite(pred) & np.isfinite(truth)
    if where is not None:
        ok &= np.asarray(where, bool)
    return pred[ok], truth[ok]


def rmse(pred, truth, where=None) -> float:
    p, t = _pair(pred, truth, where)
    return float(np.sqrt(np.mean((p - t) ** 2))) if p.size else float("nan")


def bias(pred, truth, where=None) -> float:
    p, t = _pair(pred, truth, where)
    return float(np.mean(p - t)) if p.size else float("nan")


def correlation(pred, truth, where=None) -> float:
    p, t = _pair(pred, truth, where)
    return float(np.corrcoef(p, t)[0, 1]) if p.size > 1 else float("nan")


def count(pred, truth, where=None) -> int:
    return int(_pair(pred, truth, where)[0].size)


def roughness(field: np.ndarray, size: int = 5) -> np.ndarray:
    """Moving standard deviation in a ``size``×``size`` window (DeepBedMap's roughness), NaN-aware."""
    field = np.asarray(field, float)
    ok = np.isfinite(field)
    x = np.where(ok, field, 0.0)
    n = uniform_filter(ok.astype(float), size, mode="nearest")
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = uniform_filter(x, size, mode="nearest") / n
        var = uniform_filter(x * x, size, mode="nearest") / n - mean**2
    return np.where(ok, np.sqrt(np.clip(var, 0, None)), np.nan)
