"""Class probabilities of a trained translate model's maps, calibrated (issue 28), and its building IoU (issue 27).

Generates the validation location's maps (tile_2, the task's default) and fits T on them
(``translate_calibration.fit_on_validation``, the call 03 makes); then scores the held-out location's maps
(tile_3) on the pixels of 04's regular 256-px tile grid, as 04 does: ECE and NLL before (T = 1) and after,
accuracy on the 20 % most uncertain labelled pixels against the rest, per-class IoU. Writes the table as
markdown and the reliability diagram beside it; the calibrated model goes to ``--model-out``.

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/translate_calibration.py geonb/data/models/pix2pix_dubai.pt \\
        benchmarks/results/translate_calibration.md --model-out /tmp/pix2pix_dubai_T.pt
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from deeplab_segment import markdown

import geonb
from geonb import aerial
from geonb.metrics.classification import confusion_scores
from geonb.modelfile import TrainedModel
from geonb.predict import Predictor
from geonb.tasks.translate import translate_image
from geonb.tasks.translate_calibration import fit_on_validation, iou_columns, scores


def generated(model, pairs, patch: int) -> list[aerial.Pair]:
    """Each photo's generated map, as 04 makes it (whole image, tiles of 2 × patch), in the photo's place."""
    pred = Predictor(model)
    return [aerial.Pair(translate_image(pred, p.photo, tile=2 * patch), p.map, p.classes, p.name) for p in pairs]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("out", help="markdown file; the reliability diagram goes beside it")
    ap.add_argument("--model-out", required=True)
    ap.add_argument("--val-location", type=int, default=2)
    ap.add_argument("--test-location", type=int, default=3)
    args = ap.parse_args()
    print(f"geonb from {geonb.__file__}; torch threads {torch.get_num_threads()}", flush=True)
    model = TrainedModel.load(args.model, task="translate")
    model.method_args.pop("temperature", None)
    patch = int(model.inputs.get("patch", 256))
    t0 = time.perf_counter()
    val = generated(model, aerial.load_location(args.val_location), patch)
    t = fit_on_validation(model, [p.photo for p in val], [p.classes for p in val])
    t_fit = time.perf_counter() - t0
    model.save(args.model_out)
    t0 = time.perf_counter()
    test = generated(model, aerial.load_location(args.test_location), patch)
    # 04's grid: the generated maps stand in the photos' place, the classes in a map's first channel
    labelled = [aerial.Pair(p.photo, np.repeat(p.classes[..., None], 3, -1), p.classes, p.name) for p in test]
    maps, classes, _ = aerial.grid_tiles(labelled, patch)
    classes = classes[..., 0]
    out = Path(args.out)
    table, bins, figure = scores(model, maps, classes, out.with_name(out.stem + "_reliability.png"),
                                 f"{model.arch}: reliability on tile_{args.test_location} (held out)")
    t_test = time.perf_counter() - t0
    decoded = confusion_scores(classes, aerial.nearest_class(maps), len(aerial.NAMES), ignore_index=aerial.IGNORE)
    classes_table = pd.DataFrame({model.arch: {"class accuracy": decoded["accuracy"],
                                               "balanced accuracy": decoded["balanced accuracy"],
                                               **iou_columns(decoded)}}).T
    lines = [f"# {model.arch} ({args.model}): class probabilities on the held-out tile_{args.test_location}", "",
             f"Temperature fitted on tile_{args.val_location} (validation; geonb.calibration.fit_temperature, "
             f"NLL of up to 200 000 labelled pixels): **T = {t:.4g}** in the map's normalised units (a colour σ of "
             f"{np.sqrt(t) * model.norms['map'].std:.3g} levels of 0–255); {t_fit:.0f} s with the validation maps. "
             f"Test: {len(maps)} grid tiles of {patch} px, {int((classes != aerial.IGNORE).sum())} labelled pixels "
             f"({t_test:.0f} s). Torch threads {torch.get_num_threads()}.", "",
             markdown(table), "", "Decoded classes (nearest colour; unchanged by T):", "", markdown(classes_table),
             "", "Reliability bins (after):", "", markdown(bins[table.index[1]].round(4).set_index("lower")),
             "", f"Figure: `{figure.name}`."]
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
