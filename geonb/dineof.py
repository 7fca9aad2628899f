"""DINEOF: gap filling by iterated truncated EOF (SVD) reconstruction, in numpy.

Written from Beckers & Rixen (2003, J. Atmos. Oceanic Technol. 20:1839) and
Alvera-Azcárate et al. (2005, Ocean Modelling 9:325):

1. X (space × time) minus the mean of all observed values; missing values set to 0
   (= filled with the mean).
2. For k = 1, 2, …: repeat "reconstruct X with its k leading EOFs, replace the missing
   values by the reconstruction" until the missing values stop changing; score the
   reconstruction on cross-validation points (observed values hidden from step 1).
   Each k starts from the field converged with k − 1 modes.
3. Keep the k with the lowest CV error; put the CV values back into that best guess
   and iterate again with k modes.

The EOFs come from the eigenvectors of the small time × time matrix XᵀX (the
truncated-SVD reconstruction is X V_k V_kᵀ), cheap for the few hundred days DINEOF
cubes usually have. Optional temporal filter (Alvera-Azcárate et al. 2009): the
temporal covariance XᵀX is smoothed along both time axes by ``filter_iter`` diffusion
steps of strength ``alpha`` (real time spacing) before its eigenvectors are taken.

Cross-validation points: ``cv="random"`` picks single observed pixels at random, as the
DINEOF program does when given no ``clouds`` file (the published Alboran result);
``cv="clouds"`` hides cloud-shaped patches of other days (harder, closer to real gaps).
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from .cv import cloud_cv_mask, dineof_cv_count
from .errors import GeonbError
from .progress import progress_bar


@dataclass
class DineofResult:
    filled: np.ndarray          # (time, lat, lon), observed values unchanged, land NaN
    n_modes: int
    cv_rms: float               # RMS error at the CV points with n_modes
    cv_errors: dict = field(default_factory=dict)  # modes -> CV RMS
    n_cv: int = 0
    cv_points: np.ndarray | None = None
    seconds: dict = field(default_factory=dict)  # "modes" (choosing k) and "final" (the reconstruction)


def _time_filter(times, alpha: float, n_iter: int) -> np.ndarray:
    """(I + alpha·L)^n: n explicit diffusion steps, L the Laplacian on the (uneven) time axis."""
    n = len(times)
    if alpha <= 0 or n_iter <= 0 or n < 3:
        return np.eye(n)
    dt = np.diff(np.asarray(times, float))
    if np.any(dt <= 0):
        raise GeonbError("the time axis must increase strictly for the temporal filter; sort the cube by time.")
    if alpha > dt.min() ** 2 / 2:
        raise GeonbError(f"temporal filter alpha={alpha} is unstable for a time step of {dt.min()}; "
                         f"use alpha ≤ {dt.min() ** 2 / 2}.")
    lap = np.zeros((n, n))
    for i in range(n):  # flux form d/dt(dX/dt), zero flux at both ends
        width = (dt[max(i - 1, 0)] + dt[min(i, n - 2)]) / 2
        if i > 0:
            lap[i, i - 1] += 1 / dt[i - 1] / width
            lap[i, i] -= 1 / dt[i - 1] / width
        if i < n - 1:
            lap[i, i + 1] += 1 / dt[i] / width
            lap[i, i] -= 1 / dt[i] / width
    step = np.eye(n) + alpha * lap
    return np.linalg.matrix_power(step, n_iter)


def _project(X, k, filt):
    """Reconstruct X (space × time) with its k leading EOFs: X V_k V_kᵀ.

    V are the eigenvectors of the temporal covariance XᵀX, smoothed in time on both
    sides by the filter (identity when the filter is off: plain truncated SVD).
    """
    w, V = np.linalg.eigh(filt @ (X.T @ X) @ filt.T)
    Vk = V[:, np.argsort(w)[::-1][:k]]
    return (X @ Vk) @ Vk.T


def _converge(X, missing, k, filt, tol, max_iter):
    """Iterate the k-mode reconstruction of the missing entries of X (in place)."""
    scale = np.sqrt(np.mean(X[~missing] ** 2)) or 1.0  # std of the anomalies, as DINEOF
    for _ in range(max_iter):
        rec = _project(X, k, filt)
        change = np.sqrt(np.mean((rec[missing] - X[missing]) ** 2)) / scale
        X[missing] = rec[missing]
        if change < tol:
            break
    return X


def random_cv_mask(obs, n_points: int, seed: int = 0) -> np.ndarray:
    """``n_points`` observed pixels drawn at random (DINEOF's internal choice)."""
    obs = np.asarray(obs, bool)
    idx = np.flatnonzero(obs)
    if n_points >= len(idx):
        raise GeonbError(f"asked for {n_points} CV points but only {len(idx)} pixels are observed; ask for fewer.")
    hidden = np.zeros(obs.size, bool)
    hidden[np.random.default_rng(seed).choice(idx, n_points, replace=False)] = True
    return hidden.reshape(obs.shape)


def dineof(cube, times=None, *, sea=None, max_modes: int = 20, cv_points=None, cv: str = "clouds",
           n_cv: int | None = None, seed: int = 0, tol: float = 1e-3, max_iter: int = 300,
           alpha: float = 0.0, filter_iter: int = 0, progress: bool = True) -> DineofResult:
    """Fill the NaN of ``cube`` (time, lat, lon) on the ``sea`` pixels (default: ever observed).

    ``cv_points`` (bool, like cube) are the observed values hidden to choose the number
    of modes; by default DINEOF's count of them, chosen as ``cv`` says ("clouds" or
    "random"). ``tol``: stop iterating when the RMS change of the missing values is
    below tol × the standard deviation of the data (DINEOF's ``toliter``).
    """
    cube = np.asarray(cube, dtype="float64")
    if cube.ndim != 3:
        raise GeonbError(f"DINEOF needs a (time, lat, lon) cube; got {cube.ndim} dims.")
    obs = np.isfinite(cube)
    sea = obs.any(axis=0) if sea is None else np.asarray(sea, bool)
    obs &= sea
    n_time = cube.shape[0]
    if n_time < 3:
        raise GeonbError(f"DINEOF needs at least 3 time steps to find EOFs; the cube has {n_time}.")
    empty = [t for t in range(n_time) if not obs[t].any()]
    if empty:  # an all-cloud day has no data to fix its EOF amplitude: fill the others, leave it NaN
        days = [t for t in range(n_time) if t not in empty]
        warnings.warn(f"DINEOF: time step(s) {empty} have no observed pixel (all cloud); they are left missing.",
                      stacklevel=2)
        sub = dineof(cube[days], None if times is None else np.asarray(times)[days], sea=sea, max_modes=max_modes,
                     cv_points=None if cv_points is None else np.asarray(cv_points)[days], cv=cv, n_cv=n_cv,
                     seed=seed, tol=tol, max_iter=max_iter, alpha=alpha, filter_iter=filter_iter, progress=progress)
        filled = np.full(cube.shape, np.nan, "float32")
        filled[days] = sub.filled
        cv_full = np.zeros(cube.shape, bool)
        cv_full[days] = sub.cv_points
        return DineofResult(filled, sub.n_modes, sub.cv_rms, sub.cv_errors, sub.n_cv, cv_full, sub.seconds)
    if not (sea & ~obs).any():
        raise GeonbError("the cube has no missing sea values: nothing for DINEOF to fill.")
    if cv_points is None:
        n = n_cv or dineof_cv_count(int(sea.sum()), n_time)
        if cv == "clouds":
            try:
                cv_points = cloud_cv_mask(obs, n, seed=seed, sea=sea)
            except GeonbError as exc:  # e.g. the same clouds every day: no other-day shape fits
                warnings.warn(f"DINEOF: {exc} Using random CV points instead.", stacklevel=2)
                cv_points = random_cv_mask(obs, n, seed=seed)
        elif cv == "random":
            cv_points = random_cv_mask(obs, n, seed=seed)
        else:
            raise GeonbError(f"unknown cv={cv!r}; use 'clouds' or 'random'.")
    cv_points = np.asarray(cv_points, bool) & obs
    if not cv_points.any():  # the number of modes is chosen on these: none held out, nothing to choose by
        raise GeonbError(f"the cube's {int(sea.sum())} sea cells over {n_time} days are too few for DINEOF to hold out "
                         "observed values for cross-validation; give more sea cells or more days.")
    filt = _time_filter(np.arange(n_time) if times is None else times, alpha, filter_iter)

    mean = cube[obs].mean()
    X0 = np.where(obs, cube - mean, 0.0)[:, sea].T  # space × time
    cv_flat = cv_points[:, sea].T
    truth_cv = X0[cv_flat]
    missing_cv = ~obs[:, sea].T | cv_flat
    max_modes = max(1, min(max_modes, n_time - 1, X0.shape[0] - 1))

    t_start = time.perf_counter()
    X = np.where(missing_cv, 0.0, X0)
    errors = {}
    best_k, best_err, best_X = 1, np.inf, None
    for k in progress_bar(range(1, max_modes + 1), desc="DINEOF modes", disable=not progress, leave=False):
        X = _converge(X, missing_cv, k, filt, tol, max_iter)
        errors[k] = float(np.sqrt(np.mean((X[cv_flat] - truth_cv) ** 2)))
        if errors[k] < best_err:
            best_k, best_err, best_X = k, errors[k], X.copy()
        if k > 3 and errors[k] > errors[k - 1] > errors[k - 2] > errors[k - 3]:
            break  # DINEOF's rule: three rises in a row, past the optimum

    t_modes = time.perf_counter()
    # final reconstruction: from the best guess, CV values back in, best_k modes
    missing = ~obs[:, sea].T
    X = best_X
    X[cv_flat] = truth_cv
    X = _converge(X, missing, best_k, filt, tol, max_iter)
    filled = np.full(cube.shape, np.nan)
    filled[:, sea] = X.T + mean
    filled[obs] = cube[obs]  # observed pixels exactly as given
    seconds = {"modes": t_modes - t_start, "final": time.perf_counter() - t_modes}
    return DineofResult(filled.astype("float32"), best_k, best_err, errors, int(cv_points.sum()), cv_points, seconds)
