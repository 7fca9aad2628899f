"""The segment recipe trained with softer class weights, w^½ (an experiment, not a parameter; issue 28).

Does training with the median-frequency weights square-rooted give what dividing w^½ out of a network
trained with the full weights gives (``segment_prior_shift.py``)? The task's steps 01→04 on the default
split, seed 0, the weights the task computes replaced by their square roots for this process only.

    OMP_NUM_THREADS=2 python benchmarks/segment_soft_weights.py runs/seg_sqrt > benchmarks/results/segment_soft_weights.log
    PYTHONPATH=benchmarks:. python benchmarks/segment_prior_shift.py runs/seg_sqrt/segment/models/unet_seg/model.pt \\
        benchmarks/results/segment_soft_weights.md
"""
from __future__ import annotations

import sys
import time

import numpy as np

import geonb.tasks.segment.steps as steps
from geonb.workflow import Run

full = steps.class_weights
steps.class_weights = lambda pairs, n: np.sqrt(full(pairs, n))  # 01 and 03 both read the weights through here

run = Run(sys.argv[1], arch="unet_seg", seed=0)
for step in ("data_prep", "simulate", "train", "error_maps"):
    t0 = time.perf_counter()
    report = run.step(step)
    print(f"== {step} {time.perf_counter() - t0:.0f} s\n{report.table_text()}", flush=True)
