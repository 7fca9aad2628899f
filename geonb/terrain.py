"""Synthetic fractal terrain and physically related conditioning layers.

For DeepBedMap-style multi-input training and for scale tests; never the only
evidence that a model works (evaluation is on real grids).

- ``fractal_terrain``: a random field whose power spectrum falls as k^-beta (real
  topography has beta ~ 2-3), plus ridged valleys so slopes are not Gaussian.
- ``surface_layer``: a smoothed "ice surface" draped over the bed: the bed's long
  wavelengths pass, short ones are damped (as ice thickness filters bed relief).
- ``velocity_layer``: a slope-driven "flow speed", ~ |grad surface|^3 × thickness
  (shallow-ice approximation, Glen's n = 3), log-scaled.
"""
from __future__ import annotations

import numpy as np
import xarray as xr
from scipy import ndimage

from .errors import GeonbError


def fractal_terrain(ny: int = 256, nx: int = 256, beta: float = 2.6, relief: float = 500.0,
                    mean: float = 500.0, seed: int = 0) -> np.ndarray:
    """A (ny, nx) float64 elevation grid in metres with power spectrum ~ k^-beta."""
    if ny < 8 or nx < 8:
        raise GeonbError(f"terrain of {ny}×{nx} is too small; ask for at least 8×8 cells.")
    rng = np.random.default_rng(seed)
    k = np.hypot(np.fft.fftfreq(ny)[:, None], np.fft.fftfreq(nx)[None, :])
    k[0, 0] = np.inf
    spectrum = k ** (-beta / 2) * np.exp(1j * rng.uniform(0, 2 * np.pi, (ny, nx)))
    field = np.real(np.fft.ifft2(spectrum))
    field = (field - field.mean()) / field.std()
    # Valleys are sharper than ridges in eroded terrain: fold part of the field.
    field = field - 0.5 * np.abs(field - np.median(field))
    field = (field - field.mean()) / field.std()
    return mean + relief * field


def surface_layer(bed: np.ndarray, smooth: float = 6.0, thickness: float = 800.0) -> np.ndarray:
    """Smoothed surface over the bed: long wavelengths transfer, short ones are damped."""
    return ndimage.gaussian_filter(bed, smooth, mode="nearest") + thickness


def velocity_layer(surface: np.ndarray, bed: np.ndarray) -> np.ndarray:
    """log10 of a shallow-ice speed ~ thickness * |grad s|^3 (m/yr-like units)."""
    gy, gx = np.gradient(surface)
    slope = np.hypot(gy, gx)
    thickness = np.clip(surface - bed, 1.0, None)
    return np.log10(1.0 + 1e3 * thickness * slope ** 3)


def terrain_dataset(ny: int = 256, nx: int = 256, seed: int = 0, beta: float = 2.6,
                    spacing_deg: float = 1 / 1200) -> xr.Dataset:
    """A Dataset with ``elevation`` (the target), ``surface`` and ``velocity`` on one grid."""
    bed = fractal_terrain(ny, nx, beta=beta, seed=seed)
    surface = surface_layer(bed)
    velocity = velocity_layer(surface, bed)
    coords = {"lat": 40.0 - spacing_deg * (np.arange(ny) + 0.5), "lon": 10.0 + spacing_deg * (np.arange(nx) + 0.5)}
    dims = ("lat", "lon")
    return xr.Dataset(
        {
            "elevation": xr.DataArray(bed.astype("float32"), dims=dims, attrs={"units": "m", "long_name": "synthetic bed elevation"}),
            "surface": xr.DataArray(surface.astype("float32"), dims=dims, attrs={"units": "m", "long_name": "synthetic smoothed surface"}),
            "velocity": xr.DataArray(velocity.astype("float32"), dims=dims, attrs={"units": "1", "long_name": "log10 synthetic slope-driven speed"}),
        },
        coords=coords,
        attrs={"source": f"geonb.terrain.terrain_dataset(seed={seed}, beta={beta})"},
    )
