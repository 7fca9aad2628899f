"""Scores of a prediction with an error bar, and of gap filling by distance to the data."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage, special

from . import bias, correlation, rmse


def distance_to_observed(obs) -> np.ndarray:
    """Per day, the distance (in pixels) of every pixel to the nearest observed pixel."""
    obs = np.asarray(obs, bool)
    out = np.full(obs.shape, np.inf, dtype="float32")
    for t in range(obs.shape[0]):
        if obs[t].any():
            out[t] = ndimage.distance_transform_edt(~obs[t])
    return out


def gaussian_crps(error, sigma) -> np.ndarray:
    """CRPS of N(mean, σ²) against the truth, with ``error`` = mean − truth (closed form)."""
    z = np.asarray(error) / sigma
    return sigma * (z * special.erf(z / np.sqrt(2)) + 2 * np.exp(-z * z / 2) / np.sqrt(2 * np.pi) - 1 / np.sqrt(np.pi))


def score(truth, mean, points, sigma=None) -> dict:
    """RMSE, bias, correlation on ``points``; with σ also 1σ/2σ coverage and mean CRPS."""
    points = np.asarray(points, bool)
    t, m = np.asarray(truth)[points], np.asarray(mean)[points]
    out = {"n": int(points.sum()), "rmse": rmse(m, t), "bias": bias(m, t), "correlation": correlation(m, t)}
    if sigma is not None:
        s = np.asarray(sigma)[points]
        err = np.abs(m - t)
        out.update({
            "cover_1sigma": float(np.mean(err <= s)),
            "cover_2sigma": float(np.mean(err <= 2 * s)),
            "crps": float(np.mean(gaussian_crps(m - t, s))),
            "mean_sigma": float(np.mean(s)),
        })
    return out


def reliability(truth, mean, sigma, points, levels=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)) -> pd.DataFrame:
    """For each central interval of nominal probability p, the fraction of points inside it."""
    points = np.asarray(points, bool)
    z = np.abs(np.asarray(mean)[points] - np.asarray(truth)[points]) / np.asarray(sigma)[points]
    half = special.erfinv(np.asarray(levels)) * np.sqrt(2)  # half-width in σ of the p interval
    return pd.DataFrame({"nominal": levels, "observed": [float(np.mean(z <= h)) for h in half]})


def rmse_by_distance(truth, mean, points, obs_input, edges=(0, 2, 4, 8, 16, 32, np.inf)) -> pd.DataFrame:
    """RMSE of ``points`` binned by distance (pixels) to the nearest pixel the method saw."""
    points = np.asarray(points, bool)
    dist = distance_to_observed(obs_input)[points]
    err = np.asarray(mean)[points] - np.asarray(truth)[points]
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (dist > lo) & (dist <= hi)
        rows.append({"distance_px": f"({lo:g}, {hi:g}]", "n": int(sel.sum()),
                     "rmse": float(np.sqrt(np.mean(err[sel] ** 2))) if sel.any() else np.nan})
    return pd.DataFrame(rows)


COVERAGE = {1: 0.6827, 2: 0.9545}  # a Gaussian's share within 1σ and 2σ of its mean


def chi2_miss(cover: dict) -> np.ndarray:
    """How far coverages ``{k: share within kσ}`` are from a Gaussian's: each miss in units of a coverage's
    spread (divided by p(1 − p), a χ² distance, so the 2σ miss, whose p(1 − p) is 5× smaller, weighs more)."""
    return sum((c - COVERAGE[k]) ** 2 / (COVERAGE[k] * (1 - COVERAGE[k])) for k, c in cover.items())


def fit_sigma_scale(error, sigma, miss=chi2_miss) -> float:
    """The scalar s by which σ is multiplied so that the 1σ and 2σ coverages of ``error`` (mean − truth)
    come closest to a Gaussian's p, by ``miss`` of the coverages (default ``chi2_miss``: least squares over
    both in units of their spread). Fitted on validation cells, then applied unchanged to every prediction.
    A variance scaling (s²), robust to heavy-tailed errors, where the mean squared z-score would be set by
    the few largest."""
    z = np.sort(np.abs(np.ravel(error)) / np.ravel(sigma))
    z = z[np.isfinite(z)]
    if not z.size:
        raise ValueError("no finite error / σ to fit a σ scale on")
    scales = np.geomspace(1e-4, 1e4, 16_001) * max(float(np.median(z)), 1e-12)
    cover = {k: np.searchsorted(z, k * scales, side="right") / z.size for k in COVERAGE}
    return float(scales[int(np.argmin(miss(cover)))])


def quantile_bins(values, bins: int, reference=None) -> np.ndarray:
    """The bin (0 … bins − 1) of each value among ``bins`` quantile bins of ``reference`` (default: the values)."""
    values = np.asarray(values)
    edges = np.quantile(values if reference is None else reference, np.linspace(0, 1, bins + 1))
    return np.clip(np.searchsorted(edges, values, side="right") - 1, 0, bins - 1)


def spread_skill(error, sigma, bins: int = 10) -> pd.DataFrame:
    """Cells binned by σ into ``bins`` quantile bins (deciles by default): per bin the mean σ, the RMSE of
    ``error`` in it and the share within 1σ. A σ that knows where it is wrong has RMSE rising with σ,
    RMSE ≈ σ in every bin."""
    error, sigma = np.ravel(error), np.ravel(sigma)
    which = quantile_bins(sigma, bins)
    rows = [{"bin": k + 1, "n": int((which == k).sum()), "mean sigma": float(sigma[which == k].mean()),
             "rmse": float(np.sqrt(np.mean(error[which == k] ** 2))),
             "cover_1sigma": float(np.mean(np.abs(error[which == k]) <= sigma[which == k]))}
            for k in range(bins) if (which == k).any()]
    return pd.DataFrame(rows).set_index("bin")
