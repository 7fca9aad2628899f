"""A calibrated predictive σ for a downscaling network (``-p sigma true``, ``geonb train --sigma true``).

After the mean is trained, the same network is rebuilt with a σ head (``geonb.models.sigma``), the
mean's weights loaded and frozen, and the head trained on the same training patches by the Gaussian
negative log-likelihood (``losses.gaussian_nll``, as dincae) of the truth under N(mean, exp(log-variance)),
early-stopped on the val region's. The mean is the model trained without σ, to the bit. The head learns
on training patches, where the mean is better than anywhere else, so its σ is then scaled by one number
fitted on the val region (``metrics.probabilistic.fit_sigma_scale``), kept in the model file as
``method_args["sigma_scale"]`` and applied to every prediction.
"""
from __future__ import annotations

import math

import torch

from ...errors import GeonbError
from ...losses import gaussian_nll
from ...methods.base import forward
from ...metrics.probabilistic import fit_sigma_scale
from ...registry import get_arch
from ...training import epoch_batches, fit

HEAD_LR = 1e-3


def check_sigma(arch: str) -> None:
    """Refuse ``sigma`` for an arch whose network has no σ head."""
    if not get_arch(arch).accepts("generator", {"sigma": True}):
        raise GeonbError(f"sigma: the {arch} network has no σ head; use srcnn or srgan, or set sigma false.")


def _nll(out, hr, w) -> torch.Tensor:
    """The Gaussian NLL on the valid cells (weight > 0): the others are NaN targets, out of the mean."""
    return gaussian_nll(out, torch.where(w[:, 0] > 0, hr[:, 0], torch.nan))


def add_sigma(method, arch: str, arch_args: dict, batches, vals, ckpt_dir, *, epochs: int, patience: int, seed: int,
              acc) -> None:
    """Give ``method`` a generator with a trained σ head (its mean's weights, frozen) and set
    ``method.sigma_fit`` = {"scale", "history"}: the σ scale fitted on ``vals`` ((x, hr, w) batches on the
    device), the head's training history (val_loss: the val region's Gaussian NLL, normalised units)."""
    check_sigma(arch)
    net = get_arch(arch).build("generator", **arch_args, sigma=True).to(acc.device)
    loaded = net.load_state_dict(method.weights()[-1], strict=False)  # every weight but the head's
    if loaded.unexpected_keys or not all(k.startswith("sigma.") for k in loaded.missing_keys):
        raise RuntimeError(f"the {arch} weights do not fit its σ network: {loaded}")
    for name, p in net.named_parameters():
        p.requires_grad_(name.startswith("sigma."))
    net.eval()
    optimizer = torch.optim.Adam(net.sigma.parameters(), lr=HEAD_LR)
    with torch.no_grad():  # start at the mean's error variance on training patches: the head learns where it differs
        x, hr, w = next(iter(epoch_batches(batches, 0, acc)))
        mse = float(((forward(net, x)[:, :1] - hr) ** 2 * w).sum() / w.sum().clamp_min(1))
        net.sigma.body[-1].bias.fill_(math.log(max(mse, 1e-8)))

    def train_step(batch) -> dict:
        x, hr, w = batch
        loss = _nll(forward(net, x), hr, w)
        optimizer.zero_grad()
        with torch.autocast(acc.device.type, enabled=False):  # autocast covers forward passes only
            loss.backward()
            optimizer.step()
        return {"loss": loss.item()}

    def outputs():
        return [(forward(net, x), hr, w) for x, hr, w in vals]

    def validate() -> dict:
        scored = [(_nll(out, hr, w).item(), float((w > 0).sum())) for out, hr, w in outputs()]
        return {"val_loss": sum(v * n for v, n in scored) / sum(n for _, n in scored)}

    history = fit({"sigma": net.sigma}, {"sigma": optimizer}, batches, train_step, validate, ckpt_dir,
                  epochs=epochs, patience=patience, seed=seed, desc=f"{arch} σ head", acc=acc)
    with torch.no_grad():
        kept = [(out[:, 0] - hr[:, 0], torch.exp(0.5 * out[:, 1]), w[:, 0] > 0) for out, hr, w in outputs()]
    scale = fit_sigma_scale(torch.cat([e[k] for e, _, k in kept]).cpu().numpy(),
                            torch.cat([s[k] for _, s, k in kept]).cpu().numpy())
    method.nets["generator"], method.snapshots = net, []
    method.sigma_fit = {"scale": scale, "history": history}
