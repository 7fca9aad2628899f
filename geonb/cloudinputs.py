"""What the cloud-filling networks (dincae, unet) see of a cloudy cube: ``CloudInputs``.

The cube and its coordinates are normalised once (``cube_norms``); each day's input channels are cut
from them: DINCAE's window of days (observed anomaly × precision, precision, lon, lat, the season) or
the seed's masked day and its mask. Training (``geonb.cloudmodel``) hides extra pixels of a day in
the same way; a model file (``geonb.modelfile``) checks its input against the channels it was trained on.
"""
from __future__ import annotations

import numpy as np
import torch

from .normalise import Normaliser


def day_of_year(times) -> np.ndarray:
    """Day of year from datetime64 times; plain numbers are taken as days."""
    times = np.asarray(times)
    if np.issubdtype(times.dtype, np.datetime64):
        years = times.astype("datetime64[Y]")
        return ((times - years) / np.timedelta64(1, "D")).astype(float)
    if times.dtype == object:  # cftime dates
        return np.array([t.timetuple().tm_yday for t in times], float)
    return np.asarray(times, float) % 365.25


def cube_norms(values, lat, lon) -> dict[str, Normaliser]:
    """Normalisation of the field (its observed values) and of the coordinates (onto [−1, 1])."""
    v = np.asarray(values, float)
    return {"field": Normaliser(float(np.nanmean(v)), float(np.nanstd(v)) or 1.0),
            "lat": Normaliser.span(lat), "lon": Normaliser.span(lon)}


class CloudInputs:
    """The normalised cube and the constant channels, built once; each day's input cut from it.

    ``window`` days (odd): DINCAE's channels — for each day of the window the observed
    anomaly × precision and the precision (1/σ²_obs in normalised units: 1 observed, 0
    missing), then lon, lat, cos/sin of the day of year. ``window=0``: the seed's input,
    the masked day and its observed mask.
    """

    def __init__(self, values, lat, lon, times, norms: dict, window: int):
        self.window = window
        x = norms["field"](np.asarray(values, "float32"))
        self.obs = np.isfinite(x)
        self.x = np.where(self.obs, x, 0.0).astype("float32")
        nt, ny, nx = x.shape
        la, lo = norms["lat"](np.asarray(lat, float)), norms["lon"](np.asarray(lon, float))
        doy = 2 * np.pi * day_of_year(times) / 365.25
        self.coords = np.stack([np.broadcast_to(lo[None, :], (ny, nx)), np.broadcast_to(la[:, None], (ny, nx))]).astype("float32")
        self.season = np.stack([np.cos(doy), np.sin(doy)], 1).astype("float32")

    @staticmethod
    def channels(window: int) -> int:
        return 2 * window + 4 if window else 2

    def sample(self, t: int, hide=None) -> np.ndarray:
        """Input channels for day t; ``hide`` (lat, lon) bool removes extra pixels of day t."""
        obs_t = self.obs[t] if hide is None else self.obs[t] & ~hide
        if not self.window:
            return np.stack([self.x[t] * obs_t, obs_t.astype("float32")])
        half = self.window // 2
        chans = []
        for d in range(t - half, t + half + 1):
            if 0 <= d < len(self.x):
                prec = (obs_t if d == t else self.obs[d]).astype("float32")
                chans += [self.x[d] * prec, prec]
            else:  # beyond the ends of the cube: nothing observed
                chans += [np.zeros_like(self.x[0]), np.zeros_like(self.x[0])]
        ny, nx = self.x.shape[1:]
        season = np.broadcast_to(self.season[t][:, None, None], (2, ny, nx))
        return np.concatenate([np.stack(chans), self.coords, season]).astype("float32")

    def all_days(self) -> torch.Tensor:
        return torch.from_numpy(np.stack([self.sample(t) for t in range(len(self.x))]))

