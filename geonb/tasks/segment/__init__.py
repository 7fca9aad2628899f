"""The ``segment`` task: a land-cover class for every pixel of an aerial image
(segnet, fcn, unet_seg, deeplabv3plus).

Data: the Dubai aerial images and their hand-drawn maps (``geonb.aerial``: 7 locations × 9 parts),
decoded through the one class table; unlabeled grey and black pixels are ``aerial.IGNORE``, left out
of the loss (``ignore_index``) and of every metric. Whole locations go to train / val / test. Or one
image (``data``: GeoTIFF/PNG/JPEG/NetCDF/zarr) with a label raster of the same shape (``labels``:
class ids or class colours), split into row bands: top 60 % train, 20 % val, bottom 20 % test.
``scheme`` picks the five classes or one class against the rest (the source work's forest vs rest).

03 trains ``arch`` on random ``patch``×``patch`` crops of the training images (flips, 90° turns),
cross-entropy with ``ignore_index`` and median-frequency class weights (SegNet's balancing).
04 predicts each test image whole through the one predictor (tiles with a cropped halo) and scores
every model of the run beside per-pixel baselines on the same pixels (a random forest and the
nearest class mean on RGB, the majority class) with torchmetrics: confusion matrix (counts and
row-normalised), per-class precision, recall and IoU, overall accuracy, mean IoU. 03 fits the calibration on
the validation images (how much of the class weights' prior to divide out, and a temperature; kept in the model file); 04 scores the calibration of the best model's probabilities
beside the random forest's (ECE, NLL before/after, the most uncertain pixels' accuracy; reliability diagram,
uncertainty maps).
``predict_lazy`` runs a model over an image of any size chunk by chunk with dask (out of core), with
``probabilities`` also a band per class and the uncertainty; ``geonb predict`` runs it on NetCDF, zarr and
GeoTIFF inputs (``infer.read_photo_lazy``), so the writers stream the result.

The package: ``data`` (parameters, image/label pairs, class weights), ``infer`` (the one inference path:
04, the accessor, ``geonb predict``), ``calibrate`` (the calibration fit, 04's calibration), ``steps`` (the
notebook steps: wiring and reports).
"""
from __future__ import annotations

from .. import Task
from .data import PARAMS
from .infer import predict_file
from .steps import data_prep, error_maps, scatter_plots, simulate, train, transects


TASK = Task(
    "segment", "aerial image → land-cover class per pixel (Dubai aerial imagery, or any image + labels)", PARAMS,
    {"data_prep": data_prep, "simulate": simulate, "train": train, "error_maps": error_maps,
     "scatter_plots": scatter_plots, "transects": transects},
    predict_file=predict_file, predict_options=("tile", "chunk", "probabilities", "tta"),
)
