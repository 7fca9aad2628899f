"""The segment task's class probabilities: calibration fitted on the validation images (03: how much of the
class weights' prior to divide out, α, and the temperature T), and 04's calibration on the test images (ECE and
NLL before/after and of a baseline's probabilities, accuracy of the most uncertain pixels, the reliability diagram,
uncertainty maps)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ... import aerial, calibration
from ...metrics.classification import confusion_scores
from ...plots import save_figure
from ...predict import Predictor
from .infer import _tile, segment_image

FIT_PIXELS = 200_000  # labelled validation pixels T is fitted on (a random sample: the NLL's mean settles long before)
ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)  # shares of the class weights' prior that may be divided out


def probabilities(pred: Predictor, pairs: list[aerial.Pair]) -> list[np.ndarray]:
    """(C, H, W) class probabilities of each image, whole, calibrated as the model file says."""
    return [segment_image(pred, p.photo, tile=_tile(pred, p.photo), probabilities=True)[1] for p in pairs]


def labelled_pixels(probs: list[np.ndarray], pairs: list[aerial.Pair]) -> tuple[np.ndarray, np.ndarray]:
    """(N, C) probabilities and (N,) classes of the labelled pixels of the images (no-label pixels score nowhere)."""
    probs = np.concatenate([p.reshape(p.shape[0], -1).T for p in probs])
    classes = np.concatenate([p.classes.ravel() for p in pairs])
    keep = classes != aerial.IGNORE
    return probs[keep], classes[keep]


def fit_on_validation(model, pairs: list[aerial.Pair], seed: int = 0) -> tuple[float, float]:
    """Fit the calibration on the validation images and store it in the model's ``method_args`` (saved with it;
    the predictor applies it). For each α of ``ALPHAS`` (only 0 for a model trained without class weights, its
    ``info["class_weights"]``; with α > 0 they are copied to ``method_args`` for the predictor), the
    prior w^α is divided out and T fitted (NLL of ``FIT_PIXELS`` labelled pixels); kept: the α of least NLL
    among those whose mean IoU on all the labelled validation pixels is no lower than α = 0's (calibrating
    must not cost the class map). Returns (T, α)."""
    for key in ("temperature", "prior_alpha", "class_weights"):  # fitted on the network's own probabilities
        model.method_args.pop(key, None)
    probs, labels = labelled_pixels(probabilities(Predictor(model), pairs), pairs)
    weights = model.info.get("class_weights")
    t, alpha = choose(fit_alphas(probs, labels, weights, seed))
    model.method_args["temperature"] = t
    if alpha:
        model.method_args.update(prior_alpha=alpha, class_weights=list(weights))
    return t, alpha


def fit_alphas(probs: np.ndarray, labels: np.ndarray, weights, seed: int = 0) -> list[tuple[float, float, float, float]]:
    """(N, C) probabilities of labelled validation pixels → (α, T, NLL, mean IoU) per α of ``ALPHAS`` (only 0
    without ``weights``): T fitted on p / w^α (NLL of ``FIT_PIXELS`` of them, the NLL at that T), the mean IoU of
    the argmax on all of them."""
    pick = np.random.default_rng(seed).choice(len(labels), min(FIT_PIXELS, len(labels)), replace=False)
    fits = []
    for alpha in ALPHAS if weights is not None else (0.0,):
        q = calibration.unweight(probs, weights, alpha) if alpha else probs
        t = calibration.fit_temperature(q[pick], labels[pick])
        fits.append((alpha, t, calibration.nll(calibration.temper(q[pick], t), labels[pick]),
                     confusion_scores(labels, q.argmax(1), probs.shape[1])["mean IoU"]))  # T never moves the argmax
    return fits


def choose(fits: list[tuple[float, float, float, float]]) -> tuple[float, float]:
    """(α, T, validation NLL, validation mean IoU) per α, α = 0 first → (T, α) of least NLL among those whose
    mean IoU is no lower than α = 0's."""
    alpha, t, _, _ = min((f for f in fits if f[3] >= fits[0][3]), key=lambda f: f[2])
    return t, alpha


def scores(probs: list[np.ndarray], pairs: list[aerial.Pair], method_args: dict,
           baselines: dict[str, list[np.ndarray]] | None = None) -> tuple[pd.DataFrame, dict]:
    """Calibration of the test probabilities (calibrated by ``method_args``' T and α) and of the network's own
    (T = 1, no prior divided out), and of each baseline's probabilities of the same images (name → (C, H, W)
    per image): a table (rows: before / after / the baselines) of ECE, NLL, accuracy on the 20 % most
    uncertain labelled pixels and on the rest; and the reliability bins of each."""
    after, labels = labelled_pixels(probs, pairs)  # the network's own are recovered from them: no second prediction
    t, alpha = method_args.get("temperature", 1.0), method_args.get("prior_alpha", 0.0)
    before = calibration.temper(after, 1 / t)
    if alpha:
        before = calibration.unweight(before, method_args["class_weights"], -alpha)
    label = f"after (T = {t:.3g}" + (f", prior ÷ w^{alpha:.3g})" if alpha else ")")
    others = {name: labelled_pixels(p, pairs)[0] for name, p in (baselines or {}).items()}
    table, bins = calibration.compare({"before (T = 1" + (", α = 0)" if alpha else ")"): before, label: after, **others},
                                      labels)
    table.index.name = "test probabilities"
    return table, bins


def reliability_figure(bins: dict[str, pd.DataFrame], path, title: str):
    """Reliability diagram: accuracy against mean confidence per bin of each set of probabilities (before and
    after the calibration, a baseline's), with the pixel share per bin below. Bins of under 0.1 % of the pixels
    are open circles off the line: a handful of pixels says little about calibration."""
    import matplotlib.pyplot as plt

    fig, (ax, share) = plt.subplots(2, 1, figsize=(5.2, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], color="0.6", ls="--", lw=1, label="perfectly calibrated")
    width, k = 1 / len(next(iter(bins.values()))), len(bins)  # k bars side by side in each bin
    colours = ("tab:red", "tab:blue", "tab:green", "tab:purple", "tab:orange")
    for i, (name, b) in enumerate(bins.items()):
        colour = colours[i % len(colours)]
        few = b["pixels"] < 1e-3 * b["pixels"].sum()
        ax.plot(b["confidence"][~few], b["accuracy"][~few], "o-", color=colour, label=name, ms=4)
        ax.plot(b["confidence"][few], b["accuracy"][few], "o", mfc="none", color=colour, ms=4)
        share.bar(b["lower"] + width * (i + 0.5) / k, b["pixels"] / b["pixels"].sum(), width / k, color=colour)
    ax.set(ylabel="accuracy (share of pixels right)", xlim=(0, 1), ylim=(0, 1), title=title)
    ax.legend(fontsize=8, loc="upper left")
    share.set(xlabel="confidence (largest class probability)", ylabel="pixel share")
    return save_figure(fig, path)


def uncertainty_panel(probs: np.ndarray) -> np.ndarray:
    """RGB (H, W, 3) uint8 of 1 − max probability of (C, H, W) probabilities: dark sure, bright unsure
    (the colour scale ends at a uniform guess, 1 − 1/C)."""
    import matplotlib

    u = calibration.uncertainty(probs, axis=0) / (1 - 1 / probs.shape[0])
    return (matplotlib.colormaps["magma"](np.clip(u, 0, 1))[..., :3] * 255).astype(np.uint8)
