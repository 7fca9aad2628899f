"""Gap filling of real cloudy cubes, self-supervised (``dincae``), against DINEOF, biharmonic, the local
mean and the seed U-Net: the main job.

01 loads the cube (default: the Alboran AVHRR SST, 10 days, real clouds); 02 lays the hole sets over
observed pixels — real cloud shapes of other days, and the seed's one 10×10 square, many 6×6 and varied
squares per 64×64 tile and day — plus the validation points; 03 trains dincae on the cube without any of
those points, plus the comparisons (dineof, unet trained the same masked way); 04-06 score every method
on exactly the same hidden points of each set, each set filled with only its own points hidden: RMSE
per set, maps, σ map, calibration, scatter with error bars, RMSE by distance to the nearest
observation, transects.

The package: ``data`` (parameters, the cube, hole sets), ``infer`` (every method's predictions; ``geonb predict``),
``steps`` (the notebook steps: wiring and reports).
"""
from __future__ import annotations

from ...cloudmodel import CPU_BF16
from ...draw import MASK_FILE
from .. import Task
from .data import PARAMS
from .infer import predict_file
from .steps import data_prep, error_maps, scatter_plots, simulate, train, transects


TASK = Task(
    "clouds", "gap filling of real cloudy cubes, self-supervised, with error bars", PARAMS,
    {"data_prep": data_prep, "simulate": simulate, "train": train, "error_maps": error_maps,
     "scatter_plots": scatter_plots, "transects": transects},
    step_files={"simulate": (MASK_FILE,)},  # saving a new drawn mask re-runs 02 and what follows
    predict_file=predict_file, predict_options=("mask_var", "allow_outliers"),
    cpu_bf16=CPU_BF16,  # the cloud model's verdict (geonb.cloudmodel), which `geonb fill` trains with too
)
