"""The SST-inpainting seed's networks: a small U-Net autoencoder and a pair discriminator.

``unet``: 3 conv + max-pool levels (20, 15, 10 maps), transposed convolutions back up,
each concatenated with the encoder map of the same size. ``pair_discriminator`` sees two
images (real and inpainted, in random order) and says which one is real (arch ``ctxgan``).
"""
from __future__ import annotations

import torch
from torch import nn

from ..registry import NETWORKS
from .base import GeonbNet

WIDTHS = (20, 15, 10)


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


@NETWORKS.register("unet")
class UNet(GeonbNet):
    """Input (B, in_channels, H, W) with H, W divisible by 8; output (B, out_channels, H, W)."""

    multiple = 8  # three 2×2 poolings: the predictor pads inputs to a multiple of this
    halo = 24     # receptive-field radius (~22 px) rounded up to the multiple: context for tiled prediction
    edge = "zero"  # trained with zero-padded convolutions at patch edges: one-shot predictions add no halo

    def __init__(self, in_channels: int = 2, out_channels: int = 1, widths: tuple = WIDTHS):
        super().__init__()
        w1, w2, w3 = widths
        self.enc = nn.ModuleList([_conv(in_channels, w1), _conv(w1, w2), _conv(w2, w3)])
        self.pool = nn.MaxPool2d(2)
        self.bottom = _conv(w3, w3)
        self.up = nn.ModuleList([nn.ConvTranspose2d(w3, w3, 2, stride=2),
                                 nn.ConvTranspose2d(w2, w2, 2, stride=2),
                                 nn.ConvTranspose2d(w1, w1, 2, stride=2)])
        self.dec = nn.ModuleList([_conv(2 * w3, w2), _conv(2 * w2, w1), _conv(2 * w1, w1)])
        self.head = nn.Conv2d(w1, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for enc in self.enc:
            x = enc(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottom(x)
        for up, dec, skip in zip(self.up, self.dec, reversed(skips)):
            x = dec(torch.cat([up(x), skip], dim=1))
        return self.head(x)


@NETWORKS.register("pair_discriminator")
class PairDiscriminator(GeonbNet):
    """Two single-channel images in (stacked as channels); logit that the first is real."""

    def __init__(self, channels: int = 2, width: int = 16):
        super().__init__()
        layers, cin = [], channels
        for cout in (width, 2 * width, 4 * width):
            layers += [nn.Conv2d(cin, cout, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True)]
            cin = cout
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(cin, 1)

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(torch.cat([first, second], dim=1))).squeeze(1)
