"""A calibrated σ for Antarctic ice-thickness downscaling (issue 28): srcnn ×4 (and srgan ×4) with ``sigma``,
scored on the valid cells of the test blocks (04's σ tables: 1σ/2σ coverage, spread–skill by σ decile).

The mean of a σ model is the network trained without σ (the head is trained afterwards on the frozen
mean, ``geonb.tasks.downscale.sigma``); the script checks that to the bit against the same weights
rebuilt without the head, and writes the tables to ``benchmarks/results/antarctica_sigma.md``.

    python benchmarks/antarctica_sigma.py runs/antarctica_sigma [srcnn] [srgan]
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
COMMON = dict(factor=4, data="antarctica", sigma=True, steps_per_epoch=40, patience=5, seed=0)
PLAN = {"srcnn": dict(epochs=12),
        # benchmarks/antarctica_downscale.py's srgan (4 RRDBs × 32 maps), up to 12 epochs instead of 6 (mean and head
        # both early-stop before); float32: with bf16 autocast (amp auto) its first epoch diverged to NaN
        "srgan": dict(epochs=12, n_blocks=4, nf=32, batch_size=8, amp="off")}


def without_head(model: TrainedModel) -> TrainedModel:
    """The same weights in the network built without σ."""
    return TrainedModel(model.task, model.arch, {k: v for k, v in model.arch_args.items() if k != "sigma"},
                        [{k: v for k, v in w.items() if not k.startswith("sigma.")} for w in model.weights],
                        model.norms, {}, model.inputs, model.info)


def main(run_dir: str, archs: list[str]) -> None:
    lines = []
    for arch in archs or ["srcnn"]:
        run = Run(run_dir, arch=arch, **COMMON, **PLAN[arch])
        start = time.time()
        run.step("train")
        lines.append(f"{arch} ×4: train step {time.time() - start:.0f} s (seconds when resumed from finished checkpoints)")
        print(json.dumps({"run": f"{arch}_x4 sigma", "train_seconds": round(time.time() - start)}), flush=True)
    report = run.step("error_maps")
    low_res = coarsen(_load(run)["target"].values.astype("float64"), 4)
    for arch in archs or ["srcnn"]:
        model = TrainedModel.load(run.model_path(f"{arch}_x4"), task="downscale")
        same = np.array_equal(predict_grid(Predictor(model), low_res), predict_grid(Predictor(without_head(model)), low_res))
        lines.append(f"{arch} ×4: σ scale {model.method_args['sigma_scale']:.4g}; the mean equals the network "
                     f"without the σ head, to the bit: {same}")
    text = report.table_text()
    RESULTS.write_text(f"# ×4 with σ, Antarctic ice thickness, test blocks\n\n`python benchmarks/antarctica_sigma.py "
                       f"{run_dir} {' '.join(archs)}`\n\n" + "\n".join(f"- {line}" for line in lines) + f"\n\n```\n{text}\n```\n")
    print(text, *lines, sep="\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
