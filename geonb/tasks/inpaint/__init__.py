"""Gap filling on complete fields with simulated holes (the SST-inpainting seed).

01 cuts the field into patches with a blocked split, 02 lays hole sets on them, 03 trains
``unet`` or ``ctxgan`` with the masked semantic loss, 04-06 score every model trained in
the run directory against biharmonic and local-mean inpainting on the same test holes.

The package: ``infer`` (the one inference path: 04 and ``geonb predict``), ``steps`` (parameters and the notebook steps).
"""
from __future__ import annotations

from .. import Task
from .infer import predict_file
from .steps import PARAMS, data_prep, error_maps, scatter_plots, simulate, train, transects


TASK = Task(
    "inpaint", "gap filling of complete fields with simulated holes (the SST-inpainting seed)", PARAMS,
    {"data_prep": data_prep, "simulate": simulate, "train": train, "error_maps": error_maps,
     "scatter_plots": scatter_plots, "transects": transects},
    step_files={"simulate": ("drawn_mask.nc",)},  # saving a new drawn mask re-runs 02 and what follows
    predict_file=predict_file, predict_options=("mask_var", "allow_outliers"),
    cpu_bf16=True,  # unet, 3 seeds: every hole set within float32's spread (benchmarks/results/bf16_unet.md)
)
