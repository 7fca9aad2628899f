"""``acgan``: an auxiliary-classifier GAN (Odena et al. 2017) — not a paired GAN.

A batch is ``(images, labels, None)`` of real samples. Each step draws noise z and asked-for
labels c, then::

    discriminator:  L_D = ½[BCE(D_s(x), 1) + BCE(D_s(G(z, c)), 0)] + ½[CE(D_c(x), y) + CE(D_c(G(z, c)), c)]
    generator:      L_G = BCE(D_s(G(z, c)), 1) + CE(D_c(G(z, c)), c),   D frozen

Logged per step: ``g_loss``, ``d_loss``, ``d_acc`` (real/fake, real and fake together),
``d_acc_real``, ``d_acc_fake``, ``class_acc_real`` (D's class head on real digits) and
``class_acc_fake`` (on generated ones, against the asked-for label). ``predict((z, c))`` is the
generator's pass.

With ``ema`` > 0 the generator validated, sampled and kept is the moving average of the trained one
(``Method``'s).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import distributed
from ..distributed import frozen
from ..registry import METHODS
from .base import Method


@METHODS.register("acgan")
class ACGAN(Method):
    roles = ("generator", "discriminator")
    loss_name = "generator loss"

    def __init__(self, nets, *, lr: float, betas: tuple | list = (0.5, 0.999), ema: float = 0.0):
        super().__init__(nets, lr=lr, betas=betas, ema=ema)

    def sample_inputs(self, n: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        """Noise and asked-for labels for a batch of ``n``. In a data-parallel run every process draws the
        global batch's (the same numbers, its RNG seeded alike) and takes its own slice, as ``training`` slices
        the real digits: without it every process would draw the same fakes."""
        g, world = self.generator, distributed.world_size()
        z = torch.randn(n * world, g.latent, device=device)
        asked = torch.randint(0, g.n_classes, (n * world,), device=device)
        return z.tensor_split(world)[distributed.rank()], asked.tensor_split(world)[distributed.rank()]

    def train_step(self, batch) -> dict:
        real, labels, _ = batch
        disc = self.nets["discriminator"]
        z, asked = self.sample_inputs(len(real), real.device)
        fake = self.nets["generator"](z, asked)
        bce, ce = F.binary_cross_entropy_with_logits, F.cross_entropy
        real_s, real_c = disc(real)
        fake_s, fake_c = disc(fake.detach())
        d_loss = 0.5 * (bce(real_s, torch.ones_like(real_s)) + bce(fake_s, torch.zeros_like(fake_s))) \
            + 0.5 * (ce(real_c, labels) + ce(fake_c, asked))
        self.step("discriminator", d_loss)
        with frozen(disc):
            gen_s, gen_c = disc(fake)
            g_loss = bce(gen_s, torch.ones_like(gen_s)) + ce(gen_c, asked)
            self.step("generator", g_loss)
        acc_real, acc_fake = (real_s > 0).float().mean().item(), (fake_s < 0).float().mean().item()
        return {"g_loss": g_loss.item(), "d_loss": d_loss.item(), "d_acc": (acc_real + acc_fake) / 2,
                "d_acc_real": acc_real, "d_acc_fake": acc_fake,
                "class_acc_real": (real_c.argmax(1) == labels).float().mean().item(),
                "class_acc_fake": (fake_c.argmax(1) == asked).float().mean().item()}

