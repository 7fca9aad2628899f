"""The one normaliser: (x − mean) / std, with statistics from training data only."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np

from .io import write_text


@dataclass
class Normaliser:
    mean: float
    std: float

    @classmethod
    def fit(cls, values: np.ndarray) -> "Normaliser":
        """Mean and std of the finite values (std 1 for a constant field)."""
        finite = values[np.isfinite(values)]
        return cls(float(finite.mean()), float(finite.std()) or 1.0)

    @classmethod
    def span(cls, coords: np.ndarray) -> "Normaliser":
        """A coordinate axis onto [−1, 1]: centre and half range."""
        c = np.asarray(coords, float)
        return cls(float(c.mean()), float(np.ptp(c) / 2) or 1.0)

    def __call__(self, x):
        return (x - self.mean) / self.std

    def inverse(self, x):
        return x * self.std + self.mean

    def save(self, path):
        write_text(path, json.dumps(asdict(self)))

    @classmethod
    def load(cls, path) -> "Normaliser":
        return cls(**json.loads(path.read_text()))
