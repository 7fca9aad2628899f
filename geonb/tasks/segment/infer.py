"""Applying a segmentation model: one image whole or in tiles with a cropped halo, an image of any size
lazily on dask chunks, the class map of `geonb predict` with the class palette and georeferencing, and
with ``--probabilities`` a band per class and the uncertainty (1 − max probability)."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import xarray as xr

from ... import aerial, calibration
from ...errors import GeonbError
from ...io import NETCDF
from ...modelfile import TrainedModel
from ...predict import Predictor, lazy_map


def _check_tile(pred: Predictor, tile: int | None, shape) -> int | None:
    if tile is None:
        return None
    if tile % pred.multiple:
        raise GeonbError(f"tile={tile} is not a multiple of {pred.multiple} (2^depth of this network): tiles must "
                         f"start on its pooling grid. Use e.g. --tile {max(pred.multiple, tile // pred.multiple * pred.multiple)}.")
    if tile > max(shape):
        raise GeonbError(f"tile={tile} is larger than the {shape[0]}×{shape[1]} px image; give a tile of at most "
                         f"{max(shape)} px, or none (one pass).")
    return tile


def segment_image(pred: Predictor, photo: np.ndarray, tile: int | None = None, valid=None, halo: int | None = None,
                  probabilities: bool = False):
    """(H, W, 3) uint8 image of any size → (H, W) uint8 class ids (``aerial.IGNORE`` where ``valid`` is False),
    through the one predictor: tiles of ``tile`` px (a multiple of 2^depth) with the network's halo cropped,
    so tiled = one-shot. With ``probabilities`` also the (C, H, W) class probabilities."""
    photo = np.asarray(photo)
    if photo.ndim != 3 or photo.shape[-1] != 3:
        raise GeonbError(f"the image has shape {photo.shape}; give an RGB image (height, width, 3).")
    tile = _check_tile(pred, tile, photo.shape[:2])
    x = pred.tensor(aerial.to_tensor_range(photo[None], pred.model.norms["photo"]))
    out = pred(x, tile=tile, halo=halo, batch=1)
    classes = out["classes"][0]
    if valid is not None:
        classes = np.where(valid, classes, aerial.IGNORE).astype(np.uint8)
    return (classes, out["mean"][0]) if probabilities else classes


def predict_lazy(model: TrainedModel, photo: xr.DataArray, *, float64: bool = False, probabilities: bool = False):
    """A (y, x, band) RGB DataArray backed by dask (e.g. ``xr.open_zarr(...)``) → lazy (y, x) uint8 class ids,
    chunk by chunk with ``predict.lazy_map`` (the network's halo, cropped): equal to a one-shot prediction,
    memory bounded by the chunk size. Chunks must be multiples of 2^depth along y and x (the last one
    excepted). Compute it with any dask scheduler, e.g. a ``dask.distributed.Client`` given by address.
    With ``probabilities``: a lazy Dataset of the class ids, a probability per class (at the model's
    temperature) and the uncertainty (``with_probabilities``), all from one pass per chunk."""
    import dask.array as dsa

    pred = Predictor(model, float64=float64)
    if photo.ndim != 3 or photo.shape[-1] != 3:
        raise GeonbError(f"photo has dims {dict(photo.sizes)}; give (y, x, band) with 3 bands.")
    data = photo.data if isinstance(photo.data, dsa.Array) else dsa.from_array(photo.values, chunks=(1024, 1024, 3))
    norm = model.norms["photo"]

    def block(b):
        out = pred(pred.tensor(aerial.to_tensor_range(b[None], norm)), tile=None, halo=0, batch=1)
        if not probabilities:
            return out["classes"][0]
        p = out["mean"][0]  # (C, h, w) → (h, w, C + 1): the probabilities, then the uncertainty
        return np.concatenate([p, calibration.uncertainty(p, 0)[None]]).transpose(1, 2, 0).astype(np.float32)

    dtype = np.float32 if probabilities else np.uint8
    out = lazy_map(block, data, halo=pred.halo, multiple=pred.multiple, dtype=dtype,
                   bands=len(class_names(model)) + 1 if probabilities else 0)
    coords = {d: photo[d] for d in photo.dims[:2] if d in photo.coords}
    if not probabilities:
        return xr.DataArray(out, dims=photo.dims[:2], coords=coords, name="class", attrs=class_attrs(model))
    classes = out[..., :-1].argmax(2).astype(np.uint8)  # the argmax of the probabilities, as ``combine`` takes it
    ds = xr.Dataset({"class": (photo.dims[:2], classes, class_attrs(model))}, coords=coords)
    return with_probabilities(ds, model, [out[..., k] for k in range(out.shape[2] - 1)], out[..., -1])


def class_names(model: TrainedModel) -> list[str]:
    return list(model.inputs.get("classes", list(aerial.NAMES)))


def with_probabilities(ds: xr.Dataset, model: TrainedModel, probs, uncertainty) -> xr.Dataset:
    """``ds`` (its ``class`` map) with the class probabilities (one 2-D array per class, numpy or dask) as CF
    variables ``probability_<class>`` (long_name from the class table, units 1) and ``uncertainty`` (1 − the
    largest probability), named by the class map's ``ancillary_variables``."""
    t = model.method_args.get("temperature")
    how = f"temperature scaled, T = {t:.3g} fitted on validation pixels" if t else "not calibrated (T = 1)"
    dims = ds["class"].dims
    new = {"probability_" + re.sub(r"\W+", "_", name): (dims, p, {"long_name": f"probability of {name}", "units": "1",
                                                                    "comment": how})
           for name, p in zip(class_names(model), probs)}
    new["uncertainty"] = (dims, uncertainty, {"long_name": "class uncertainty: 1 - the largest class probability",
                                              "units": "1", "valid_range": np.array([0, 1], np.float32)})
    ds = ds.assign(new)
    ds["class"].attrs["ancillary_variables"] = " ".join(new)
    return ds


def class_attrs(model: TrainedModel) -> dict:
    """CF attributes of a model's class map: ``flag_values`` (uint8, the map's own type), ``flag_meanings``,
    ``flag_colors`` (hex: the palette PNG and GeoTIFF outputs carry)."""
    names = class_names(model)
    return {"long_name": "land-cover class", "flag_values": np.arange(len(names), dtype=np.uint8),
            "flag_meanings": " ".join(names), "flag_colors": " ".join(aerial.class_colours(names)),
            "no_label": aerial.IGNORE}


def _tile(pred: Predictor, photo: np.ndarray) -> int | None:
    """Whole images up to ~1 Mpx in one pass, larger ones in 1024-px-ish tiles (memory)."""
    tile = pred.multiple * max(1, 1024 // pred.multiple)
    return None if max(photo.shape[:2]) <= tile else tile


def predict_file(model: TrainedModel, args):
    """``geonb predict`` for a segment model: an RGB image in (GeoTIFF/PNG/JPEG/NetCDF/zarr), class ids out
    (uint8; 255 where the input has no data) in the format of ``--out`` (.tif/.png, .nc, .zarr), a GeoTIFF's
    georeferencing kept; ``--tile`` px per tile (a multiple of 2^depth; default ~1024). ``--probabilities``:
    also ``with_probabilities`` (NaN where the input has no data) in .nc/.zarr; a .tif then holds them as bands
    (one per class, then the uncertainty; the class map is their argmax) and needs a georeferenced input."""
    if args.probabilities:
        _check_probability_out(args.out, args.input)
    aerial.refuse_lossy(args.out, "a class map")
    photo, tags, valid = aerial.read_photo(args.input, args.var)
    pred = Predictor(model)
    classes, probs = segment_image(pred, photo, tile=args.tile if args.tile else _tile(pred, photo), valid=valid,
                                   probabilities=True)
    h, w = classes.shape
    ds = xr.Dataset({"class": (("y", "x"), classes, class_attrs(model))},
                    coords={"y": np.arange(h), "x": np.arange(w)},
                    attrs={"title": f"geonb {model.arch} classes of {args.input}", "image_variable": "class",
                           "source": f"geonb model {args.model} ({model.arch}, trained on "
                                     f"{model.info.get('trained_on', '?')})"})
    ds.encoding["tiff_tags"] = {**tags, aerial.NODATA_TAG: str(aerial.IGNORE)} if tags else tags
    if args.probabilities:
        probs = np.where(valid, probs, np.nan).astype(np.float32) if valid is not None else probs.astype(np.float32)
        ds = with_probabilities(ds, model, list(probs), calibration.uncertainty(probs, 0))
        if Path(args.out).suffix.lower() in (".tif", ".tiff"):  # one GeoTIFF band per variable, in this order
            bands = [k for k in ds.data_vars if k != "class"]
            ds["bands"] = ds[bands].to_dataarray("band").transpose("y", "x", "band").assign_attrs(
                long_name=tuple(ds[k].attrs["long_name"] for k in bands), units="1")
            ds = ds[["bands"]].drop_vars("band").assign_attrs(ds.attrs, image_variable="bands")
    geo = aerial.georeference(args.input)
    if geo is not None:  # map coordinates and the CF grid mapping (rioxarray's spatial_ref): GeoTIFF/NetCDF/zarr out
        ds = ds.assign_coords(geo)
        for k in ds.data_vars:
            ds[k].attrs["grid_mapping"] = "spatial_ref"
    return ds


def _check_probability_out(out, image) -> None:
    """Probabilities are float bands: NetCDF, zarr, or a GeoTIFF of a georeferenced image (a plain TIFF/PNG/JPEG
    holds 8-bit colours)."""
    suffix = Path(out).suffix.lower()
    if suffix in (*NETCDF, ".zarr") or (suffix in (".tif", ".tiff") and aerial.georeference(image) is not None):
        return
    raise GeonbError(f"{out}: --probabilities writes a float band per class and the uncertainty, which "
                     f"{'a TIFF without a CRS' if suffix in ('.tif', '.tiff') else 'an image file'} cannot hold; "
                     "give --out a .nc or .zarr name (or .tif for a georeferenced GeoTIFF input).")
