"""Losses by name (``registry.LOSSES``): what the methods minimise. Tensors are in normalised units
unless said.

Three kinds, one registry, one name each:

- pixel losses, functions ``(pred, y, w) → loss`` (``w``: per-pixel weights or None): ``mse``,
  ``l1`` — a ``regression`` method's ``loss``;
- content losses, ``Content`` classes built with their arguments (``content_args``), called
  ``(pred, x, y, w) → (loss, logs)``: ``masked``, ``deepbedmap``; a pixel loss serves as one too,
  times a ``weight`` (pix2pix's λ·L1: content ``l1``) — a ``paired_gan``'s ``content``;
- adversarial losses, ``Adversarial`` classes built on the discriminator, with a discriminator side
  and a generator side: ``pair_bce``, ``ragan``, ``patch_bce`` — a ``paired_gan``'s ``adversarial``,
  so one paired-GAN recipe (``geonb.methods.paired_gan``) serves every conditional GAN.

``pixel_loss``, ``content_loss`` and ``adversarial_loss`` look a name up, refusing one of another
kind with the valid names of the kind asked for.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .errors import GeonbError
from .registry import LOSSES, check_arguments
from .resample import block_mean


def masked_mse(pred, target, weights):
    """Weighted squared error; NaN targets carry weight 0 (the seed's semantic loss with its weights)."""
    return (weights * (pred - torch.nan_to_num(target)) ** 2).sum() / weights.sum().clamp_min(1e-8)


def gaussian_nll(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """−log N(target; mean, exp(logvar)) up to a constant, on pixels where ``target`` is finite.

    ``out`` holds (mean, log-variance) as channels 0 and 1.
    """
    ok = torch.isfinite(target)
    y = torch.where(ok, target, torch.zeros_like(target))
    mean, logvar = out[:, 0], out[:, 1]
    return (0.5 * (logvar + (mean - y) ** 2 * torch.exp(-logvar)))[ok].mean()


def _gauss_window(size: int = 7, sigma: float = 1.5, dtype=torch.float32) -> torch.Tensor:
    x = torch.arange(size, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-x ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


@LOSSES.register("mse")
def mse(pred, target, weights=None):
    """Mean squared error; with per-pixel weights (masked cells 0) the weighted one (``masked_mse``)."""
    return F.mse_loss(pred, target) if weights is None else masked_mse(pred, target, weights)


@LOSSES.register("l1")
def weighted_l1(pred, target, weights=None):
    """Mean absolute error, weighted per pixel (masked cells weight 0); plain L1 without weights."""
    if weights is None:
        return F.l1_loss(pred, target)
    return (weights * (pred - target).abs()).sum() / weights.sum().clamp_min(1e-8)


def ssim(pred: torch.Tensor, truth: torch.Tensor, data_range: float, weights=None) -> torch.Tensor:
    """Mean SSIM (Gaussian 7×7 window, valid part only), weighted per pixel when ``weights`` are
    given; differentiable, so it is also a loss."""
    w = _gauss_window(dtype=pred.dtype).to(pred.device)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_p, mu_t = F.conv2d(pred, w), F.conv2d(truth, w)
    var_p = F.conv2d(pred * pred, w) - mu_p ** 2
    var_t = F.conv2d(truth * truth, w) - mu_t ** 2
    cov = F.conv2d(pred * truth, w) - mu_p * mu_t
    s = ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / ((mu_p ** 2 + mu_t ** 2 + c1) * (var_p + var_t + c2))
    if weights is None:
        return s.mean()
    h = (w.shape[-1] - 1) // 2
    inner = weights[..., h:-h, h:-h]
    return (inner * s).sum() / inner.sum().clamp_min(1e-8)


# ---------------------------------------------------------------- content losses of the paired GAN
class Content:
    """A content loss: ``(pred, x, y, w) → (loss, {name: logged value})``."""

    def __call__(self, pred, x, y, w) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError


class PixelContent(Content):
    """A pixel loss as a content loss: ``weight`` · loss(ŷ, y, w), logged unweighted under its name
    (pix2pix's λ·L1 with ``l1``)."""

    def __init__(self, name: str, weight: float = 1.0):
        self.name, self.loss, self.weight = name, LOSSES.get(name), float(weight)

    def __call__(self, pred, x, y, w) -> tuple[torch.Tensor, dict]:
        value = self.loss(pred, y, w)
        return self.weight * value, {self.name: value.item()}


@LOSSES.register("masked")
class MaskedContent(Content):
    """The seed's masked loss on the generator output; weights come with the batch."""

    def __call__(self, pred, x, y, w) -> tuple[torch.Tensor, dict]:
        loss = masked_mse(pred, y, w)
        return loss, {"content": loss.item()}


DEEPBEDMAP_WEIGHTS = {"w_content": 1e-2, "w_adversarial": 2e-2, "w_topographic": 2e-3, "w_structural": 5.25}


@LOSSES.register("deepbedmap")
class DeepBedMapContent(Content):
    """DeepBedMap's generator loss without its adversarial term (Leong & Horgan 2020)::

        L = w_c·L1(ŷ, y) + w_t·L1(blockmean(ŷ), x_lr) + w_s·(1 − SSIM(ŷ, y))

    each term weighted per pixel by the batch's weights (masked cells count 0; the topographic
    term by the share of valid cells in a block). L1 terms in physical units (``units`` = the normaliser's std): DeepBedMap's weights
    assume metres, and in normalised units the content term would be ~std× too small.
    """

    def __init__(self, factor: int, units: float, w_content: float, w_topographic: float, w_structural: float):
        self.factor, self.units = factor, units
        self.w = {"content": w_content, "topographic": w_topographic, "structural": w_structural}

    def __call__(self, pred, x, y, w) -> tuple[torch.Tensor, dict]:
        lr = x[0]
        content = self.units * weighted_l1(pred, y, w)
        topo = self.units * weighted_l1(block_mean(pred, self.factor), lr, None if w is None else block_mean(w, self.factor))
        structural = 1 - ssim(pred, y, data_range=float(y.max() - y.min()) or 1.0, weights=w)
        loss = self.w["content"] * content + self.w["topographic"] * topo + self.w["structural"] * structural
        return loss, {"content_l1": content.item(), "topographic": topo.item(), "ssim": 1 - structural.item()}


# ---------------------------------------------------------------- adversarial losses
class Adversarial:
    """An adversarial loss on the discriminator ``disc``: ``discriminator(real, fake) → (loss, logs)``
    for its step, ``generator(real, fake) → loss`` for the generator's."""

    def __init__(self, disc: nn.Module):
        self.disc = disc

    def discriminator(self, real, fake) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError

    def generator(self, real, fake) -> torch.Tensor:
        raise NotImplementedError


@LOSSES.register("pair_bce")
class PairBCE(Adversarial):
    """The seed's pair game: the discriminator sees (real, fake) in a random order per sample
    and says whether the first is real; the generator wants it to pick wrong."""

    def __init__(self, disc: nn.Module):
        super().__init__(disc)
        self.first_real = None

    def _order(self, real, fake):
        sel = self.first_real[:, None, None, None]
        return torch.where(sel, real, fake), torch.where(sel, fake, real)

    def discriminator(self, real, fake) -> tuple[torch.Tensor, dict]:
        self.first_real = torch.rand(len(real), device=real.device) < 0.5
        logits = self.disc(*self._order(real, fake))
        loss = F.binary_cross_entropy_with_logits(logits, self.first_real.float())
        return loss, {"d_loss": loss.item(), "d_acc": ((logits > 0) == self.first_real).float().mean().item()}

    def generator(self, real, fake) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(self.disc(*self._order(real, fake)), (~self.first_real).float())


@LOSSES.register("ragan")
class RelativisticAverage(Adversarial):
    """Relativistic-average GAN (ESRGAN, DeepBedMap): each side judges real against the mean fake."""

    @staticmethod
    def _losses(real_logits, fake_logits):
        real_rel = real_logits - fake_logits.mean()
        fake_rel = fake_logits - real_logits.mean()
        bce = F.binary_cross_entropy_with_logits
        d_loss = (bce(real_rel, torch.ones_like(real_rel)) + bce(fake_rel, torch.zeros_like(fake_rel))) / 2
        g_loss = (bce(real_rel, torch.zeros_like(real_rel)) + bce(fake_rel, torch.ones_like(fake_rel))) / 2
        return d_loss, g_loss, real_rel, fake_rel

    def discriminator(self, real, fake) -> tuple[torch.Tensor, dict]:
        d_loss, _, real_rel, fake_rel = self._losses(self.disc(real), self.disc(fake))
        acc = torch.cat([real_rel > 0, fake_rel < 0]).float().mean()
        return d_loss, {"d_loss": d_loss.item(), "d_acc": acc.item()}

    def generator(self, real, fake) -> torch.Tensor:
        return self._losses(self.disc(real), self.disc(fake))[1]


@LOSSES.register("patch_bce")
class PatchBCE(Adversarial):
    """pix2pix's vanilla GAN on a PatchGAN: binary cross-entropy on every patch logit, real → 1,
    fake → 0; the discriminator's loss is halved (the paper's D/2); the generator wants fake → 1.
    ``d_acc``: share of patch logits on the right side of 0, real and fake together."""

    def discriminator(self, real, fake) -> tuple[torch.Tensor, dict]:
        real_logits, fake_logits = self.disc(real), self.disc(fake)
        bce = F.binary_cross_entropy_with_logits
        loss = 0.5 * (bce(real_logits, torch.ones_like(real_logits)) + bce(fake_logits, torch.zeros_like(fake_logits)))
        acc_real, acc_fake = (real_logits > 0).float().mean().item(), (fake_logits < 0).float().mean().item()
        return loss, {"d_loss": loss.item(), "d_acc": (acc_real + acc_fake) / 2, "d_acc_real": acc_real,
                      "d_acc_fake": acc_fake}

    def generator(self, real, fake) -> torch.Tensor:
        logits = self.disc(fake)
        return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))


# ---------------------------------------------------------------- by name
def kind(loss) -> str:
    """``"pixel"``, ``"content"`` or ``"adversarial"``: what a registered loss is."""
    if isinstance(loss, type) and issubclass(loss, Adversarial):
        return "adversarial"
    return "content" if isinstance(loss, type) and issubclass(loss, Content) else "pixel"


def names(*kinds: str) -> list[str]:
    """The registered losses of ``kinds``."""
    return [n for n in LOSSES.names() if kind(LOSSES.get(n)) in kinds]


def _get(name: str, *kinds: str):
    valid = names(*kinds)
    if name not in valid:
        raise GeonbError(f"no {' or '.join(kinds)} loss {name!r}; valid names: {', '.join(valid)}. "
                         f"{LOSSES.hint}")
    return LOSSES.get(name)


def pixel_loss(name: str) -> Callable:
    """The pixel loss ``name``: ``(pred, y, w) → loss``."""
    return _get(name, "pixel")


def content_loss(name: str, **args) -> Content:
    """The content loss ``name`` built with ``args`` (each checked), or the pixel loss ``name`` times ``weight``."""
    if kind(_get(name, "content", "pixel")) == "pixel":
        check_arguments(PixelContent, {"name": name, **args}, f"loss {name!r}")
        return PixelContent(name, **args)
    return LOSSES.build(name, **args)


def adversarial_loss(name: str, disc: nn.Module) -> Adversarial:
    """The adversarial loss ``name`` on the discriminator ``disc``."""
    _get(name, "adversarial")
    return LOSSES.build(name, disc=disc)
