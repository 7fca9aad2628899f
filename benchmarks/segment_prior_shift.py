"""How much of a segment model's miscalibration is its class weights' prior? (issue 28, acceptance 2)

Median-frequency weights w_c make a network's probabilities lean to the rare classes: at the optimum of the
weighted cross-entropy p_w(c|x) ∝ w_c p(c|x). This divides the weights back out, p_α ∝ p_w / w^α for
``calibrate.ALPHAS`` (0: temperature only; 1: the whole prior removed), fits the temperature on the
validation location for each (``calibrate.fit_alphas``, the fits 03 chooses among) and scores
the validation and test locations' calibrated probabilities: ECE (15 bins, torchmetrics), NLL, and the
overall accuracy and (per-class) IoU of their argmax (α > 0 moves the class map towards the common classes).
03's rule (``calibrate.fit_on_validation``) keeps the α of least validation NLL among those whose validation
mean IoU is no lower than α = 0's.
The T each location's own pixels would pick is given for reference only (never used). ``--label-shift``
adds Saerens et al.'s (2002) EM re-estimation of the test location's class priors from its unlabelled
pixels, on top of each α.

    PYTHONPATH=benchmarks:. python benchmarks/segment_prior_shift.py geonb/data/models/unet_seg_dubai.pt \\
        benchmarks/results/segment_prior_shift.md --label-shift
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from deeplab_segment import markdown

from geonb import aerial, calibration
from geonb.metrics.classification import confusion_scores
from geonb.modelfile import TrainedModel
from geonb.predict import Predictor
from geonb.tasks.segment.calibrate import fit_alphas, labelled_pixels, probabilities


def label_shift(probs: np.ndarray, source: np.ndarray, tol: float = 1e-6, iters: int = 200) -> np.ndarray:
    """Saerens et al.'s EM: the target priors π that make the mean of p·π/source equal π; returns those
    adjusted probabilities."""
    pi = source
    for _ in range(iters):
        adjusted = probs * (pi / source)
        adjusted /= adjusted.sum(1, keepdims=True)
        new = adjusted.mean(0)
        if np.abs(new - pi).max() < tol:
            break
        pi = new
    return adjusted


def row(probs: np.ndarray, labels: np.ndarray, names: list[str]) -> dict:
    s = confusion_scores(labels, probs.argmax(1), len(names))
    return {"ECE": calibration.expected_calibration_error(probs, labels),
            "NLL": calibration.nll(probs, labels), "accuracy": s["accuracy"], "mean IoU": s["mean IoU"],
            **{f"IoU {c}": float(v) for c, v in zip(names, s["IoU"])}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("out", help="markdown file")
    ap.add_argument("--val-location", type=int, default=2)
    ap.add_argument("--test-location", type=int, default=3)
    ap.add_argument("--label-shift", action="store_true", help="also EM-adapt the test priors (Saerens et al.)")
    args = ap.parse_args()
    model = TrainedModel.load(args.model, task="segment")
    for key in ("temperature", "prior_alpha", "class_weights"):  # the network's own probabilities: any file's
                                                                     # stored calibration is set aside
        model.method_args.pop(key, None)
    weights = np.asarray(model.info["class_weights"], dtype=np.float64)
    names = model.inputs["classes"]
    pred = Predictor(model)
    t0 = time.perf_counter()
    data = {}
    for role, loc in (("val", args.val_location), ("test", args.test_location)):
        pairs = aerial.load_location(loc)
        p, y = labelled_pixels(probabilities(pred, pairs), pairs)
        data[role] = (p.astype(np.float64), y.astype(np.int64))
    t_pred = time.perf_counter() - t0
    pv, yv = data["val"]
    rows = {}
    for a, t, _, _ in fit_alphas(pv, yv, weights):  # 03's fits, one per α
        for role, (p, y) in data.items():
            q = calibration.temper(calibration.unweight(p, weights, a), t)
            own = calibration.fit_temperature(calibration.unweight(p[::20], weights, a), y[::20])
            rows[(a, round(t, 3), role, "")] = {**row(q, y, names), "own T": own}
            if args.label_shift and role == "test":
                source = calibration.temper(calibration.unweight(pv, weights, a), t).mean(0)
                rows[(a, round(t, 3), role, "EM priors")] = row(label_shift(q, source), y, names)
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index = [f"α {a} · T {t} · {role}{' · ' + extra if extra else ''}" for a, t, role, extra in table.index]
    table.index.name = "p / w^α, T from val"
    lines = [f"# {model.arch} ({args.model}, its stored calibration set aside): the class weights' prior divided "
             "out, then temperature scaling", "",
             f"Class weights w ({', '.join(names)}): {', '.join(f'{w:.3f}' for w in weights)}. Validation "
             f"tile_{args.val_location}, test tile_{args.test_location}; labelled pixels {len(yv)} / "
             f"{len(data['test'][1])}; predictions {t_pred:.0f} s, torch threads {torch.get_num_threads()}. "
             "ECE, NLL, accuracy and IoUs of the calibrated probabilities and their argmax; *own T*: the T the "
             "location's own pixels would pick (every 20th), for reference only.", "", markdown(table)]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
