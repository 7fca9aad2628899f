"""Cross-validation points for gap filling on real cloudy cubes, shaped like real clouds.

The hidden points are observed pixels covered by real cloud shapes taken from *other*
days (DINEOF's way), so their sizes and distances to the nearest observation look like
the real gaps. Every method is scored on exactly the same points (``geonb.metrics.probabilistic``).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from .errors import GeonbError


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


def synthetic_cloudy_cube(n_time: int = 8, ny: int = 64, nx: int = 64, cover: float = 0.4, seed: int = 0):
    """A synthetic SST cube (``data.synthetic_sst``) with blobby random clouds of about
    ``cover`` fraction: (truth DataArray, cloudy DataArray). For tests and examples."""
    from .data import synthetic_sst

    truth = synthetic_sst(n_time, ny, nx, seed=seed)
    rng = np.random.default_rng(seed + 1)
    smooth = ndimage.gaussian_filter(rng.normal(size=(n_time, ny, nx)), (0, 4, 4))
    cloud = smooth > np.quantile(smooth, 1 - cover, axis=(1, 2), keepdims=True)
    return truth, truth.where(~cloud)
