"""Applying an inpainting model: the network's input (pre-filled holes and the observed mask), holes filled
patch by patch, observations kept; the one path of 04 and `geonb predict`."""
from __future__ import annotations

import numpy as np
import torch
import xarray as xr

from ... import baselines
from ...data import load_field
from ...errors import GeonbError
from ...io import open_dataset
from ...modelfile import TrainedModel
from ...predict import Predictor


PREFILLS = {"biharmonic": baselines.biharmonic, "local_mean": baselines.local_mean, "zero": None}


def network_inputs(field_norm: np.ndarray, hidden: np.ndarray, prefill: str) -> np.ndarray:
    """(N, 2, H, W): the field with hidden pixels pre-filled (or zeroed), and the observed mask.

    With a classical ``prefill`` (biharmonic, local_mean) the network only learns a
    correction to it, which it starts from; ``"zero"`` is the seed's input. Land is 0.
    """
    if prefill not in PREFILLS:
        raise GeonbError(f"prefill {prefill!r}? Use one of {', '.join(PREFILLS)}.")
    observed = np.isfinite(field_norm) & ~hidden
    start = np.where(observed, field_norm, np.nan)
    if PREFILLS[prefill] is not None:
        start = np.where(hidden, PREFILLS[prefill](start, hidden), start)
    return np.stack([np.nan_to_num(start), observed], axis=1).astype("float32")


def fill_holes(predictor: Predictor, field: np.ndarray, hidden: np.ndarray) -> np.ndarray:
    """Raw estimate (N, H, W) in field units, NaN on land; any H, W."""
    model = predictor.model
    norm = model.norms["field"]
    x = network_inputs(norm(field), hidden, model.inputs["prefill"])
    out = predictor(torch.from_numpy(x), batch=32)["mean"]
    land = ~np.isfinite(field) & ~hidden
    return np.where(land, np.nan, norm.inverse(out))


def trained_models(run) -> dict[str, Predictor]:
    """A predictor for every model trained in the run directory, by arch name."""
    return {name: Predictor(TrainedModel.load(path, task="inpaint")) for name, path in run.trained().items()}


def composite(field, hidden, filled):
    """Observed pixels kept, filled values only in the holes; land stays NaN."""
    return np.where(hidden, filled, field)


def predict_file(model: TrainedModel, args) -> xr.Dataset:
    """``geonb predict`` with an inpainting model: NaN sea cells (``--mask-var``: 1 = sea) are the holes."""
    if not args.mask_var:
        raise GeonbError("an inpainting model fills NaN cells of the sea: give the land/sea mask with --mask-var "
                         "(1 = sea), so land is not taken for holes.")
    var = args.var or model.inputs["variable"]  # the variable the model was trained on, unless told
    ds = open_dataset(args.input, var)
    field = load_field(ds[var], allow_outliers=args.allow_outliers)
    sea = np.nan_to_num(load_field(ds[args.mask_var].astype("float32")).values[0]) > 0
    if sea.shape != field.shape[1:]:
        raise GeonbError(f"--mask-var {args.mask_var!r} is {sea.shape}; the field's grid is {field.shape[1:]}.")
    values = field.values
    model.check_input("field", values, field.attrs.get("units"), f"{args.input}:{var}")
    hidden = ~np.isfinite(values) & sea
    filled = composite(values, hidden, fill_holes(Predictor(model), values, hidden))
    out = field.copy(data=filled.astype("float32"))
    out.attrs["geonb_fill"] = f"arch={model.arch}, {int(hidden.sum())} cells filled"
    return out.to_dataset(name=field.name)
