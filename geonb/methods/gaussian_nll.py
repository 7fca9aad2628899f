"""``gaussian_nll``: a mean and an error variance, trained by the Gaussian likelihood (DINCAE).

On the pixels hidden from the input (target finite)::

    L = mean over hidden pixels of ½ [ log σ² + (ŷ − y)² / σ² ]

The last ``n_average`` epochs' weights are kept (``Method.fit``); predictions combine
them (``combine``): the mean of their means, and for the variance the mean of their
variances plus the variance of their means; or, with ``average="weights"``, one pass
with the snapshots' weights averaged (``Method.average``).
"""
from __future__ import annotations

import numpy as np
from ..losses import gaussian_nll
from ..registry import METHODS
from .base import Method


@METHODS.register("gaussian_nll")
class GaussianNLL(Method):
    loss_name = "Gaussian NLL"

    def __init__(self, nets, *, lr: float, n_average: int = 5):
        super().__init__(nets, lr=lr, n_average=n_average)

    def loss(self, pred, y, w):
        return gaussian_nll(pred, y[:, 0])

    @staticmethod
    def combine(outputs: list[np.ndarray]) -> dict[str, np.ndarray]:
        """Snapshots' (mean, log-variance) → mean of their means; variance = mean of their variances
        + variance of their means (normalised units)."""
        means = np.stack([o[:, 0] for o in outputs])
        variances = np.stack([np.exp(o[:, 1]) for o in outputs])
        return {"mean": means.mean(0), "variance": variances.mean(0) + means.var(0)}
