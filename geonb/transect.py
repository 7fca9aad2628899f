"""Sampling gridded fields along a straight line (the 06 transects): lat/lon lines measured
on the great circle; on projected grids the line is straight in the projection."""
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
    """Nearest-cell values of a (lat, lon) or (y, x) grid along the line (its last two dims)."""
    ydim, xdim = grid.dims[-2:]
    return grid.sel({ydim: xr.DataArray(lat, dims="s"), xdim: xr.DataArray(lon, dims="s")}, method="nearest").values


def line_points_projected(start, end, crs: str, n: int = 300):
    """n points on the straight line between two [lat, lon] ends in a projected CRS: (y, x) in
    its units (metres) and the distance (km) from start."""
    from pyproj import Transformer

    to_grid = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    (x0, x1), (y0, y1) = to_grid.transform([start[1], end[1]], [start[0], end[0]])
    return straight_line((y0, x0), (y1, x1), n)


def straight_line(start, end, n: int = 300):
    """n points on the straight line between two (y, x) points of a projected grid (metres) and
    their distance (km) from start."""
    y, x = np.linspace(start[0], end[0], n), np.linspace(start[1], end[1], n)
    return y, x, np.hypot(y - y[0], x - x[0]) / 1000.0

