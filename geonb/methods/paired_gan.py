"""``paired_gan``: a generator trained against a discriminator on (input, target) pairs.

One recipe for every conditional GAN (``ctxgan``, ``srgan``, ``pix2pix``), the content
loss and the adversarial loss named in the arch's settings (``geonb.losses``)::

    discriminator step:  L_D(real, G(x) detached)
    generator step:      L_G = content(G(x), y) + adv_weight · L_adv(real, G(x)),  D frozen

``composite``: the discriminator judges the inpainted image (observed pixels of the input
kept, the generator's values in the holes, land 0) rather than the raw output.
``conditional`` (pix2pix): the discriminator sees (input, output) pairs, the input
stacked before the real or generated image as channels; off, it sees the image alone.
``ema``: the generator validated and kept is a moving average of the trained one (``Method``'s).
"""
from __future__ import annotations

import torch

from ..distributed import frozen
from ..losses import adversarial_loss, content_loss
from ..registry import METHODS
from .base import Method


@METHODS.register("paired_gan")
class PairedGAN(Method):
    roles = ("generator", "discriminator")
    loss_name = "generator loss"

    def __init__(self, nets, *, lr: float, content: str, adversarial: str, adv_weight: float,
                 content_args: dict | None = None, residual: bool = False, composite: bool = False,
                 conditional: bool = False, betas: tuple | list | None = None, ema: float = 0.0):
        super().__init__(nets, lr=lr, betas=betas, ema=ema)
        self.conditional = bool(conditional)
        self.content = content_loss(content, **(content_args or {}))
        self.adversarial = adversarial_loss(adversarial, nets["discriminator"])
        self.adv_weight, self.residual, self.composite = float(adv_weight), bool(residual), bool(composite)

    def _seen(self, x, y, fake):
        """The fake as the discriminator sees it."""
        if not self.composite:
            return fake
        observed, sea = x[:, 1:2], torch.isfinite(y).float()
        return sea * (observed * x[:, :1] + (1 - observed) * fake)

    def train_step(self, batch) -> dict:
        x, y, w = batch
        fake = self.infer(self.nets["generator"], x)
        content, logs = self.content(fake, x, y, w)
        real, seen = torch.nan_to_num(y), self._seen(x, y, fake)
        if self.conditional:
            real, seen = torch.cat([x, real], dim=1), torch.cat([x, seen], dim=1)
        d_loss, d_logs = self.adversarial.discriminator(real, seen.detach())
        self.step("discriminator", d_loss)
        with frozen(self.nets["discriminator"]):  # the generator step moves the generator only
            adv = self.adversarial.generator(real, seen)
            loss = content + self.adv_weight * adv
            self.step("generator", loss)
        return {"loss": loss.item(), **logs, "adversarial": adv.item(), **d_logs}
