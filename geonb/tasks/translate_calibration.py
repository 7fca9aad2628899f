"""Class probabilities of a translated (generated) colour map, temperature scaled (issue 28).

The map is decoded to classes by the nearest class colour; its probabilities come from the same quantity,
each pixel's squared colour distances d²_c to the class colours, measured in the map's normalised units
(the generator's tanh range, ``norms["map"]``: 0–255 ↔ [−1, 1], so d² ≤ 12 and T = 1 underflows nothing):

    p_c ∝ exp(−d²_c / (2T))

a Gaussian of variance T around each class colour. The argmax is the nearest colour whatever T, so class
accuracy is the decoding's. T is fitted on the validation location's pixels by NLL (``calibration``) and
kept in the model file's ``method_args["temperature"]`` (range-checked on load, as segmentation's);
``class_probabilities`` applies it wherever a translate model's probabilities are made (04, ``geonb predict``).
"""
from __future__ import annotations

import numpy as np
import torch
import xarray as xr

from .. import aerial, calibration
from ..modelfile import TrainedModel
from .segment.calibrate import FIT_PIXELS, reliability_figure
from .segment.infer import with_probabilities


def class_probabilities(model: TrainedModel, rgb: np.ndarray, t: float | None = None) -> np.ndarray:
    """(..., 3) uint8 generated map → (..., C) float64 class probabilities at temperature ``t`` (default the
    model's, 1 without one)."""
    t = model.method_args.get("temperature", 1.0) if t is None else t
    d2 = aerial.colour_distances(rgb).astype(np.float64) / model.norms["map"].std ** 2
    return torch.softmax(torch.as_tensor(-d2 / (2 * t)), -1).numpy()


def labelled_pixels(maps, classes) -> tuple[np.ndarray, np.ndarray]:
    """Generated maps (each (..., 3), any sizes) and their true classes → (N, 3) colours and (N,) classes of
    the labelled pixels."""
    keep = [np.asarray(c) != aerial.IGNORE for c in classes]
    return (np.concatenate([np.asarray(m)[k] for m, k in zip(maps, keep)]),
            np.concatenate([np.asarray(c)[k] for c, k in zip(classes, keep)]).astype(np.int64))


def fit_on_validation(model: TrainedModel, maps, classes, seed: int = 0) -> float:
    """Fit T on ``FIT_PIXELS`` labelled pixels (a random sample) of the validation maps the model generated and
    store it in the model's ``method_args`` (saved with it). Returns T."""
    rgb, labels = labelled_pixels(maps, classes)
    pick = np.random.default_rng(seed).choice(len(labels), min(FIT_PIXELS, len(labels)), replace=False)
    t = calibration.fit_temperature(class_probabilities(model, rgb[pick], t=1.0), labels[pick])
    model.method_args["temperature"] = t
    return t


def scores(model: TrainedModel, maps, classes, figure, title: str):
    """Calibration of a model's test probabilities before (T = 1) and after its temperature: ``calibration.compare``'s
    table (ECE, NLL, accuracy of the 20 % most uncertain pixels and of the rest) and its reliability diagram."""
    rgb, labels = labelled_pixels(maps, classes)
    t = model.method_args.get("temperature", 1.0)
    table, bins = calibration.compare({"before (T = 1)": class_probabilities(model, rgb, t=1.0),
                                       f"after (T = {t:.3g})": class_probabilities(model, rgb)}, labels)
    table.index.name = f"{model.arch}: test probabilities"
    return table, bins, reliability_figure(bins, figure, title)


def iou_columns(scores: dict) -> dict[str, float]:
    """``confusion_scores``' mean and per-class IoU as table columns ("IoU building", …)."""
    return {"mean IoU": scores["mean IoU"], **{f"IoU {n}": float(v) for n, v in zip(aerial.NAMES, scores["IoU"])}}


def with_class_probabilities(ds: xr.Dataset, model: TrainedModel, rgb: np.ndarray) -> xr.Dataset:
    """``geonb predict --probabilities``: ``ds`` (the map and its ``class``) with a probability per class and the
    uncertainty (segmentation's ``with_probabilities``)."""
    probs = np.moveaxis(class_probabilities(model, rgb), -1, 0).astype(np.float32)
    return with_probabilities(ds, model, list(probs), calibration.uncertainty(probs, 0))
