"""Cross-validation for gap filling on real cloudy cubes: cloud-shaped hidden points and scores.

The hidden points are observed pixels covered by real cloud shapes taken from *other*
days (DINEOF's way), so their sizes and distances to the nearest observation look like
the real gaps. Every method is scored on exactly the same points.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage, special

from .errors import GeonbError
from .metrics import bias, correlation, rmse


def dineof_cv_count(n_sea: int, n_time: int) -> int:
    """DINEOF's number of cross-validation points: min(0.01·M·N + 40, 0.03·M·N)."""
    numel = n_sea * n_time
    return int(min(0.01 * numel + 40, 0.03 * numel))


def cloud_cv_mask(obs, n_points: int, seed: int = 0, sea=None, cloud_size: int = 500) -> np.ndarray:
    """Choose ``n_points`` observed pixels hidden by real cloud patches of other days.

    ``obs`` (time, lat, lon) is True where a pixel was observed. Repeatedly: pick a day t
    and a donor day s ≠ t, pick one connected cloud patch of day s (cloud = sea and not
    observed) and hide the pixels it covers that are observed on day t. The last patch
    is cut to land exactly on ``n_points``. Returns a bool array like ``obs``.
    """
    obs = np.asarray(obs, bool)
    if obs.ndim != 3 or obs.shape[0] < 2:
        raise GeonbError(f"cloud-shaped CV points need a (time, lat, lon) cube with ≥ 2 days; got shape {obs.shape}.")
    sea = obs.any(axis=0) if sea is None else np.asarray(sea, bool)
    if n_points > obs.sum() // 2:
        raise GeonbError(f"asked for {n_points} CV points but only {int(obs.sum())} pixels are observed; ask for fewer.")
    rng = np.random.default_rng(seed)
    patches = []  # (day, flat indices) of every connected cloud patch
    for s in range(obs.shape[0]):
        labels, n = ndimage.label(sea & ~obs[s])
        if n:
            flat = labels.ravel()
            order = np.argsort(flat, kind="stable")
            bounds = np.searchsorted(flat[order], np.arange(1, n + 2))
            patches += [(s, order[bounds[i]:bounds[i + 1]]) for i in range(n)]
    if not patches:
        raise GeonbError("no day has clouds to borrow shapes from; give CV points another way (random pixels).")
    hidden = np.zeros_like(obs)
    flat_hidden = hidden.reshape(obs.shape[0], -1)
    flat_obs = obs.reshape(obs.shape[0], -1)
    count, tries = 0, 0
    while count < n_points:
        tries += 1
        if tries > 100 * len(patches) + 10000:
            raise GeonbError(f"could not place {n_points} cloud-shaped CV points; ask for fewer.")
        s, idx = patches[rng.integers(len(patches))]
        t = rng.integers(obs.shape[0])
        if t == s:
            continue
        if len(idx) > cloud_size:
            rows, cols = np.divmod(idx, obs.shape[2])
            centre = rng.integers(len(idx))
            near = np.argsort((rows - rows[centre]) ** 2 + (cols - cols[centre]) ** 2, kind="stable")
            idx = idx[near[:cloud_size]]
        new = idx[flat_obs[t, idx] & ~flat_hidden[t, idx]]
        # keep each day at least half observed so every day keeps data to fill from
        if not len(new) or flat_hidden[t].sum() + len(new) > flat_obs[t].sum() // 2:
            continue
        new = new[: n_points - count]
        flat_hidden[t, new] = True
        count += len(new)
    return hidden


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


def synthetic_cloudy_cube(n_time: int = 8, ny: int = 64, nx: int = 64, cover: float = 0.4, seed: int = 0):
    """A synthetic SST cube (``data.synthetic_sst``) with blobby random clouds of about
    ``cover`` fraction: (truth DataArray, cloudy DataArray). For tests and examples."""
    from .data import synthetic_sst

    truth = synthetic_sst(n_time, ny, nx, seed=seed)
    rng = np.random.default_rng(seed + 1)
    smooth = ndimage.gaussian_filter(rng.normal(size=(n_time, ny, nx)), (0, 4, 4))
    cloud = smooth > np.quantile(smooth, 1 - cover, axis=(1, 2), keepdims=True)
    return truth, truth.where(~cloud)
