"""The ``downscale`` task: super-resolve a coarsened grid (srcnn, rsrcnn, srgan).

Data: a complete high-res grid with projected (x, y in metres) or geographic coordinates:
``jacksboro`` (a real SRTM DEM shipped with matplotlib, the default) or ``antarctica`` (ice
thickness at 5 km, polar stereographic, shipped with geonb), or any NetCDF/zarr grid. Low-res inputs
are block means of the target. Cells at or below ``valid_above`` (ice-free ground) are a mask:
out of the loss and the metrics, kept as they are in the output. The grid is split into
regions — column bands train | val | test, or blocks in a lattice — and no training patch,
halo included, touches a val or test cell. Conditioning layers are the grid's other
variables (antarctica: log10 ``beta``), layers derived from an elevation grid (``surface``,
``velocity``, DeepBedMap-style) and the coordinates (``x``, ``y``).

The package: ``data`` (parameters, regions, baselines), ``sampling`` (training scenes and patches),
``train`` (the loop, the model file, ``geonb train``), ``infer`` (the one inference path: 03-06, the
accessor, ``geonb predict``), ``steps`` (the notebook steps: wiring and reports).
"""
from __future__ import annotations

from .. import Task
from .data import CPU_BF16, PARAMS
from .infer import predict_file
from .steps import data_prep, error_maps, scatter_plots, simulate, transects
from .train import train, train_command, train_flags


TASK = Task(
    "downscale", "super-resolution of coarsened grids (elevation, ice thickness)", PARAMS,
    {"data_prep": data_prep, "simulate": simulate, "train": train, "error_maps": error_maps,
     "scatter_plots": scatter_plots, "transects": transects},
    predict_file=predict_file, predict_options=("cond", "tile", "chunk", "allow_outliers"),
    train_command=train_command, train_flags=train_flags,
    train_params=tuple(p.name for p in PARAMS if p.name not in ("cond", "block", "synthetic", "tune_trials", "tune_epochs", "ddp")),
    cpu_bf16=CPU_BF16,
)
