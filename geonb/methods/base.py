"""The contract every training recipe keeps (after pix2pix's ``BaseModel`` and torchgeo's trainers).

A method owns the networks of one arch by role (``generator``, ``discriminator``), their
optimisers and the loss; it turns a batch ``(x, y, w)`` — the network input (a tensor,
or a tuple of arguments), the target and per-pixel loss weights (or None) — into one
optimisation step. The epoch loop, checkpoints and resume are ``training.fit``'s.

What the one predictor (``geonb.predict``) calls, so that a recipe that predicts differently
(sampling, test-time augmentation, ensembles) overrides one method and every task follows:

``infer(net, x)``       the forward pass (``predict(x)``, validation's, is ``infer(self.generator, x)``;
                        the training steps run ``infer(self.nets["generator"], x)``);
``average(states, how)`` the weight sets to run, from the model file's snapshots: each of them
                        (``how="predictions"``) or their average (``"weights"``);
``combine(outputs)``    the outputs of those runs → ``{"mean": …}`` (and what else the method gives).

The predictor gets the method from ``for_prediction(method_args)``: no networks or optimisers,
only what the model file's ``method_args`` say (``residual``).

With ``ema`` > 0 (the GAN methods take it) the generator that validation, the predictor and the model file
use is a moving average of the trained one's weights (and BatchNorm statistics), updated after every
generator step: the mean of all steps so far until there are 1/(1 − ema) of them, then an exponential
average with that horizon (Yazici et al. 2019: averaging a GAN's generator over its steps damps their
back-and-forth). Training itself runs the trained generator, ``nets["generator"]``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from .. import distributed
from ..checkpoints import load_checkpoint, save_checkpoint
from ..errors import GeonbError
from ..training import Accelerator, fit, resumed_epoch


def forward(net: nn.Module, x, residual: bool = False):
    """The prediction: ``net(*x)`` when the input is a tuple of arguments (low-res grid, conditioning
    grids); with ``residual`` the output is a correction to the first input channel (a pre-fill)."""
    out = net(*x) if isinstance(x, tuple) else net(x)
    return x[:, :1] + out if residual else out


AVERAGING = ("predictions", "weights")  # how several weight snapshots make one prediction (``Method.average``)


def average_weights(states: list[dict]) -> dict:
    """One state dict with every floating tensor averaged over ``states`` (stochastic weight averaging)."""
    return {k: (sum(s[k] for s in states) / len(states)).to(v.dtype) if v.is_floating_point() else v
            for k, v in states[-1].items()}


class Method:
    roles: tuple[str, ...] = ("generator",)
    loss_name = "loss"  # what the loss curve of 03 is labelled
    data_parallel = True  # False: its training cannot run data-parallel (DDP); workflow refuses ddp > 1
    residual = False  # set by methods whose network corrects its input (``forward``)

    def __init__(self, nets: dict[str, nn.Module], *, lr: float, n_average: int = 0, betas: list | None = None,
                 ema: float = 0.0):
        missing = set(self.roles) - set(nets)
        if missing:
            raise RuntimeError(f"{type(self).__name__} needs networks {sorted(missing)}")
        self.nets = nets
        betas = tuple(betas or (0.9, 0.999))  # Adam's defaults; the GANs of the source works use β1 = 0.5
        self.optimizers = {role: torch.optim.Adam(nets[role].parameters(), lr=lr, betas=betas) for role in self.roles}
        self.n_average = int(n_average)  # > 0: keep the generator of the last n epochs (snapshots)
        self.snapshots: list[dict] = []
        self.acc = Accelerator(next(nets["generator"].parameters()).device)  # methods.build sets the run's
        if not 0 <= ema < 1:
            raise GeonbError(f"ema={ema}: the generator's moving-average decay must be in [0, 1) (0: no average).")
        if ema:
            trained = nets["generator"]
            # a copy of the network itself (not of a DDP wrapper), kept beside the roles, so training.fit
            # checkpoints, resumes and restores it with them
            self.nets["average"] = AveragedModel(getattr(trained, "module", trained), use_buffers=True,
                                                 multi_avg_fn=_averaging(ema))

    @property
    def generator(self) -> nn.Module:
        """The generator validation, the predictor and the model file use: the moving average when ``ema`` > 0."""
        average = self.nets.get("average")
        return average.module if average is not None else self.nets["generator"]

    def weights(self) -> list[dict]:
        """What a model file keeps: the snapshots to average, or the generator's (best) weights; on the CPU."""
        states = self.snapshots or [self.generator.state_dict()]
        return [{k: v.cpu() for k, v in s.items()} for s in states]

    @classmethod
    def for_prediction(cls, method_args: dict) -> Method:
        """The method as the predictor uses it (``infer``, ``average``, ``combine``): no networks or
        optimisers, the settings of a model file's ``method_args`` that prediction reads (``residual``).
        A method whose prediction takes settings (a number of samples) reads them here."""
        method = cls.__new__(cls)
        method.residual = bool(method_args.get("residual", False))
        return method

    def infer(self, net: nn.Module, x) -> torch.Tensor:
        """The forward pass of ``net`` on input ``x`` (a tensor or a tuple of arguments), in training,
        validation and the predictor alike."""
        return forward(net, x, self.residual)

    def predict(self, x) -> torch.Tensor:
        return self.infer(self.generator, x)

    def step(self, role: str, loss: torch.Tensor) -> None:
        opt = self.optimizers[role]
        opt.zero_grad()
        with torch.autocast(self.acc.device.type, enabled=False):  # autocast covers forward passes only
            loss.backward()
            opt.step()
        if role == "generator" and "average" in self.nets:  # DDP's wrapper yields the network's tensors
            self.nets["average"].update_parameters(self.nets["generator"])
            distributed.broadcast_buffers(self.nets["average"])  # its statistics came from this process's slice

    def loss(self, pred, y, w) -> torch.Tensor:
        raise NotImplementedError

    def train_step(self, batch) -> dict:
        """One step on ``self.loss``; GAN methods override this with their two steps."""
        x, y, w = batch
        loss = self.loss(self.infer(self.nets["generator"], x), y, w)
        self.step("generator", loss)
        return {"loss": loss.item()}

    def fit(self, batches, validate, ckpt_dir, *, epochs: int, patience: int, seed: int, desc: str) -> list[dict]:
        """Train with ``training.fit`` on this method's accelerator (the best epoch's weights restored
        at the end) — every network, the roles and what a method keeps beside them (the generator's moving
        average); with ``n_average`` the generator of every epoch is saved too and the last n kept."""
        if self.n_average > 0:
            validate = self._snapshotting(validate, Path(ckpt_dir))
        history = fit(dict(self.nets), self.optimizers, batches, self.train_step, validate,
                      ckpt_dir, epochs=epochs, patience=patience, seed=seed, desc=desc, acc=self.acc)
        if self.n_average > 0:
            kept = sorted((Path(ckpt_dir) / "snapshots").glob("epoch_*.pt"))[-self.n_average:]
            self.snapshots = [load_checkpoint(p) for p in kept]
        return history

    def _snapshotting(self, validate, ckpt_dir: Path):
        folder = ckpt_dir / "snapshots"
        folder.mkdir(parents=True, exist_ok=True)
        # numbered by epoch: an epoch repeated after a kill overwrites its own snapshot
        epoch = [resumed_epoch(ckpt_dir)]

        def snapshot_then_validate():
            epoch[0] += 1
            save_checkpoint(folder / f"epoch_{epoch[0]:04d}.pt", self.generator.state_dict())
            return validate()

        return snapshot_then_validate

    def average(self, states: list[dict], how: str = "predictions") -> list[dict]:
        """The weight sets the predictor runs, one output each (``combine`` makes them one): every
        snapshot for ``how="predictions"``, their average (``average_weights``, one pass) for ``"weights"``."""
        return [average_weights(states)] if how == "weights" and len(states) > 1 else states

    @staticmethod
    def combine(outputs: list[np.ndarray]) -> dict[str, np.ndarray]:
        """Outputs (N, C, H, W) of several snapshots (normalised units) → ``{"mean": …}``: their average,
        (N, H, W) for a one-channel field, (N, C, H, W) for several channels (an RGB map)."""
        mean = np.stack(outputs).mean(0)
        return {"mean": mean[:, 0] if mean.shape[1] == 1 else mean}


def _averaging(decay: float):
    """AveragedModel's update, called once per group of tensors of one device and dtype: after n averaged
    steps, floats move towards the trained weights by max(1 − decay, 1/(n + 1)) — the plain mean of the steps
    until there are 1/(1 − decay) of them, so the random start weighs no more than any step; integers
    (BatchNorm's step count) are copied."""
    @torch.no_grad()
    def update(averaged: list, current: list, n_averaged) -> None:
        if averaged[0].is_floating_point():
            torch._foreach_lerp_(averaged, current, max(1.0 - decay, 1.0 / (int(n_averaged) + 1)))
        else:
            torch._foreach_copy_(averaged, current)
    return update
