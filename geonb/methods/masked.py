"""``masked``: the seed's semantic loss for gap filling (archs ``unet``; the clouds task's U-Net).

Weights per pixel (``loss_weights``)::

    w = hole_weight · 1[hidden] + ring_weight · 1[within ring_width of a hole, not in it],   0 on land
    L = Σ w (ŷ − y)² / Σ w

With ``residual`` the network learns a correction to its first input channel (a
classical pre-fill of the holes), so it starts from the baseline instead of from zero.
"""
from __future__ import annotations

import torch

from ..holes import ring
from ..losses import masked_mse
from ..registry import METHODS
from .base import Method


def loss_weights(hidden: torch.Tensor, target: torch.Tensor, hole_weight: float, ring_weight: float,
                 ring_width: int) -> torch.Tensor:
    """The seed's semantic loss weights: holes, a ring around them, 0 elsewhere and on NaN."""
    around = torch.from_numpy(ring(hidden.cpu().numpy(), ring_width)).to(hidden.device)
    w = hole_weight * hidden.float() + ring_weight * around.float()
    return w * torch.isfinite(target)


@METHODS.register("masked")
class Masked(Method):
    loss_name = "masked loss"

    def __init__(self, nets, *, lr: float, residual: bool = False, n_average: int = 0):
        super().__init__(nets, lr=lr, n_average=n_average)
        self.residual = bool(residual)

    def loss(self, pred, y, w) -> torch.Tensor:
        return masked_mse(pred, y, w)

