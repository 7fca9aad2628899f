"""DINCAE's network (Barth et al. 2020, 2022): a U-Net with a mean and a log-variance output.

Inputs (built by ``geonb.tasks.clouds.CloudInputs``): for each day of a window around
the target day, the observed anomaly × precision and the precision, plus scaled lon,
lat and cos/sin of the day of year. Outputs: the mean and the clamped log-variance of
the error; trained with the Gaussian negative log-likelihood (``geonb.methods.gaussian_nll``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import NETWORKS
from .base import GeonbNet

LOGVAR_RANGE = (-10.0, 5.0)  # clamp: keeps the NLL finite early in training (normalised units)


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.LeakyReLU(0.1, inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.LeakyReLU(0.1, inplace=True))


@NETWORKS.register("dincae")
class DINCAE(GeonbNet):
    """Encoder (conv blocks + average pooling), decoder (upsampling + skip concat); 2 outputs."""

    multiple = 16  # inputs padded to a multiple of this (as trained: the same padding, the same numbers)
    halo = 48      # receptive-field radius (~44 px) rounded up to the multiple: context for tiled prediction
    edge = "zero"  # trained with zero-padded convolutions at crop edges: one-shot predictions add no halo

    def __init__(self, in_channels: int, widths: tuple = (16, 24, 32, 48)):
        super().__init__()
        self.enc = nn.ModuleList()
        cin = in_channels
        for w in widths:
            self.enc.append(_block(cin, w))
            cin = w
        self.dec = nn.ModuleList(_block(widths[i + 1] + widths[i], widths[i]) for i in reversed(range(len(widths) - 1)))
        self.head = nn.Conv2d(widths[0], 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, enc in enumerate(self.enc):
            x = enc(x if i == 0 else F.avg_pool2d(x, 2))
            skips.append(x)
        for dec, skip in zip(self.dec, reversed(skips[:-1])):
            x = dec(torch.cat([F.interpolate(x, scale_factor=2, mode="nearest"), skip], dim=1))
        out = self.head(x)
        return torch.cat([out[:, :1], out[:, 1:].clamp(*LOGVAR_RANGE)], dim=1)
