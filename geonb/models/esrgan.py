"""DeepBedMap's ESRGAN: conditioned RRDB generator + relativistic-average discriminator.

Generator (Leong & Horgan 2020, after Wang et al. 2018): each conditioning grid, given
at its own resolution r × the low-res grid, goes through a strided convolution
(kernel = stride = r) onto the low-res grid; all are concatenated with the low-res
features; N residual-in-residual dense blocks (3 dense blocks × 5 convs, growth 32,
LeakyReLU 0.2, residual scaling beta); ×2 nearest + conv steps up to the factor.
The output is added to the bicubic upsampling of the input (residual learning).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import NETWORKS
from .base import GeonbNet
from .sigma import SigmaHead, with_sigma
from ..resample import upsample_bicubic


def _lrelu():
    return nn.LeakyReLU(0.2, inplace=True)


class DenseBlock(nn.Module):
    """5 convs, each seeing all earlier feature maps; output scaled by beta and added."""

    def __init__(self, nf: int, gc: int = 32, beta: float = 0.2):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(nf + i * gc, gc if i < 4 else nf, 3, padding=1) for i in range(5))
        self.beta = beta

    def forward(self, x):
        feats = [x]
        for i, conv in enumerate(self.convs):
            out = conv(torch.cat(feats, 1))
            if i < 4:
                feats.append(F.leaky_relu(out, 0.2))
        return x + self.beta * out


class RRDB(nn.Module):
    def __init__(self, nf: int, gc: int = 32, beta: float = 0.2):
        super().__init__()
        self.blocks = nn.Sequential(*(DenseBlock(nf, gc, beta) for _ in range(3)))
        self.beta = beta

    def forward(self, x):
        return x + self.beta * self.blocks(x)


@NETWORKS.register("esrgan")
class ESRGANGenerator(GeonbNet):
    def __init__(self, factor: int = 4, cond_res: tuple = (), n_blocks: int = 12, nf: int = 64,
                 gc: int = 32, beta: float = 0.2, cond_features: int = 16, sigma: bool = False):
        super().__init__()
        self.factor, self.cond_res = int(factor), tuple(int(r) for r in cond_res)
        self.cond_convs = nn.ModuleList(
            nn.Sequential(nn.Conv2d(1, cond_features, r, stride=r) if r > 1 else nn.Conv2d(1, cond_features, 1), _lrelu())
            for r in self.cond_res
        )
        self.conv_first = nn.Conv2d(1 + cond_features * len(self.cond_res), nf, 3, padding=1)
        self.body = nn.Sequential(*(RRDB(nf, gc, beta) for _ in range(n_blocks)))
        self.conv_body = nn.Conv2d(nf, nf, 3, padding=1)
        n_up = int(round(math.log2(self.factor)))
        self.ups = nn.ModuleList(nn.Conv2d(nf, nf, 3, padding=1) for _ in range(n_up))
        self.conv_hr = nn.Conv2d(nf, nf, 3, padding=1)
        self.conv_last = nn.Conv2d(nf, 1, 3, padding=1)
        with torch.no_grad():  # small output at start: the untrained generator ≈ bicubic (ESRGAN scales init too)
            self.conv_last.weight.mul_(0.1)
            self.conv_last.bias.zero_()
        # Receptive-field radius in low-res px: 15 convs per RRDB + first/body convs,
        # the upsampling and output convs (< 2 low-res px), bicubic support (2).
        self.halo = 15 * n_blocks + 2 + 2 + 2 + 1
        self.sigma = SigmaHead(self.factor, self.cond_res) if sigma else None  # (mean, log-variance): models.sigma
        self.halo += self.sigma.halo if sigma else 0

    def forward(self, lr, conds=()):
        cond_feats = [conv(c) for conv, c in zip(self.cond_convs, conds)]
        feat = self.conv_first(torch.cat([lr, *cond_feats], 1))
        feat = feat + self.conv_body(self.body(feat))
        for conv in self.ups:
            feat = F.leaky_relu(conv(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
        out = self.conv_last(F.leaky_relu(self.conv_hr(feat), 0.2))
        return with_sigma(self.sigma, upsample_bicubic(lr, self.factor) + out, lr, conds)


@NETWORKS.register("esrgan_discriminator")
class Discriminator(GeonbNet):
    """VGG-style critic, fully convolutional with global pooling: any patch size."""

    def __init__(self, nf: int = 32):
        super().__init__()
        layers, ch = [], 1
        for i, out in enumerate((nf, nf, 2 * nf, 2 * nf, 4 * nf, 4 * nf)):
            layers += [nn.Conv2d(ch, out, 3 if i % 2 == 0 else 4, stride=1 if i % 2 == 0 else 2, padding=1), _lrelu()]
            ch = out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(ch, 1)

    def forward(self, x):
        return self.head(self.features(x).mean(dim=(2, 3)))
