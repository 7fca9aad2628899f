"""Does test-time augmentation (``-p tta true``: probabilities averaged over the 8 flips and 90° turns) help a
segmentation model? Scores one model file with and without it on the validation location (where the choice
is made) and on the held-out test location, on the labelled pixels, through the one predictor.

    python benchmarks/segment_tta.py MODEL.pt [--val 2] [--test 3] > benchmarks/results/segment_tta.md
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from deeplab_segment import markdown

from geonb import aerial
from geonb.metrics.classification import confusion_scores
from geonb.modelfile import TrainedModel
from geonb.predict import Predictor
from geonb.tasks.segment.infer import _tile, segment_image


def score(model: TrainedModel, location: int, tta: bool) -> dict:
    model.method_args["tta"] = tta
    pred = Predictor(model)
    pairs = aerial.load_location(location, aerial.PARTS)
    start = time.perf_counter()
    preds = [segment_image(pred, p.photo, tile=_tile(pred, p.photo)) for p in pairs]
    seconds = time.perf_counter() - start
    truth = np.concatenate([p.classes.ravel() for p in pairs])
    s = confusion_scores(truth, np.concatenate([c.ravel() for c in preds]), len(aerial.NAMES),
                         ignore_index=aerial.IGNORE)
    return {"overall accuracy": float(s["accuracy"]), "mean IoU": float(s["mean IoU"]),
            **{f"IoU {n}": float(v) for n, v in zip(aerial.NAMES, s["IoU"])}, "predict s": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--val", type=int, default=2)
    parser.add_argument("--test", type=int, default=3)
    args = parser.parse_args()
    model = TrainedModel.load(args.model, task="segment")
    rows = {f"{split} tile_{loc}, tta {tta}": score(model, loc, tta)
            for split, loc in (("val", args.val), ("test", args.test)) for tta in (False, True)}
    print(f"# Test-time augmentation, `{args.model}`\n\n`python benchmarks/segment_tta.py {args.model}`\n")
    print(markdown(pd.DataFrame.from_dict(rows, orient="index")))


if __name__ == "__main__":
    main()
