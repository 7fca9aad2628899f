"""``regression`` (SRCNN; with ``loss="l1"`` the L1-only pix2pix U-Net) and ``stagewise``
(recurrent SRCNN): mean squared (or absolute) error to the target.

``stagewise`` trains a chain of ×2 stages one after the other (Stengel/Zhang's recurrent
SRCNN): stage k maps resolution 2^k to 2^(k+1) and learns against the high-res truth
block-averaged to 2^(k+1); earlier stages are frozen and feed it their output. The
network keeps ``stages``, ``stage_conds(conds, k)`` and ``forward_stages(lr, conds, upto)``.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..losses import pixel_loss
from ..registry import METHODS
from ..resample import block_mean
from ..training import fit
from .base import Method


@METHODS.register("regression")
class Regression(Method):
    loss_name = "MSE"

    def __init__(self, nets, *, lr: float, loss: str = "mse", betas: list | None = None):
        super().__init__(nets, lr=lr, betas=betas)
        # a pixel loss (``geonb.losses``), weighted per pixel when the batch has weights (masked cells 0)
        self.loss_fn, self.loss_name = pixel_loss(loss), loss.upper()

    def loss(self, pred, y, w) -> torch.Tensor:
        return self.loss_fn(pred, y, w)


@METHODS.register("stagewise")
class Stagewise(Regression):
    loss_name = "MSE per stage"
    data_parallel = False  # its stages train outside the network's (DDP's) forward pass
    stage: int | None = None  # during fit: the stage being trained, where ``infer`` stops; None: the whole chain

    def __init__(self, nets, *, lr: float):
        super().__init__(nets, lr=lr)
        self.lr = lr
        self.optimizers = {}  # one optimiser per stage, made in fit

    def infer(self, net, x) -> torch.Tensor:
        lr, conds = x if isinstance(x, tuple) else (x, ())
        return net.forward_stages(lr, conds, self.stage)[-1]

    def train_step(self, batch) -> dict:
        (lr, conds), hr, w = batch
        net, k = self.generator, self.stage
        with torch.no_grad():
            x = lr if k == 0 else net.forward_stages(lr, conds, k - 1)[-1]
        down = net.factor // 2 ** (k + 1)
        label, weights = block_mean(hr, down), None if w is None else block_mean(w, down)
        loss = self.loss(net.stages[k](x, net.stage_conds(conds, k)), label, weights)
        self.step("stage", loss)
        return {"loss": loss.item()}

    def fit(self, batches, validate, ckpt_dir, *, epochs, patience, seed, desc) -> list[dict]:
        """Each stage to its own early stop; ``validate`` scores ``predict`` at that stage's resolution."""
        history, stages = [], self.generator.stages
        for k, stage in enumerate(stages):
            self.stage = k
            self.optimizers = {"stage": torch.optim.Adam(stage.parameters(), lr=self.lr)}
            hist = fit({"stage": stage}, self.optimizers, batches, self.train_step, validate, Path(ckpt_dir) / f"stage{k}",
                       epochs=epochs, patience=patience, seed=seed, acc=self.acc,
                       desc=f"{desc} stage {k + 1}/{len(stages)} (×{2 ** (k + 1)})")
            history += [{**h, "stage": k + 1} for h in hist]
        self.stage = None
        return history
