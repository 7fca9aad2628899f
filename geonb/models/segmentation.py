"""Segmentation networks: an image (B, in_channels, H, W) → class logits (B, n_classes, H, W).

- ``segnet`` (Badrinarayanan et al. 2017): a VGG-style encoder (``depth`` levels of two 3×3
  conv-BatchNorm-ReLU, then 2×2 max-pooling that keeps its indices) and a mirrored decoder that
  upsamples with max-unpooling at the stored indices (no learned upsampling), then convolutions.
- ``fcn`` (Long et al. 2015, FCN-8s): the same VGG encoder, two "fully connected" layers as
  convolutions at the coarsest level, class scores there and from the last two pooling levels
  (pool3/pool4 of VGG16), fused coarse-to-fine by ×2 transposed convolutions and a final ×8.
- ``unet_seg`` (Ronneberger et al. 2015): double convolutions, max-pooling, ×2 transposed
  convolutions whose output is concatenated with the encoder map of the same size.

Widths are ``width``·2^level (at most 8·width); the source works used 64 (VGG16), geonb's CPU
default is 16. Tiled prediction (``geonb.predict``): inputs are padded to ``multiple`` = 2^depth
and tiles start on that grid; ``halo`` (a multiple of it) covers the receptive-field radius,
measured by gradient support in tests/test_segment.py, so tiled = one-shot.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..registry import NETWORKS
from .base import GeonbNet


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def _double(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(_conv(cin, cout), _conv(cout, cout))


def _widths(width: int, depth: int) -> list[int]:
    return [width * min(2 ** i, 8) for i in range(depth)]


def _check(depth: int, least: int, name: str) -> int:
    if depth < least:
        raise ValueError(f"{name} needs depth >= {least}")
    return 2 ** depth


def _halo(radius: int, multiple: int) -> int:
    """The receptive-field radius rounded up to the pooling grid (tiles must start on it)."""
    return multiple * math.ceil(radius / multiple)


@NETWORKS.register("segnet")
class SegNet(GeonbNet):
    """Encoder: per level two conv-BN-ReLU and a 2×2 max-pool (indices kept); decoder: per level a
    max-unpool at those indices and two conv-BN-ReLU; a 3×3 conv to the class scores."""

    def __init__(self, in_channels: int = 3, n_classes: int = 5, width: int = 16, depth: int = 4):
        super().__init__()
        self.multiple = _check(depth, 1, "segnet")
        w = _widths(width, depth)
        self.enc = nn.ModuleList(_double(cin, cout) for cin, cout in zip([in_channels] + w[:-1], w))
        self.dec = nn.ModuleList(_double(w[i], w[max(i - 1, 0)]) for i in range(depth - 1, -1, -1))
        self.pool, self.unpool = nn.MaxPool2d(2, return_indices=True), nn.MaxUnpool2d(2)
        self.out = nn.Conv2d(w[0], n_classes, 3, padding=1)
        # per level: 2 convs + pool (encoder), unpool + 2 convs (decoder), 2^level px each; the last conv 1
        self.halo = _halo(6 * (self.multiple - 1) + 1, self.multiple)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        indices, sizes = [], []
        for block in self.enc:
            x = block(x)
            sizes.append(x.shape[-2:])
            x, idx = self.pool(x)
            indices.append(idx)
        for block in self.dec:
            x = block(self.unpool(x, indices.pop(), output_size=sizes.pop()))
        return self.out(x)


@NETWORKS.register("fcn")
class FCN(GeonbNet):
    """FCN-8s: scores at the last three pooling levels, fused ×2, ×2, then upsampled ×8 (``depth`` ≥ 3:
    the finest fused level is 1/8 of the input)."""

    def __init__(self, in_channels: int = 3, n_classes: int = 5, width: int = 16, depth: int = 4):
        super().__init__()
        self.multiple = _check(depth, 3, "fcn")
        w = _widths(width, depth)
        self.enc = nn.ModuleList(_double(cin, cout) for cin, cout in zip([in_channels] + w[:-1], w))
        self.pool = nn.MaxPool2d(2)
        fc = 2 * w[-1]
        self.fc = nn.Sequential(nn.Conv2d(w[-1], fc, 3, padding=1), nn.ReLU(inplace=True), nn.Dropout2d(0.5),
                                nn.Conv2d(fc, fc, 1), nn.ReLU(inplace=True), nn.Dropout2d(0.5))
        self.score = nn.Conv2d(fc, n_classes, 1)
        self.score_skip = nn.ModuleList(nn.Conv2d(w[i], n_classes, 1) for i in (depth - 2, depth - 3))
        self.up2 = nn.ModuleList(nn.ConvTranspose2d(n_classes, n_classes, 4, 2, 1, bias=False) for _ in range(2))
        f = 2 ** (depth - 2)  # the finest fused level is 1/f of the input: FCN-8s's ×8 for depth 5
        self.up_final = nn.ConvTranspose2d(n_classes, n_classes, 2 * f, f, f // 2, bias=False)
        # encoder 3 px per 2^level, the fc conv 2^depth, the ×2 steps and the last upsampling
        self.halo = _halo(5 * self.multiple + 2, self.multiple)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        pooled = []
        for block in self.enc:
            x = self.pool(block(x))
            pooled.append(x)
        s = self.score(self.fc(x))
        for up, skip, feat in zip(self.up2, self.score_skip, (pooled[-2], pooled[-3])):
            s = up(s) + skip(feat)
        s = self.up_final(s)
        return s[..., : size[0], : size[1]]


@NETWORKS.register("unet_seg")
class UNetSeg(GeonbNet):
    """U-Net: double conv per level, 2×2 max-pool down, 2×2 transposed conv up + the encoder map
    concatenated, double conv; a 1×1 conv to the class scores."""

    def __init__(self, in_channels: int = 3, n_classes: int = 5, width: int = 16, depth: int = 4):
        super().__init__()
        self.multiple = _check(depth, 1, "unet_seg")
        w = _widths(width, depth + 1)
        self.enc = nn.ModuleList(_double(cin, cout) for cin, cout in zip([in_channels] + w[:depth - 1], w[:depth]))
        self.bottom = _double(w[depth - 1], w[depth])
        self.up = nn.ModuleList(nn.ConvTranspose2d(w[i + 1], w[i], 2, 2) for i in range(depth - 1, -1, -1))
        self.dec = nn.ModuleList(_double(2 * w[i], w[i]) for i in range(depth - 1, -1, -1))
        self.pool = nn.MaxPool2d(2)
        self.out = nn.Conv2d(w[0], n_classes, 1)
        # per level 2 convs + pool + 2 convs (5 px per 2^level), the bottom 2 convs at 2^depth
        self.halo = _halo(7 * self.multiple, self.multiple)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.enc:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottom(x)
        for up, block in zip(self.up, self.dec):
            x = block(torch.cat([skips.pop(), up(x)], dim=1))
        return self.out(x)
