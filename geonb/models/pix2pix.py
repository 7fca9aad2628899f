"""pix2pix (Isola et al. 2017): a U-Net generator and a 70×70 PatchGAN discriminator.

``pix2pix_unet``: ``depth`` stride-2 4×4 convolutions down (conv-BatchNorm-LeakyReLU 0.2;
no norm on the first and the innermost), as many transposed convolutions up (ReLU-convT-
BatchNorm, dropout 0.5 in the first ``dropout_blocks`` decoder blocks), each concatenated
with the encoder map of the same size; tanh out. Widths ``ngf``·min(2^i, 8). The paper's
256×256 generator is ``depth=8`` (a 1×1 bottleneck); geonb's default is 6 (a 4×4 bottleneck
on 256 tiles), cheaper to predict large images with.

Tiled prediction (``geonb.predict``): inputs are padded to ``multiple`` = 2^depth, and tiles
must start at multiples of it (stride-2 layers see the same pixel phases as in one pass);
``halo`` = 2·multiple covers the receptive-field radius (2^(depth+1) − 1 px, measured by the
gradient support in tests/test_translate.py), so tiled = one-shot.

``patchgan``: C64-C128-C256-C512 (4×4, strides 2, 2, 2, 1; no norm on the first) and a 1-channel
4×4 stride-1 output: one logit per 70×70 patch of its input (here the photo and a map stacked).
"""
from __future__ import annotations

import torch
from torch import nn

from ..registry import NETWORKS
from .base import GeonbNet


def init_weights(net: nn.Module, std: float = 0.02) -> nn.Module:
    """DCGAN/pix2pix init: conv and linear weights N(0, std), BatchNorm weights N(1, std), biases 0."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)
    return net


@NETWORKS.register("pix2pix_unet")
class Pix2PixUNet(GeonbNet):
    """Input (B, in_channels, H, W), H and W multiples of 2^depth; output (B, out_channels, H, W) in [−1, 1]."""

    def __init__(self, in_channels: int = 3, out_channels: int = 3, ngf: int = 64, depth: int = 6,
                 dropout_blocks: int = 3):
        super().__init__()
        if depth < 2:
            raise ValueError("pix2pix_unet needs depth >= 2")
        self.depth = depth
        self.multiple = 2 ** depth
        self.halo = 2 * self.multiple  # the receptive-field radius is 2^(depth+1) − 1 px
        w = [ngf * min(2 ** i, 8) for i in range(depth)]
        down = [nn.Conv2d(in_channels, w[0], 4, 2, 1)]
        for i in range(1, depth):
            layers = [nn.LeakyReLU(0.2), nn.Conv2d(w[i - 1], w[i], 4, 2, 1, bias=i == depth - 1)]
            if i < depth - 1:
                layers.append(nn.BatchNorm2d(w[i]))
            down.append(nn.Sequential(*layers))
        self.down = nn.ModuleList(down)
        up = []
        for k, i in enumerate(range(depth - 1, 0, -1)):  # decoder blocks from the bottom
            cin = w[i] if i == depth - 1 else 2 * w[i]
            layers = [nn.ReLU(), nn.ConvTranspose2d(cin, w[i - 1], 4, 2, 1, bias=False), nn.BatchNorm2d(w[i - 1])]
            if k < dropout_blocks:
                layers.append(nn.Dropout(0.5))
            up.append(nn.Sequential(*layers))
        self.up = nn.ModuleList(up)
        self.out = nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(2 * w[0], out_channels, 4, 2, 1), nn.Tanh())
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
        skips.pop()
        for block in self.up:
            x = torch.cat([skips.pop(), block(x)], dim=1)
        return self.out(x)


@NETWORKS.register("patchgan")
class PatchGAN(GeonbNet):
    """70×70 PatchGAN (n_layers=3): (B, in_channels, H, W) → (B, 1, H/8 − 2, W/8 − 2) logits."""

    def __init__(self, in_channels: int = 6, ndf: int = 64, n_layers: int = 3):
        super().__init__()
        layers = [nn.Conv2d(in_channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2)]
        cin = ndf
        for n in range(1, n_layers + 1):
            cout = ndf * min(2 ** n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(cin, cout, 4, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2)]
            cin = cout
        layers.append(nn.Conv2d(cin, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
