"""Drawn shapes onto a field's grid: the cells whose centre lies inside a polygon or box, or under a brush.

A shape comes as a HoloViews draw stream gives it (``rasterise``: freehand, polygon, box; a freehand
line fills its outline like a lasso or paints along the stroke); lat and lon may run either way, and a
shape drawn in −180…180 hits a 0…360 grid (and one across the seam both sides). ``geonb.draw`` turns the
shapes drawn in its widget into a hole mask with these.
"""
from __future__ import annotations

import numpy as np
from matplotlib.path import Path as MplPath

from .errors import GeonbError

TOOLS = ("freehand", "polygon", "box")
BRUSHES = ("fill", "stroke")


def check_axis(values, name: str) -> np.ndarray:
    """A grid axis as float64: 1-D, at least 2 finite values, monotonic (else a GeonbError saying how to fix it)."""
    values = np.asarray(values, dtype="float64")
    if values.ndim != 1 or values.size < 2 or not np.all(np.isfinite(values)):
        raise GeonbError(f"{name} must be a 1-D array of at least 2 finite values; got shape {values.shape}. "
                         f"Pass the field's {name} coordinate (field.{name}).")
    steps = np.diff(values)
    if not (np.all(steps > 0) or np.all(steps < 0)):
        raise GeonbError(f"{name} is not monotonic; sort the field first (field.sortby('{name}')).")
    return values


def _centres(lat, lon) -> tuple[np.ndarray, np.ndarray]:
    """Cell-centre longitudes and latitudes, both shaped (lat, lon)."""
    lon2, lat2 = np.meshgrid(check_axis(lon, "lon"), check_axis(lat, "lat"))
    return lon2, lat2


def _lon_copies(lon2: np.ndarray):
    # A shape drawn in -180..180 must hit a 0..360 grid (and vice versa), and one that
    # crosses the seam must hit both sides: test each centre at lon-360, lon, lon+360.
    return (lon2 - 360.0, lon2, lon2 + 360.0)


def _points(xs, ys, what: str) -> np.ndarray:
    xs = np.asarray(xs, dtype="float64").ravel()
    ys = np.asarray(ys, dtype="float64").ravel()
    if xs.shape != ys.shape:
        raise GeonbError(f"{what}: xs has {xs.size} values but ys has {ys.size}; give one y per x.")
    keep = np.isfinite(xs) & np.isfinite(ys)
    return np.column_stack([xs[keep], ys[keep]])


def rasterise_polygon(xs, ys, lat, lon) -> np.ndarray:
    """Boolean (lat, lon) array: cells whose centre lies inside the polygon (lon=xs, lat=ys).

    The polygon is closed automatically (a freehand stroke acts as a lasso). Works for
    increasing or decreasing latitude/longitude and for either longitude convention.
    """
    lon2, lat2 = _centres(lat, lon)
    vertices = _points(xs, ys, "polygon")
    inside = np.zeros(lat2.shape, dtype=bool)
    if len(vertices) < 3:
        return inside
    path = MplPath(np.vstack([vertices, vertices[:1]]), closed=True)
    lo, hi = vertices.min(axis=0), vertices.max(axis=0)
    for shifted in _lon_copies(lon2):
        # Only test centres inside the bounding box: a 1° global grid has 64 800 of them.
        near = (shifted >= lo[0]) & (shifted <= hi[0]) & (lat2 >= lo[1]) & (lat2 <= hi[1])
        if near.any():
            inside[near] |= path.contains_points(np.column_stack([shifted[near], lat2[near]]))
    return inside


def rasterise_box(x0, y0, x1, y1, lat, lon) -> np.ndarray:
    """Boolean (lat, lon) array: cells whose centre lies in the box (edges included)."""
    lon2, lat2 = _centres(lat, lon)
    (xa, xb), (ya, yb) = sorted((float(x0), float(x1))), sorted((float(y0), float(y1)))
    in_lat = (lat2 >= ya) & (lat2 <= yb)
    return np.logical_or.reduce([in_lat & (s >= xa) & (s <= xb) for s in _lon_copies(lon2)])


def rasterise_stroke(xs, ys, width, lat, lon) -> np.ndarray:
    """Boolean (lat, lon) array: cells whose centre is within ``width / 2`` grid cells of the line."""
    if not width > 0:
        raise GeonbError(f"brush width must be > 0 grid cells; got {width}.")
    lon2, lat2 = _centres(lat, lon)
    vertices = _points(xs, ys, "stroke")
    painted = np.zeros(lat2.shape, dtype=bool)
    if len(vertices) == 0:
        return painted
    # Measure distances in grid cells so a brush is as wide in lon as in lat.
    dlon, dlat = np.median(np.abs(np.diff(lon2[0]))), np.median(np.abs(np.diff(lat2[:, 0])))
    radius = width / 2.0
    segments = list(zip(vertices[:-1], vertices[1:])) or [(vertices[0], vertices[0])]
    for shifted in _lon_copies(lon2):
        px, py = shifted / dlon, lat2 / dlat
        for (ax, ay), (bx, by) in segments:
            ax, bx, ay, by = ax / dlon, bx / dlon, ay / dlat, by / dlat
            near = ((px >= min(ax, bx) - radius) & (px <= max(ax, bx) + radius)
                    & (py >= min(ay, by) - radius) & (py <= max(ay, by) + radius))
            if not near.any():
                continue
            qx, qy = px[near] - ax, py[near] - ay
            sx, sy = bx - ax, by - ay
            t = np.clip((qx * sx + qy * sy) / max(sx * sx + sy * sy, 1e-12), 0.0, 1.0)
            painted[near] |= (qx - t * sx) ** 2 + (qy - t * sy) ** 2 <= radius ** 2
    return painted


def rasterise(kind: str, data: dict | None, lat, lon, brush: str = "fill", width: float = 1.0) -> np.ndarray:
    """Union of every shape in a draw stream's ``data`` (``kind`` in TOOLS) on the grid."""
    if kind not in TOOLS:
        raise GeonbError(f"unknown drawing tool {kind!r}; use one of {', '.join(TOOLS)}.")
    if brush not in BRUSHES:
        raise GeonbError(f"unknown brush {brush!r}; use one of {', '.join(BRUSHES)}.")
    lon2, _ = _centres(lat, lon)
    mask = np.zeros(lon2.shape, dtype=bool)
    if not data:
        return mask
    if kind == "box":
        for x0, y0, x1, y1 in zip(*(data.get(k, []) for k in ("x0", "y0", "x1", "y1"))):
            mask |= rasterise_box(x0, y0, x1, y1, lat, lon)
        return mask
    for xs, ys in zip(data.get("xs", []), data.get("ys", [])):
        if kind == "freehand" and brush == "stroke":
            mask |= rasterise_stroke(xs, ys, width, lat, lon)
        else:
            mask |= rasterise_polygon(xs, ys, lat, lon)
    return mask

