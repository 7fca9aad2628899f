"""A field's values checked on the way in: only numbers that are data reach a network.

``check_values`` refuses infinities and values beyond float32 (in which geonb computes) and, unless
``allow_outliers``, values that are not data (``outliers``): a no-data number that the file does not
declare (``SENTINELS``) at the field's minimum or maximum, or a spike far outside its robust range. A
dask-backed grid is checked chunk by chunk, without loading it.
"""
from __future__ import annotations

import numpy as np
import xarray as xr

from .errors import GeonbError

F32_MAX = float(np.finfo(np.float32).max)

OUTLIER_SPAN = 10  # values beyond the 1st–99th percentile range widened by 10 times its span are refused
# No-data numbers that files use without declaring them as _FillValue: refused where they are the field's
# minimum or maximum (then they are not data), however many cells hold them.
SENTINELS = np.array([-99999, -9999, -999, 999, 9999, 99999, -32768, -32767, 32767, 65535, -1e20, 1e20, -1e30, 1e30,
                      -9.96921e36, 9.96921e36, -3.4028235e38, 3.4028235e38])


def outlier_rule(data: np.ndarray, low: float, high: float):
    """``(is_bad(values) → bool mask, why)`` from the finite values ``data`` (or a sample of them) and the
    field's exact minimum and maximum: a declared-nowhere no-data number (``SENTINELS``) at the field's
    minimum or maximum, or a spike beyond the 1st–99th percentile range widened ``OUTLIER_SPAN`` times
    (robust to 1 % of bad cells; legit tails and several clusters pass)."""
    ends = [v for v in (low, high) if np.isclose(v, SENTINELS, rtol=1e-6, atol=0).any()]
    if ends:
        return (lambda v: np.isin(v, ends)), f"equal to {ends[0]:g}, a no-data number at the field's end"
    q01, q50, q99 = np.quantile(data.astype("float64"), [0.01, 0.5, 0.99])
    span = (q99 - q01) or max(abs(q50), 1.0)
    lo, hi = q01 - OUTLIER_SPAN * span, q99 + OUTLIER_SPAN * span
    return (lambda v: np.isfinite(v) & ((v < lo) | (v > hi))), (
        f"far outside the field's robust range {lo:.4g} … {hi:.4g} (1st–99th percentile {q01:.4g} … {q99:.4g} "
        f"± {OUTLIER_SPAN} × their span)")


def outliers(values: np.ndarray) -> tuple[np.ndarray, str]:
    """Where the finite ``values`` are not data, and why (``outlier_rule`` on all of them)."""
    data = values[np.isfinite(values)]
    is_bad, why = outlier_rule(data, data.min(), data.max())
    return is_bad(values), why


def check_values(da: xr.DataArray, allow_outliers: bool = False) -> xr.DataArray:
    """Refuse infinite values, and unless ``allow_outliers`` values that are not data (``outliers``: an
    unflagged fill value such as 1e30 or -999 would otherwise set the normalisation and every output),
    naming the count and the first position. Values that are not numbers (strings, booleans) are refused."""
    if da.dtype.kind not in "fiu":
        raise GeonbError(f"variable {da.name!r} holds {da.dtype} values, not numbers; give the numeric variable "
                         "(--var / var), or convert it first.")
    if da.chunks is not None:
        return _check_lazy(da, allow_outliers)
    values = np.asarray(da.values)
    finite = np.isfinite(values)
    bad, why = ~finite & ~np.isnan(values), INFINITE
    if not bad.any():
        bad, why = beyond_float32(values), BEYOND
    if not bad.any() and not allow_outliers and finite.any():
        bad, why = outliers(values)
    if not bad.any():
        return da
    _refuse(da, int(bad.sum()), np.unravel_index(np.flatnonzero(bad)[0], values.shape), why)


INFINITE = "infinite"
BEYOND = f"beyond float32's range (±{F32_MAX:.4g}), in which geonb computes"


def beyond_float32(values):
    return np.isfinite(values) & (np.abs(values) > F32_MAX)


def _refuse(da: xr.DataArray, count: int, first: tuple, why: str):
    where = ", ".join(f"{d}={da[d].values[i]}" if d in da.coords else f"{d} index {i}" for d, i in zip(da.dims, first))
    fix = {INFINITE: "mask them as missing (NaN or the _FillValue)",
           BEYOND: "mask them as missing, or rescale the variable (other units) into that range"}.get(
        why, "mask them as missing (NaN or the _FillValue), or allow them: allow_outliers=True / --allow-outliers")
    raise GeonbError(f"variable {da.name!r} has {count} value(s) {why}, e.g. {float(da.data[first]):.6g} at {where}; "
                     f"{fix}.")


def _check_lazy(da: xr.DataArray, allow_outliers: bool) -> xr.DataArray:
    """``check_values`` on a dask-backed grid without loading it: exact minimum and maximum, percentiles
    from a regular sample of about 4 million cells, bad cells counted chunk by chunk."""
    import dask
    import dask.array as dsa

    x = da.data
    step = max(1, int(np.ceil((x.size / 4e6) ** (1 / x.ndim))))
    try:  # the first pass over every chunk: a damaged one fails here, before any work
        sample, low, high = dask.compute(x[(slice(None, None, step),) * x.ndim], dsa.nanmin(x), dsa.nanmax(x))
    except Exception as exc:  # zarr/HDF5/codec errors have no common base class
        raise GeonbError(f"variable {da.name!r} could not be read whole ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}): a damaged chunk or file; copy it again "
                         "from its source.") from None
    sample = sample[np.isfinite(sample)]
    # exact min and max are finite: no infinite cell, no pass to count them
    checks = [] if np.isfinite([low, high]).all() else [(dsa.isinf, INFINITE)]
    if max(abs(low), abs(high)) > F32_MAX:
        checks.append((beyond_float32, BEYOND))
    if not allow_outliers and sample.size:
        checks.append(outlier_rule(sample, low, high))
    for is_bad, why in checks:
        bad = x.map_blocks(is_bad, dtype=bool)
        count, first = dask.compute(bad.sum(), dsa.argmax(bad.ravel()))
        if count:
            _refuse(da, int(count), np.unravel_index(int(first), x.shape), why)
    return da

