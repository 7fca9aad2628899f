"""DeepLabv3+ (Chen et al. 2018): an image (B, in_channels, H, W) → class logits (B, n_classes, H, W).

- Encoder: a 3×3 conv, then ``depth`` residual blocks (two 3×3 conv-BN, identity or 1×1 shortcut) that
  each halve the resolution with a stride-2 first conv, so the output stride is 2^depth (the paper's 16
  at the default depth 4). Where the paper's ResNet/Xception would downsample once more, a residual
  block with atrous (dilated, rate 2) convolutions keeps the resolution and widens the view.
- ASPP at the output stride: in parallel a 1×1 conv, three atrous 3×3 convs (``rates``, in cells of
  the encoder output) and image pooling (average pooling, a 1×1 conv), each conv-BN-ReLU to
  4·width channels; concatenated, a 1×1 conv-BN-ReLU and dropout 0.1.
- Decoder: the ASPP output upsampled bilinearly to stride 4, concatenated with the stride-4 encoder
  features reduced by a 1×1 conv-BN-ReLU (the paper's 48 of 256 channels, here ¾·width of 4·width),
  two 3×3 conv-BN-ReLU, a 1×1 conv to the class scores and bilinear ×4 to the input size.

Two departures, both for geonb's CPU budget and its tiled predictor (tiled = one-shot needs a finite
receptive field): widths are ``width``·2^level (at most 8·width; CPU default 16, the paper 64 at its
first level and 256 in ASPP/decoder), and the ASPP rates are (3, 6, 9), not (6, 12, 18): the paper's
rates were chosen for 513-px crops (33 cells at output stride 16), geonb trains on 256-px crops (16
cells). Image pooling averages a window of about ``pool`` px (odd, in cells of the encoder output)
instead of the whole image: the paper pooled its whole training crop, which a ``pool`` as large as
geonb's training crop reproduces in training, while a pooling over the whole image would make every
pixel's class depend on the size and content of the image or tile it is predicted in.

``multiple`` = 2^depth (the output stride; inputs are padded to it and tiles start on it); ``halo`` is
the receptive-field radius rounded up to it, checked by gradient support in tests/test_segment.py.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import NETWORKS
from .base import GeonbNet
from .segmentation import _check, _conv, _halo, _widths


def _bn_relu(conv: nn.Conv2d) -> nn.Sequential:
    return nn.Sequential(conv, nn.BatchNorm2d(conv.out_channels), nn.ReLU(inplace=True))


class _Residual(nn.Module):
    """ResNet basic block: 3×3 conv-BN-ReLU (stride ``stride``), 3×3 conv-BN, plus the input (a 1×1
    strided conv-BN where the shape changes), ReLU; both 3×3 convs at ``dilation``."""

    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False), nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=dilation, dilation=dilation, bias=False), nn.BatchNorm2d(cout))
        self.short = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.short(x))


class _ASPP(nn.Module):
    """Atrous spatial pyramid pooling: 1×1, 3×3 at each rate, and (local) image pooling, concatenated."""

    def __init__(self, cin: int, cout: int, rates: tuple[int, ...], pool_cells: int):
        super().__init__()
        self.branches = nn.ModuleList(
            [_bn_relu(nn.Conv2d(cin, cout, 1, bias=False))]
            + [_bn_relu(nn.Conv2d(cin, cout, 3, padding=r, dilation=r, bias=False)) for r in rates])
        self.pool = nn.AvgPool2d(pool_cells, stride=1, padding=pool_cells // 2, count_include_pad=False)
        self.image = _bn_relu(nn.Conv2d(cin, cout, 1, bias=False))
        self.project = nn.Sequential(_bn_relu(nn.Conv2d(cout * (len(rates) + 2), cout, 1, bias=False)),
                                     nn.Dropout(0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([b(x) for b in self.branches] + [self.image(self.pool(x))], dim=1))


def _up(x: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


@NETWORKS.register("deeplabv3plus")
class DeepLabV3Plus(GeonbNet):
    """Residual encoder with output stride 2^depth and an atrous block, ASPP, and the v3+ decoder that
    joins the ASPP output with the stride-4 features (``depth`` ≥ 3: the decoder's ×4 step)."""

    def __init__(self, in_channels: int = 3, n_classes: int = 5, width: int = 16, depth: int = 4,
                 rates: tuple[int, ...] = (3, 6, 9), pool: int = 256):
        super().__init__()
        self.multiple = _check(depth, 3, "deeplabv3plus")
        if not rates or min(rates) < 1 or pool < 1:
            raise ValueError(f"deeplabv3plus needs rates >= 1 (got {list(rates)}) and pool >= 1 (got {pool})")
        w = _widths(width, depth + 1)
        self.stem = _conv(in_channels, w[0])
        self.down = nn.ModuleList(_Residual(w[i], w[i + 1], stride=2) for i in range(depth))
        self.atrous = _Residual(w[depth], w[depth], dilation=2)
        pool_cells = max(1, pool // self.multiple) | 1  # odd: the window centred on its cell
        self.aspp = _ASPP(w[depth], 4 * width, tuple(rates), pool_cells)
        low = max(1, (3 * width + 3) // 4)
        self.reduce = _bn_relu(nn.Conv2d(w[2], low, 1, bias=False))
        self.decode = nn.Sequential(_conv(4 * width + low, 4 * width), _conv(4 * width, 4 * width))
        self.out = nn.Conv2d(4 * width, n_classes, 1)
        m = self.multiple
        # receptive-field radius in px: stem 1, block i 3·2^i (stride-2 conv + conv), atrous block 4m,
        # ASPP max(rate, pool radius)·m, bilinear up to stride 4 one cell m, decoder convs 2·4, bilinear ×4 4
        radius = 1 + 3 * (m - 1) + 4 * m + max(max(rates), pool_cells // 2) * m + m + 8 + 4
        self.halo = _halo(radius, m)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        x = self.stem(x)
        for i, block in enumerate(self.down):
            x = block(x)
            if i == 1:
                low = x  # stride 4
        x = self.aspp(self.atrous(x))
        x = self.decode(torch.cat([_up(x, low.shape[-2:]), self.reduce(low)], dim=1))
        return _up(self.out(x), size)
