"""How far to trust class probabilities: temperature scaling, class-prior division, calibration error, uncertainty.

Temperature scaling (Guo et al. 2017, "On calibration of modern neural networks"): one scalar T divides
the log-probabilities, p_T ∝ exp(log p / T), T fitted by minimising the negative log-likelihood of the
validation pixels. The argmax (the class map) never changes; T > 1 softens an over-confident network.
Probabilities from a softmax at T = 1 serve as logits here: log p = z − logsumexp(z), and the shift per
pixel cancels in the next softmax.

A class-weighted loss (median-frequency weights w_c) trains the network towards p_w(c|x) ∝ w_c p(c|x): its
probabilities lean to the rare classes, an error no single T undoes. ``unweight`` divides part of that prior
back out, p ∝ p_w / w^α (α = 0: none, 1: all); it moves the argmax towards the common classes, so how much
to divide is a choice made on validation (``geonb.tasks.segment.calibrate``).

Expected calibration error (torchmetrics' ``multiclass_calibration_error``, L1, equal-width bins of the
top-class confidence): ECE = Σ_b (n_b / n) · |accuracy_b − confidence_b|. ``reliability`` gives the bins
behind it (the reliability diagram). Uncertainty of a pixel: 1 − its largest class probability.
``compare`` puts these side by side for several probabilities of the same pixels (before / after T).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

N_BINS = 15  # ECE bins (Guo et al.)
T_RANGE = (0.05, 20.0)  # fitted temperatures are clipped here: beyond, the fit is degenerate (one class)


def _log(probs) -> torch.Tensor:
    return torch.as_tensor(np.asarray(probs), dtype=torch.float64).clamp_min(1e-300).log()


def temper(probs: np.ndarray, t: float, axis: int = 1) -> np.ndarray:
    """Class probabilities (classes along ``axis``) at temperature ``t``: softmax(log p / t), in p's dtype."""
    out = torch.softmax(_log(probs) / float(t), dim=axis).numpy()
    return out.astype(np.asarray(probs).dtype, copy=False)


def prior_offsets(weights, alpha: float) -> np.ndarray:
    """α · log w_c per class, what dividing by w^α subtracts from the log-probabilities; 0 for a weight of 0
    (a class absent from training divides nothing)."""
    w = np.asarray(weights, dtype=np.float64)
    return float(alpha) * np.log(np.where(w > 0, w, 1.0))


def unweight(probs: np.ndarray, weights, alpha: float, axis: int = 1) -> np.ndarray:
    """Class probabilities (classes along ``axis``) with the prior w^α divided out, renormalised (a negative α
    multiplies it back in)."""
    probs = np.asarray(probs)
    factor = np.exp(-prior_offsets(weights, alpha))
    shape = [1] * probs.ndim
    shape[axis] = len(factor)
    out = probs * factor.reshape(shape)
    return (out / out.sum(axis, keepdims=True)).astype(probs.dtype, copy=False)


def _labelled(probs: np.ndarray, labels: np.ndarray, ignore_index: int | None):
    """(N, C) probabilities and (N,) labels of the labelled pixels."""
    probs, labels = np.asarray(probs), np.asarray(labels).ravel()
    keep = np.ones(labels.shape, bool) if ignore_index is None else labels != ignore_index
    return probs[keep], labels[keep].astype(np.int64)


def nll(probs: np.ndarray, labels: np.ndarray, ignore_index: int | None = None) -> float:
    """Mean negative log-likelihood of the true classes; ``probs`` (N, C)."""
    probs, labels = _labelled(probs, labels, ignore_index)
    return float(-_log(probs[np.arange(len(labels)), labels]).mean())


def fit_temperature(probs: np.ndarray, labels: np.ndarray, ignore_index: int | None = None) -> float:
    """The T that minimises the NLL of ``labels`` under ``temper(probs, T)``; ``probs`` (N, C) at T = 1.
    Optimised over log T (T stays positive) by L-BFGS; the NLL is convex in 1/T."""
    probs, labels = _labelled(probs, labels, ignore_index)
    logp, target = _log(probs), torch.as_tensor(labels)
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=100, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(logp / log_t.exp(), target)
        loss.backward()
        return loss

    opt.step(closure)
    return float(np.clip(np.exp(log_t.item()), *T_RANGE))


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, ignore_index: int | None = None,
                               n_bins: int = N_BINS) -> float:
    """ECE (L1, ``n_bins`` equal-width confidence bins) of (N, C) probabilities, by torchmetrics."""
    from torchmetrics.functional.classification import multiclass_calibration_error

    probs, labels = _labelled(probs, labels, ignore_index)
    return float(multiclass_calibration_error(torch.as_tensor(probs, dtype=torch.float32), torch.as_tensor(labels),
                                              num_classes=probs.shape[1], n_bins=n_bins, norm="l1"))


def reliability(probs: np.ndarray, labels: np.ndarray, ignore_index: int | None = None,
                n_bins: int = N_BINS) -> pd.DataFrame:
    """The reliability diagram's bins: per equal-width bin of the top-class confidence, the pixel count, the
    mean confidence and the accuracy (the share whose top class is right); the bins of ``n_bins`` ECE."""
    probs, labels = _labelled(probs, labels, ignore_index)
    conf, right = probs.max(1), probs.argmax(1) == labels
    edges = np.linspace(0, 1, n_bins + 1)
    b = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, n_bins - 1)  # [lo, hi) as torchmetrics; 1 in the last
    count = np.bincount(b, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return pd.DataFrame({"lower": edges[:-1], "upper": edges[1:], "pixels": count,
                             "confidence": np.bincount(b, conf, n_bins) / count,
                             "accuracy": np.bincount(b, right, n_bins) / count})


def uncertainty(probs: np.ndarray, axis: int = 1) -> np.ndarray:
    """1 − the largest class probability: 0 for a sure pixel, up to 1 − 1/C for a uniform guess."""
    return 1 - np.asarray(probs).max(axis)


def accuracy_by_uncertainty(probs: np.ndarray, labels: np.ndarray, ignore_index: int | None = None,
                            share: float = 0.2) -> dict[str, float]:
    """Accuracy on the ``share`` most uncertain labelled pixels and on the rest (ties broken by position)."""
    probs, labels = _labelled(probs, labels, ignore_index)
    order = np.argsort(-uncertainty(probs), kind="stable")
    right = probs.argmax(1)[order] == labels[order]
    k = int(round(share * len(labels)))
    return {f"accuracy, {share:.0%} most uncertain": float(right[:k].mean()),
            f"accuracy, other {1 - share:.0%}": float(right[k:].mean())}


def compare(probs: dict[str, np.ndarray], labels: np.ndarray) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """Several (N, C) probabilities of the same labelled pixels (e.g. before / after temperature scaling) side
    by side: a table (a row each) of ECE, NLL, mean confidence, accuracy, and the accuracy on the 20 % most
    uncertain pixels and on the rest; and the reliability bins of each."""
    rows, bins = {}, {}
    for name, p in probs.items():
        rows[name] = {"ECE": expected_calibration_error(p, labels), "NLL": nll(p, labels),
                      "mean confidence": float(p.max(1).mean()), "accuracy": float((p.argmax(1) == labels).mean()),
                      **accuracy_by_uncertainty(p, labels)}
        bins[name] = reliability(p, labels)
    return pd.DataFrame(rows).T, bins
