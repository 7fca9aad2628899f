"""Patches (xbatcher) and a blocked train/val/test split."""
from __future__ import annotations

import numpy as np
import xarray as xr
import xbatcher

from .errors import GeonbError

SPLITS = ("train", "val", "test")
FRACTIONS = (0.65, 0.15, 0.20)


def split_blocks(da: xr.DataArray, patch: int, seed: int = 0, by: str = "auto") -> xr.DataArray:
    """Label each (time, lat, lon) cell train/val/test in contiguous blocks.

    ``by="time"`` gives contiguous runs of days; ``by="region"`` gives a grid of
    rectangular blocks at least ``patch`` wide, shuffled with ``seed``. Patches are
    later cut inside one block only, so no test pixel is ever inside a training patch.
    """
    nt, ny, nx = da.shape
    if patch > ny or patch > nx:
        raise GeonbError(f"patch size {patch} is larger than the grid ({ny}×{nx}); use patch ≤ {min(ny, nx)}.")
    if by == "auto":
        by = "time" if nt >= 5 else "region"
    labels = np.zeros((nt, ny, nx), dtype="int8")
    if by == "time":
        counts = _counts(nt)
        labels[:] = np.repeat(np.arange(3), counts)[:, None, None]
    elif by == "region":
        nby, nbx = ny // patch, nx // patch
        if nby * nbx < 3:
            raise GeonbError(
                f"a {ny}×{nx} grid holds {nby * nbx} blocks of {patch}×{patch}; a blocked "
                "train/val/test split needs 3. Use a smaller patch or a larger grid."
            )
        order = np.random.default_rng(seed).permutation(nby * nbx)
        block_split = np.repeat(np.arange(3), _counts(nby * nbx))[np.argsort(order)].reshape(nby, nbx)
        ye = np.linspace(0, ny, nby + 1).astype(int)
        xe = np.linspace(0, nx, nbx + 1).astype(int)
        for i in range(nby):
            for j in range(nbx):
                labels[:, ye[i]:ye[i + 1], xe[j]:xe[j + 1]] = block_split[i, j]
    else:
        raise GeonbError(f"split by {by!r}? Use 'time', 'region' or 'auto'.")
    return xr.DataArray(labels, dims=da.dims, coords=da.coords, name="split",
                        attrs={"flag_values": "0 1 2", "flag_meanings": "train val test", "by": by})


def _counts(n: int) -> np.ndarray:
    """Split n blocks 65/15/20 with at least one block in val and test."""
    val, test = max(1, round(n * FRACTIONS[1])), max(1, round(n * FRACTIONS[2]))
    return np.array([n - val - test, val, test])


def cut_patches(da: xr.DataArray, split: xr.DataArray, patch: int, overlap: int,
                cut: str = "grid", min_valid: float = 0.3) -> xr.Dataset:
    """Cut ``patch``×``patch`` patches that lie inside one split block each.

    ``cut="grid"`` slides with ``overlap`` (xbatcher); ``cut="corners"`` takes the four
    corners of each block (the seed's cut). Patches with less than ``min_valid``
    finite pixels are dropped (mostly land).
    """
    if not 0 <= overlap < patch:
        raise GeonbError(f"overlap {overlap} must be in [0, patch={patch}).")
    values, lats, lons, times, splits = [], [], [], [], []
    for t in range(da.sizes["time"]):
        lab = split.isel(time=t).values
        for (y0, y1), (x0, x1) in _uniform_cells(lab):
            s = int(lab[y0, x0])
            block = da.isel(time=t, lat=slice(y0, y1), lon=slice(x0, x1))
            if min(block.shape) < patch:
                continue
            for p in _patches(block, patch, overlap, cut):
                if np.isfinite(p.values).mean() >= min_valid:
                    values.append(p.values)
                    lats.append(p.lat.values)
                    lons.append(p.lon.values)
                    times.append(t)
                    splits.append(SPLITS[s])
    if not values:
        raise GeonbError("no patch has enough valid (non-NaN) pixels; use a smaller patch or min_valid.")
    return xr.Dataset(
        {"field": (("patch", "y", "x"), np.stack(values).astype("float32"), da.attrs),
         "lat": (("patch", "y"), np.stack(lats)), "lon": (("patch", "x"), np.stack(lons)),
         "time_index": ("patch", np.array(times)), "split": ("patch", np.array(splits))},
        attrs={"patch": patch, "overlap": overlap, "cut": cut, "variable": str(da.name)},
    )


def _uniform_cells(lab: np.ndarray):
    """Rectangles between every row/column where the label changes: each is one split."""
    ye = np.r_[0, np.nonzero((lab[1:] != lab[:-1]).any(1))[0] + 1, lab.shape[0]]
    xe = np.r_[0, np.nonzero((lab[:, 1:] != lab[:, :-1]).any(0))[0] + 1, lab.shape[1]]
    return [((ye[i], ye[i + 1]), (xe[j], xe[j + 1])) for i in range(len(ye) - 1) for j in range(len(xe) - 1)]


def _patches(block: xr.DataArray, patch: int, overlap: int, cut: str):
    if cut == "corners":
        ny, nx = block.shape
        for y0 in (0, ny - patch):
            for x0 in (0, nx - patch):
                yield block.isel(lat=slice(y0, y0 + patch), lon=slice(x0, x0 + patch))
    elif cut == "grid":
        gen = xbatcher.BatchGenerator(block, input_dims={"lat": patch, "lon": patch},
                                      input_overlap={"lat": overlap, "lon": overlap})
        yield from gen
    else:
        raise GeonbError(f"cut {cut!r}? Use 'grid' or 'corners'.")
