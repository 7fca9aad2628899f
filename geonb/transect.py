"""Sampling gridded fields along a straight lat/lon line (the 06 transects)."""
from __future__ import annotations

import numpy as np
import xarray as xr


def line_points(start, end, n: int = 300):
    """n points on the straight lat/lon line and their distance (km, great circle) from start."""
    lat = np.linspace(start[0], end[0], n)
    lon = np.linspace(start[1], end[1], n)
    r = 6371.0
    p1, p2 = np.radians(lat[:-1]), np.radians(lat[1:])
    dl = np.radians(np.diff(lon))
    step = 2 * r * np.arcsin(np.sqrt(np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2))
    return lat, lon, np.r_[0, np.cumsum(step)]


def sample_line(grid: xr.DataArray, lat, lon) -> np.ndarray:
    """Nearest-cell values of a (lat, lon) grid along the line."""
    return grid.sel(lat=xr.DataArray(lat, dims="s"), lon=xr.DataArray(lon, dims="s"), method="nearest").values
