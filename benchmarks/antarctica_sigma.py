"""A calibrated σ for Antarctic ice-thickness downscaling (issue 28): srcnn ×4 with ``sigma``, scored on
the valid cells of the test blocks (04's σ tables: 1σ/2σ coverage, spread–skill by σ decile).

The mean of a σ model is the network trained without σ (the head is trained afterwards on the frozen
mean, ``geonb.tasks.downscale.sigma``); the script checks that to the bit against the same weights
rebuilt without the head, and writes the tables to ``benchmarks/results/antarctica_sigma.md``.

    python benchmarks/antarctica_sigma.py runs/antarctica_sigma [epochs]
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from geonb.modelfile import TrainedModel
from geonb.predict import Predictor
from geonb.resample import coarsen
from geonb.tasks.downscale.data import _load
from geonb.tasks.downscale.infer import predict_grid
from geonb.workflow import Run

RESULTS = Path(__file__).parent / "results" / "antarctica_sigma.md"


def main(run_dir: str, epochs: int = 12) -> None:
    run = Run(run_dir, arch="srcnn", factor=4, data="antarctica", sigma=True, epochs=epochs, steps_per_epoch=40,
              patience=5, seed=0)
    start = time.time()
    run.step("train")
    print(json.dumps({"run": "srcnn_x4 sigma", "train_seconds": round(time.time() - start)}), flush=True)
    report = run.step("error_maps")
    # the mean without the head: the same weights in the network built without σ
    model = TrainedModel.load(run.model_path("srcnn_x4"), task="downscale")
    plain = TrainedModel(model.task, model.arch, {k: v for k, v in model.arch_args.items() if k != "sigma"},
                         [{k: v for k, v in w.items() if not k.startswith("sigma.")} for w in model.weights],
                         model.norms, {}, model.inputs, model.info)
    low_res = coarsen(_load(run)["target"].values.astype("float64"), 4)
    same = np.array_equal(predict_grid(Predictor(model), low_res), predict_grid(Predictor(plain), low_res))
    text = report.table_text()
    RESULTS.write_text(f"# srcnn ×4 with σ, Antarctic ice thickness, test blocks\n\n`python benchmarks/antarctica_sigma.py "
                       f"{run_dir} {epochs}` (train {time.time() - start:.0f} s incl. 04)\n\nmean equals the network "
                       f"without the σ head, to the bit: {same}\n\n{text}\n")
    print(text, f"\nmean equals the no-σ network: {same}")


if __name__ == "__main__":
    main(sys.argv[1], *map(int, sys.argv[2:]))
