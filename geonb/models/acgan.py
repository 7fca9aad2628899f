"""ACGAN (Odena et al. 2017) for 28×28 digits, and the small CNN that scores generated digits.

``acgan_generator``: noise (``latent``) + one-hot class label → Linear → (2·nf, 7, 7) →
BatchNorm-ReLU → ConvT to 14×14 (nf maps) → BatchNorm-ReLU → ConvT to 28×28 → tanh.
``acgan_discriminator``: two stride-2 convolutions (LeakyReLU 0.2, dropout, BatchNorm on the
second), then two heads on the same features: a real/fake logit and 10 class logits.
Weights N(0, 0.02) (BatchNorm N(1, 0.02)). ``digit_cnn``: conv-pool ×2 + dense, a classifier
trained on real training digits only, used as the judge of generated ones.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import NETWORKS
from .base import GeonbNet
from .pix2pix import init_weights


@NETWORKS.register("acgan_generator")
class ACGANGenerator(GeonbNet):
    """``forward(z (B, latent), labels (B,) int)`` → (B, 1, 28, 28) in [−1, 1]."""

    def __init__(self, latent: int = 100, n_classes: int = 10, nf: int = 64):
        super().__init__()
        self.latent, self.n_classes = latent, n_classes
        self.fc = nn.Linear(latent + n_classes, 2 * nf * 7 * 7)
        self.body = nn.Sequential(
            nn.BatchNorm2d(2 * nf), nn.ReLU(),
            nn.ConvTranspose2d(2 * nf, nf, 4, 2, 1, bias=False), nn.BatchNorm2d(nf), nn.ReLU(),
            nn.ConvTranspose2d(nf, 1, 4, 2, 1), nn.Tanh())
        self.nf = nf
        init_weights(self)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.fc(torch.cat([z, F.one_hot(labels.long(), self.n_classes).to(z.dtype)], dim=1))
        return self.body(h.view(len(z), 2 * self.nf, 7, 7))


@NETWORKS.register("acgan_discriminator")
class ACGANDiscriminator(GeonbNet):
    """(B, 1, 28, 28) → (real/fake logit (B,), class logits (B, n_classes))."""

    def __init__(self, n_classes: int = 10, nf: int = 32, dropout: float = 0.3):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, nf, 4, 2, 1), nn.LeakyReLU(0.2), nn.Dropout(dropout),
            nn.Conv2d(nf, 2 * nf, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * nf), nn.LeakyReLU(0.2),
            nn.Dropout(dropout), nn.Flatten())
        self.real_fake = nn.Linear(2 * nf * 7 * 7, 1)
        self.classes = nn.Linear(2 * nf * 7 * 7, n_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x)
        return self.real_fake(h).squeeze(1), self.classes(h)


@NETWORKS.register("digit_cnn")
class DigitCNN(GeonbNet):
    """(B, 1, 28, 28) in [−1, 1] → 10 class logits."""

    def __init__(self, n_classes: int = 10, nf: int = 32):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, nf, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(nf, 2 * nf, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(2 * nf * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
