"""``classification``: per-pixel cross-entropy over class logits (segmentation: SegNet, FCN, U-Net).

A batch is ``(x, y, None)``: images (B, C, H, W) and class indices (B, H, W); pixels whose class is
``ignore_index`` (unlabeled) count neither in the loss nor in its mean. ``class_weights`` (one per
class, e.g. median-frequency balancing as SegNet did) weight each pixel's term by its true class:

    L = Σ_i w_{y_i} · (−log softmax(z_i)_{y_i}) / Σ_i w_{y_i}   over labelled pixels i.

Prediction applies the model file's calibration, both fitted on validation pixels (``geonb.calibration``,
``geonb.tasks.segment.calibrate``): the snapshots' mean probability p, the class weights' prior divided out by
``method_args["prior_alpha"]`` α (p / w^α with ``method_args["class_weights"]`` w; the argmax may move to a
common class), then the temperature ``method_args["temperature"]`` T, p_T ∝ exp(log p / T) (the argmax stays).
With ``method_args["tta"]`` (test-time augmentation) each snapshot's probability is itself the mean over the
8 flips and 90° turns of the input (the training augmentations), each mapped back; training and its validation
never use it.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..calibration import prior_offsets
from ..registry import METHODS
from .base import Method


@METHODS.register("classification")
class Classification(Method):
    loss_name = "cross-entropy"
    temperature = 1.0  # a model file without one: probabilities as the network gives them
    log_prior = None  # α · log w, or None: no prior divided out
    tta = False

    def __init__(self, nets, *, lr: float, class_weights: list | None = None, ignore_index: int = 255,
                 betas: list | None = None):
        super().__init__(nets, lr=lr, betas=betas)
        device = next(self.generator.parameters()).device
        self.class_weights = None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32,
                                                                             device=device)
        self.ignore_index = int(ignore_index)

    def loss(self, pred, y, w) -> torch.Tensor:
        return F.cross_entropy(pred, y.long(), weight=self.class_weights, ignore_index=self.ignore_index)

    @classmethod
    def for_prediction(cls, method_args: dict) -> Method:
        method = super().for_prediction(method_args)
        method.temperature = float(method_args.get("temperature", 1.0))
        alpha, weights = method_args.get("prior_alpha", 0.0), method_args.get("class_weights")
        if alpha and weights is not None:
            method.log_prior = torch.as_tensor(prior_offsets(weights, alpha))
        method.tta = bool(method_args.get("tta", False))
        return method

    def infer(self, net, x) -> torch.Tensor:
        """Logits, or with ``tta`` the log of the mean probability over the 8 dihedral views of ``x``
        (a valid input to ``combine``'s log-softmax, which leaves it unchanged)."""
        if not self.tta:
            return super().infer(net, x)
        views = []
        for flip in (False, True):
            xf = x.flip(-1) if flip else x
            for k in range(4):
                logits = super().infer(net, xf.rot90(k, (-2, -1)))  # bf16 under autocast: sum in float32 at least
                logp = torch.log_softmax(logits, 1, dtype=torch.promote_types(logits.dtype, torch.float32))
                logp = logp.rot90(-k, (-2, -1))
                views.append(logp.flip(-1) if flip else logp)
        return torch.logsumexp(torch.stack(views), 0) - np.log(len(views))

    def combine(self, outputs: list[np.ndarray]) -> dict[str, np.ndarray]:
        """Logits (N, C, H, W) of one or several snapshots → ``{"mean": class probabilities (N, C, H, W), prior
        divided out and at the model's temperature, "classes": (N, H, W) uint8 argmax}`` (snapshots averaged by
        probability)."""
        logp = torch.stack([torch.log_softmax(torch.as_tensor(o), 1) for o in outputs])
        mean = torch.logsumexp(logp, 0) - np.log(len(outputs))  # log of the mean probability, without underflow
        if self.log_prior is not None:  # its length is checked against the classes when the file loads
            mean = mean - self.log_prior.to(mean.dtype).view(1, -1, *([1] * (mean.ndim - 2)))
        probs = torch.softmax(mean / self.temperature, 1).numpy()
        return {"mean": probs, "classes": probs.argmax(1).astype(np.uint8)}
