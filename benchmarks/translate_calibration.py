"""Class probabilities of a trained translate model's maps, calibrated (issue 28), and its building IoU (issue 27).

Generates the validation location's maps (tile_2, the task's default split) and fits T on them
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
from geonb import aerial, calibration
from geonb.metrics.classification import confusion_scores
from geonb.modelfile import TrainedModel
from geonb.predict import Predictor
from geonb.tasks.translate import PARAMS, translate_image
from geonb.tasks.translate_calibration import (class_probabilities, fit_on_validation, iou_columns,
                                              labelled_pixels, scores)


def generated(model, pairs, patch: int) -> list[aerial.Pair]:
    """Each photo's generated map, as 04 makes it (whole image, tiles of 2 × patch), in the photo's place."""
    pred = Predictor(model)
    return [aerial.Pair(translate_image(pred, p.photo, tile=2 * patch), p.map, p.classes, p.name) for p in pairs]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("out", help="markdown file; the reliability diagram goes beside it")
    ap.add_argument("--model-out", required=True)
    args = ap.parse_args()
    split = aerial.split_locations(*({p.name: p.default for p in PARAMS}[k] for k in ("val_location", "test_location")))
    val_loc, test_loc = ",".join(map(str, split["val"])), split["test"][0]
    print(f"geonb from {geonb.__file__}; torch threads {torch.get_num_threads()}", flush=True)
    model = TrainedModel.load(args.model, task="translate")
    model.method_args.pop("temperature", None)
    patch = int(model.inputs.get("patch", 256))
    t0 = time.perf_counter()
    val = generated(model, [p for loc in split["val"] for p in aerial.load_location(loc)], patch)
    t = fit_on_validation(model, [p.photo for p in val], [p.classes for p in val])
    t_fit = time.perf_counter() - t0
    model.save(args.model_out)
    t0 = time.perf_counter()
    test = generated(model, aerial.load_location(test_loc), patch)
    # 04's grid: the generated maps stand in the photos' place, the classes in a map's first channel
    labelled = [aerial.Pair(p.photo, np.repeat(p.classes[..., None], 3, -1), p.classes, p.name) for p in test]
    maps, classes, _ = aerial.grid_tiles(labelled, patch)
    classes = classes[..., 0]
    out = Path(args.out)
    table, bins, figure = scores(model, maps, classes, out.with_name(out.stem + "_reliability.png"),
                                 f"{model.arch}: reliability on tile_{test_loc} (held out)")
    t_test = time.perf_counter() - t0
    decoded = confusion_scores(classes, aerial.nearest_class(maps), len(aerial.NAMES), ignore_index=aerial.IGNORE)
    classes_table = pd.DataFrame({model.arch: {"class accuracy": decoded["accuracy"],
                                               "balanced accuracy": decoded["balanced accuracy"],
                                               **iou_columns(decoded)}}).T
    rgb, labels = labelled_pixels(maps, classes)  # for reference only: the T the test pixels themselves pick
    oracle = calibration.fit_temperature(class_probabilities(model, rgb, t=1.0), labels)
    head = (f"# {model.arch} ({args.model}): class probabilities on the held-out tile_{test_loc}\n\n"
            f"Temperature fitted on tile_{val_loc} (validation; geonb.calibration.fit_temperature, NLL of "
            f"up to 200 000 labelled pixels): **T = {t:.4g}** in the map's normalised units (a colour σ of "
            f"{np.sqrt(t) * model.norms['map'].std:.3g} levels of 0–255); {t_fit:.0f} s with the validation maps. "
            f"Test: {len(maps)} grid tiles of {patch} px, {len(labels)} labelled pixels ({t_test:.0f} s). Torch "
            f"threads {torch.get_num_threads()}. Reference, not used: the T fitted on the test pixels is {oracle:.4g}.")
    text = "\n\n".join([head, markdown(table), "Decoded classes (nearest colour; unchanged by T):",
                          markdown(classes_table), "Reliability bins (after):",
                          markdown(bins[table.index[1]].round(4).set_index("lower")), f"Figure: `{figure.name}`."])
    out.write_text(text + "\n")
    print(text)

if __name__ == "__main__":
    main()
