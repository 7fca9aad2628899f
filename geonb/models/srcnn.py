"""SRCNN (Dong et al. 2016) and a recurrent/stacked SRCNN of chained ×2 stages.

Every downscaling model takes ``(lr, conds)``: ``lr`` (B, 1, h, w) in normalised units
and ``conds`` a list of (B, 1, h*r, w*r) conditioning grids, r = ``cond_res[i]`` (the
grid's resolution as a multiple of the low-res grid), and returns (B, 1, h*f, w*f).
Each model exposes ``halo``: its receptive-field radius in low-res pixels, so tiled
prediction with that halo cropped off equals a one-shot prediction.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..registry import NETWORKS
from .base import GeonbNet
from .sigma import SigmaHead, with_sigma
from ..resample import to_resolution, upsample_bicubic


@NETWORKS.register("srcnn")
class SRCNN(GeonbNet):
    """9-1-5 SRCNN on the bicubic-upsampled grid (+ conditioning / coordinate channels).

    The network predicts a correction added to the bicubic input (residual learning,
    as VDSR): the same architecture, but it converges in a CPU-sized budget. ``sigma``: a σ head
    too (``models.sigma``), the output (mean, log-variance).
    """

    def __init__(self, factor: int = 4, cond_res: tuple = (), f1: int = 64, f2: int = 32, sigma: bool = False):
        super().__init__()
        self.factor, self.cond_res = int(factor), tuple(int(r) for r in cond_res)
        self.body = nn.Sequential(
            nn.Conv2d(1 + len(self.cond_res), f1, 9, padding=4), nn.ReLU(inplace=True),
            nn.Conv2d(f1, f2, 1), nn.ReLU(inplace=True),
            nn.Conv2d(f2, 1, 5, padding=2),
        )
        # 6 high-res px of convs + 2 low-res px of bicubic support (+1 to be safe).
        self.halo = math.ceil(6 / self.factor) + 3
        self.sigma = SigmaHead(self.factor, self.cond_res) if sigma else None
        self.halo += self.sigma.halo if sigma else 0

    def forward(self, lr, conds=()):
        up = upsample_bicubic(lr, self.factor)
        extra = [to_resolution(c, r, self.factor) for c, r in zip(conds, self.cond_res)]
        return with_sigma(self.sigma, up + self.body(torch.cat([up, *extra], 1)), lr, conds)


@NETWORKS.register("rsrcnn")
class RecurrentSRCNN(GeonbNet):
    """×f as log2(f) chained ×2 SRCNN stages; stage k's output feeds stage k+1.

    Trained stage by stage, each against its own intermediate-resolution label
    (the high-res truth block-averaged to that resolution).
    """

    def __init__(self, factor: int = 4, cond_res: tuple = (), f1: int = 64, f2: int = 32):
        super().__init__()
        self.factor, self.cond_res = int(factor), tuple(int(r) for r in cond_res)
        n = int(round(math.log2(self.factor)))
        # Stage k maps resolution 2^k to 2^(k+1); its conditioning grids are brought to 2^(k+1).
        self.stages = nn.ModuleList(SRCNN(2, (2,) * len(self.cond_res), f1, f2) for _ in range(n))
        self.halo = sum(math.ceil(s.halo / 2 ** k) for k, s in enumerate(self.stages)) + 1

    def stage_conds(self, conds, k):
        """Conditioning grids at stage k's output resolution 2^(k+1) (its SRCNN sees them as r=2)."""
        return [to_resolution(c, r, 2 ** (k + 1)) for c, r in zip(conds, self.cond_res)]

    def forward_stages(self, lr, conds=(), upto: int | None = None):
        """Outputs of stages 0..upto (all by default), each at its own resolution."""
        outs, x = [], lr
        for k, stage in enumerate(self.stages[: None if upto is None else upto + 1]):
            x = stage(x, self.stage_conds(conds, k))
            outs.append(x)
        return outs

    def forward(self, lr, conds=()):
        return self.forward_stages(lr, conds)[-1]
