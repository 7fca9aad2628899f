"""Calibration of a trained segment model's class probabilities on the held-out location (issue 28).

Fits the calibration on the validation location's images (``calibrate.fit_on_validation``, the same call as
03: the share α of the class weights' prior divided out and the temperature, NLL of 200 000 labelled pixels)
and scores the test location's probabilities before (the network's own) and after (``calibrate.scores``, as
04): ECE (15 bins, torchmetrics), NLL, accuracy on the 20 % most uncertain labelled pixels against the rest;
beside them the random forest's class probabilities (04's classical baseline, fitted as 04 fits it: seed 0,
200 000 training pixels), and for reference a temperature fitted on the forest's validation probabilities.
Writes the table as markdown, the reliability diagram, and the first test images' errors beside their
uncertainty; the calibrated model file goes to ``--model-out`` (not committed). ``--tta`` predicts with
test-time augmentation, as ``geonb predict --tta``.

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/segment_calibration.py /work/keep/deeplab_tile3.pt \\
        benchmarks/results/segment_calibration.md --model-out /tmp/deeplab_tile3_T.pt
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from deeplab_segment import markdown

import geonb
from geonb import Run, aerial, calibration, ganplots
from geonb.modelfile import TrainedModel, resolve
from geonb.outputs import refuse_input_as_output
from geonb.predict import Predictor
from geonb.tasks.segment.calibrate import (fit_alphas, fit_on_validation, labelled_pixels, probabilities,
                                           reliability_figure, scores, uncertainty_panel)
from geonb.tasks.segment.infer import use_tta
from geonb.tasks.segment.steps import FOREST_PROBABILITIES, _baselines, error_panel


def forest_probabilities(model, val_location: int, test_location: int, val, test) -> tuple[list, list]:
    """04's random forest (its run's defaults, seed 0) → its class probabilities on the validation and test images."""
    with tempfile.TemporaryDirectory() as folder:
        run = Run(folder, arch=model.arch, seed=0, val_location=val_location, test_location=test_location)
        forest, _ = _baselines(run, len(model.inputs["classes"]))
    return [forest(p.photo) for p in val], [forest(p.photo) for p in test]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("out", help="markdown file; the figures go beside it")
    ap.add_argument("--model-out", required=True)
    ap.add_argument("--val-location", type=int, default=2)
    ap.add_argument("--test-location", type=int, default=3)
    ap.add_argument("--examples", type=int, default=2)
    ap.add_argument("--tta", action="store_true", help="test-time augmentation, as geonb predict --tta")
    args = ap.parse_args()
    print(f"geonb from {geonb.__file__}; torch threads {torch.get_num_threads()}", flush=True)
    # the calibrated copy never replaces the file it read (a shipped name resolved to its file)
    refuse_input_as_output(args.model_out, [resolve(args.model)], "--model-out")
    model = TrainedModel.load(args.model, task="segment")
    use_tta(model, args.tta)
    val = aerial.load_location(args.val_location)
    test = aerial.load_location(args.test_location)
    t0 = time.perf_counter()
    t, alpha = fit_on_validation(model, val)
    t_fit = time.perf_counter() - t0
    model.save(args.model_out)
    t0 = time.perf_counter()
    probs = probabilities(Predictor(model), test)
    t_test = time.perf_counter() - t0
    t0 = time.perf_counter()
    forest_val, forest_test = forest_probabilities(model, args.val_location, args.test_location, val, test)
    t_forest = time.perf_counter() - t0
    table, bins = scores(probs, test, model.method_args, {FOREST_PROBABILITIES: forest_test})
    p, y = labelled_pixels(probs, test)  # for reference only: the T the test pixels themselves would pick, other binnings
    (_, t_fv, _, _), = fit_alphas(*labelled_pixels(forest_val, val), None)  # the forest's T, fitted as 03 fits one
    ft, _ = labelled_pixels(forest_test, test)
    forest_t = {"ECE": calibration.expected_calibration_error(calibration.temper(ft, t_fv), y),
                "zero": float((ft[np.arange(len(y)), y] == 0).mean())}
    divided = calibration.temper(p, 1 / t)  # the prior divided out, T = 1
    oracle = calibration.fit_temperature(divided, y)
    own = calibration.unweight(divided, model.method_args["class_weights"], -alpha) if alpha else divided
    bins_ece = {n: [calibration.expected_calibration_error(q, y, n_bins=n) for q in (own, p)] for n in (10, 15, 20)}
    out = Path(args.out)
    diagram = reliability_figure(bins, out.with_name(out.stem + "_reliability.png"),
                                 f"{model.arch}: reliability on tile_{args.test_location} (held out)")
    colours = aerial.scheme_colours(model.inputs.get("scheme", "all"))
    rows = [(p.name, [("image", p.photo), ("labels", aerial.colourise(p.classes, colours)),
                      ("prediction", aerial.colourise(q.argmax(0), colours)),
                      ("errors", error_panel(p.classes, q.argmax(0))), ("uncertainty", uncertainty_panel(q))])
            for p, q in list(zip(test, probs))[:args.examples]]
    maps = ganplots.triptychs(rows, out.with_name(out.stem + "_maps.png"),
                              legend=aerial.legend(model.inputs["classes"], colours, errors=True),
                              title="errors (red) beside uncertainty (1 − max probability: bright unsure)")
    n_labelled = sum(int((p.classes != aerial.IGNORE).sum()) for p in test)
    tta = ", test-time augmentation" if model.method_args["tta"] else ""
    lines = [f"# {model.arch} ({args.model}{tta}): calibration on the held-out tile_{args.test_location}", "",
             f"Calibration fitted on tile_{args.val_location} (validation; 200 000 labelled pixels, NLL): "
             f"**T = {t:.3f}**" + (f", the class weights' prior divided out with **α = {alpha:g}**" if alpha else "")
             + f" ({t_fit:.0f} s with the validation predictions). Test: {len(test)} images, "
             f"{n_labelled} labelled pixels ({t_test:.0f} s). The random forest fitted as 04 fits it (seed 0); its class "
             "probabilities are the mean over its 50 trees of their leaf's class shares "
             f"({t_forest:.0f} s to fit it and predict both locations). Torch threads {torch.get_num_threads()}.", "",
             markdown(table), "",
             f"Reference, not used: the T fitted on the test pixels themselves is {oracle:.3f}. ECE before → after "
             "with other binnings: " + "; ".join(f"{n} bins {a:.4f} → {b:.4f}" for n, (a, b) in bins_ece.items()) + ". "
             f"The forest with a temperature fitted on its tile_{args.val_location} probabilities (T = {t_fv:.3f}): "
             f"ECE {forest_t['ECE']:.4f}; {forest_t['zero']:.2%} of the test pixels get probability 0 for their class "
             "(no tree's leaf holds a training pixel of it: log-probability −∞, its NLL that of the 1e-300 floor), "
             "which a temperature cannot mend.",
             "", "Reliability bins (after):", "", markdown(bins[table.index[1]].round(4).set_index("lower")),
             "", f"Figures: `{diagram.name}`, `{maps.name}`."]
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
