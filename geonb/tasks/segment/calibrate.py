"""The segment task's class probabilities: temperature scaling fitted on the validation images (03), and
04's calibration on the test images (ECE and NLL before/after, accuracy of the most uncertain pixels,
the reliability diagram, uncertainty maps)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ... import aerial, calibration
from ...plots import save_figure
from ...predict import Predictor
from .infer import _tile, segment_image

FIT_PIXELS = 200_000  # labelled validation pixels T is fitted on (a random sample: the NLL's mean settles long before)


def probabilities(pred: Predictor, pairs: list[aerial.Pair]) -> list[np.ndarray]:
    """(C, H, W) class probabilities of each image, whole, at the model's temperature."""
    return [segment_image(pred, p.photo, tile=_tile(pred, p.photo), probabilities=True)[1] for p in pairs]


def pixels(probs: list[np.ndarray], pairs: list[aerial.Pair]) -> tuple[np.ndarray, np.ndarray]:
    """(N, C) probabilities and (N,) classes of every pixel of the images."""
    return (np.concatenate([p.reshape(p.shape[0], -1).T for p in probs]),
            np.concatenate([p.classes.ravel() for p in pairs]))


def fit_on_validation(model, pairs: list[aerial.Pair], seed: int = 0) -> float:
    """Fit the temperature on the validation images (NLL of ``FIT_PIXELS`` labelled pixels) and store it in the
    model's ``method_args`` (saved with it; the predictor applies it). Returns T."""
    model.method_args.pop("temperature", None)  # fitted on the network's own probabilities
    probs, labels = pixels(probabilities(Predictor(model), pairs), pairs)
    labelled = np.flatnonzero(labels != aerial.IGNORE)
    pick = np.random.default_rng(seed).choice(labelled, min(FIT_PIXELS, len(labelled)), replace=False)
    t = calibration.fit_temperature(probs[pick], labels[pick])
    model.method_args["temperature"] = t
    return t


def scores(probs: list[np.ndarray], pairs: list[aerial.Pair], t: float) -> tuple[pd.DataFrame, dict]:
    """Calibration of the test probabilities (at temperature ``t``) and of the network's own (T = 1):
    a table (rows: before / after) of ECE, NLL, accuracy on the 20 % most uncertain labelled pixels and on
    the rest; and the reliability bins of each."""
    after, labels = pixels(probs, pairs)  # the network's own are p_T^T renormalised: no second prediction
    keep = labels != aerial.IGNORE
    after, labels = after[keep], labels[keep]
    table, bins = calibration.compare({"before (T = 1)": calibration.temper(after, 1 / t),
                                       f"after (T = {t:.3g})": after}, labels)
    table.index.name = "test probabilities"
    return table, bins


def reliability_figure(bins: dict[str, pd.DataFrame], path, title: str):
    """Reliability diagram: accuracy against mean confidence per bin, before and after temperature scaling,
    with the pixel share per bin below. Bins of under 0.1 % of the pixels are open circles off the line: a
    handful of pixels says little about calibration."""
    import matplotlib.pyplot as plt

    fig, (ax, share) = plt.subplots(2, 1, figsize=(5.2, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], color="0.6", ls="--", lw=1, label="perfectly calibrated")
    width = 1 / len(next(iter(bins.values())))
    for (name, b), offset, colour in zip(bins.items(), (-0.25, 0.25), ("tab:red", "tab:blue")):
        few = b["pixels"] < 1e-3 * b["pixels"].sum()
        ax.plot(b["confidence"][~few], b["accuracy"][~few], "o-", color=colour, label=name, ms=4)
        ax.plot(b["confidence"][few], b["accuracy"][few], "o", mfc="none", color=colour, ms=4)
        share.bar(b["lower"] + width * (0.5 + offset / 2), b["pixels"] / b["pixels"].sum(), width / 2, color=colour)
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
