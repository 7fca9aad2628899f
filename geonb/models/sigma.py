"""The σ head of a downscaling network (``sigma=True``): a log-variance per fine cell beside the mean.

A small CNN on the network's own output (detached), the bicubic-upsampled low-res grid and the
conditioning grids at the fine resolution; the network then returns (B, 2, H·f, W·f): mean and
log-variance. It is trained after the mean, with the mean's weights frozen
(``geonb.tasks.downscale.sigma``), so adding σ leaves the mean exactly as trained without it.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..resample import to_resolution, upsample_bicubic

SPAN = 15  # fine cells of context each side: 5×5, 5×5 dilated 2 and 4, 3×3 convolutions


class SigmaHead(nn.Module):
    def __init__(self, factor: int, cond_res: tuple = (), width: int = 32):
        super().__init__()
        self.factor, self.cond_res = int(factor), tuple(cond_res)
        self.body = nn.Sequential(
            nn.Conv2d(3 + len(self.cond_res), width, 5, padding=2), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 5, padding=4, dilation=2), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 5, padding=8, dilation=4), nn.ReLU(inplace=True),
            nn.Conv2d(width, 1, 3, padding=1),
        )
        # low-res cells of context beyond the mean's own: the convolutions' span and the bicubic support
        self.halo = math.ceil(SPAN / self.factor) + 2

    def forward(self, mean, lr, conds=()):
        up = upsample_bicubic(lr, self.factor)
        extra = [to_resolution(c, r, self.factor) for c, r in zip(conds, self.cond_res)]
        return self.body(torch.cat([mean, up, mean - up, *extra], 1))


def with_sigma(head: SigmaHead | None, mean, lr, conds=()):
    """The mean alone, or (mean, log-variance) as two channels when the network has a σ head."""
    return mean if head is None else torch.cat([mean, head(mean.detach(), lr, conds)], 1)
