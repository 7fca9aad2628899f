"""The clouds task's parameters and data: the cloudy cube, its hole sets over observed pixels (encoded as one
code), the methods compared, and `per_set` (each set filled with only its own points hidden)."""
from __future__ import annotations


import numpy as np
import xarray as xr

from ... import holes as holesets
from ...cloudmodel import CLOUD_PARAMS
from ...errors import GeonbError
from ...params import Param


PARAMS = CLOUD_PARAMS.override(  # the cloud model's parameters, shared with `geonb fill`, and the task's own
    data={"default": "alboran"},
    transect_start={"help": "[lat, lon] start of the 06 line; None: [35.2, -5.0], across the Alboran gyres"},
    transect_end={"help": "[lat, lon] end of the 06 line; None: [36.8, -1.0]"},
) + (
    Param("cv_fraction", float, 0.10, "observed pixels hidden for scoring", "simulate", above=0),
    Param("val_fraction", float, 0.05, "observed pixels hidden for early stopping and the σ scale", "simulate", min=0),
    Param("hole_sets", str, "clouds,square,many,varied", "score sets laid over observed pixels: comma list of "
          "clouds (real cloud shapes of other days, cv_fraction of the observed pixels), square, many, varied "
          "(the seed's, one placement per 64×64 tile and day)", "simulate"),
    Param("compare", str, "dineof,unet", "comparison methods besides biharmonic and the local mean "
          "(comma list of dineof, unet)"),
    Param("show_day", int, -1, "day shown in maps/transects; -1 = the day with most CV points", None),
)


TRANSECT = ([35.2, -5.0], [36.8, -1.0])  # lat, lon: across the Alboran gyres


QUICK_BOX = (slice(80, 144), slice(180, 276))  # 64×96 pixels of open sea, no all-cloud day


def _hole_sets(run) -> list[str]:
    """The score sets, real cloud shapes first (their donor clouds are the cube's own)."""
    names = [n.strip() for n in str(run["hole_sets"]).split(",") if n.strip()]
    bad = sorted(set(names) - {"clouds", *holesets.SIMULATED})
    if bad or not names or len(set(names)) < len(names):
        raise GeonbError(f"hole_sets={run['hole_sets']!r}: give a comma list of distinct clouds, "
                         f"{', '.join(holesets.SIMULATED)}{f' (unknown: {bad})' if bad else ''}.")
    return sorted(names, key=lambda n: n != "clouds")


def _compare(run) -> list[str]:
    names = [n.strip() for n in str(run["compare"]).split(",") if n.strip()]
    bad = sorted(set(names) - {"dineof", "unet"})
    if bad:
        raise GeonbError(f"compare={run['compare']!r}: unknown method(s) {bad}; use a comma list of dineof, unet.")
    return names


def _field(run):
    field = xr.open_dataset(run.path("field.nc")).load().field
    return field, np.isfinite(field.values).any(0)  # sea = observed at least once


def _points(run):
    """The score points (any set), the validation points, and each set's points by name."""
    ds = xr.open_dataset(run.path("points.nc")).load()
    return ds.cv.values > 0, ds.val.values.astype(bool), _decode(ds.cv)


def _encode(sets: dict) -> tuple[np.ndarray, dict]:
    """Disjoint hole sets as one int8 code (0 none, k the k-th set) and its CF flag attributes."""
    code = sum((k + 1) * m.astype("int8") for k, m in enumerate(sets.values())).astype("int8")
    return code, {"flag_values": list(range(1, len(sets) + 1)), "flag_meanings": " ".join(sets)}


def _decode(codes: xr.DataArray) -> dict[str, np.ndarray]:
    """``_encode``'s code back into each set's points by name."""
    return {name: codes.values == k + 1 for k, name in enumerate(codes.attrs["flag_meanings"].split())}


def _show_day(run, cv) -> int:
    return int(np.argmax(cv.sum((1, 2)))) if run["show_day"] < 0 else int(run["show_day"])


def _options(run) -> dict:
    return {k: run[k] for k in ("epochs", "patience", "batch_size", "lr", "window", "widths", "crop",
                                "samples_per_day", "n_average")}


def _days(field) -> np.ndarray:
    t = field.time.values
    return (t - t[0]) / np.timedelta64(1, "D") if np.issubdtype(t.dtype, np.datetime64) else t.astype(float)


def per_set(fill, values, sets: dict) -> tuple:
    """``fill(input)`` → arrays (mean, σ…) run once per hole set, on the cube with only that set's points
    hidden; composed so each point holds its own set's answer (elsewhere the first set's)."""
    out = None
    for points in sets.values():
        answer = fill(np.where(points, np.nan, values))
        out = answer if out is None else tuple(np.where(points, a, o) for a, o in zip(answer, out))
    return out


METHODS_SHOWN = ("dincae", "dincae_last_epoch", "unet", "dineof", "biharmonic", "local_mean")


def methods(ds) -> list[str]:
    return [m for m in METHODS_SHOWN if m in ds]


def hole_sets(ds) -> dict[str, np.ndarray]:
    """Each hole set's points by name (``holes``: 0 none, k the k-th set)."""
    return _decode(ds.holes)
