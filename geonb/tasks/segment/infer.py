"""Applying a segmentation model: one image whole or in tiles with a cropped halo, an image of any size
lazily on dask chunks, the class map of `geonb predict` with the class palette and georeferencing, and
with ``--probabilities`` a band per class and the uncertainty (1 − max probability)."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import xarray as xr

from ... import aerial, calibration, images
from ...errors import GeonbError
from ...io import GEOTIFF, NETCDF
from ...modelfile import TrainedModel
from ...predict import Predictor, lazy_map


def _check_multiple(pred: Predictor, size: int, what: str = "tile") -> int:
    if size % pred.multiple:
        raise GeonbError(f"{what}={size} is not a multiple of {pred.multiple} (2^depth of this network): {what}s must "
                         f"start on its pooling grid. Use e.g. --{what} "
                         f"{max(pred.multiple, size // pred.multiple * pred.multiple)}.")
    return size


def _check_tile(pred: Predictor, tile: int | None, shape) -> int | None:
    if tile is None:
        return None
    _check_multiple(pred, tile)
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
    With ``probabilities``: a lazy Dataset of the class ids, a probability per class (calibrated as the
    model file says) and the uncertainty (``with_probabilities``), all from one pass per chunk."""
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
    t, alpha = model.method_args.get("temperature"), model.method_args.get("prior_alpha")
    how = (f"class weights' prior divided out (p / w^{alpha:.3g}), then " if alpha else "") + (
        f"temperature scaled, T = {t:.3g}, fitted on validation pixels" if t else "not calibrated (T = 1)")
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
    tta = {"comment": "test-time augmentation: class probabilities averaged over the image's 8 flips and 90° turns"}
    return {"long_name": "land-cover class", "flag_values": np.arange(len(names), dtype=np.uint8),
            "flag_meanings": " ".join(names), "flag_colors": " ".join(aerial.class_colours(names)),
            "no_label": aerial.IGNORE, **(tta if model.method_args.get("tta") else {})}


def _side(pred: Predictor) -> int:
    """The default tile or chunk side: ~1024 px, a multiple of the network's pooling (memory)."""
    return pred.multiple * max(1, 1024 // pred.multiple)


def _tile(pred: Predictor, photo: np.ndarray) -> int | None:
    """Whole images up to ~1 Mpx in one pass, larger ones in ``_side`` tiles."""
    tile = _side(pred)
    return None if max(photo.shape[:2]) <= tile else tile


def use_tta(model: TrainedModel, asked: bool) -> None:
    """Test-time augmentation for this prediction when asked, and always for a model trained with ``-p tta true``."""
    model.method_args["tta"] = bool(model.method_args.get("tta")) or asked


def predict_file(model: TrainedModel, args):
    """``geonb predict`` for a segment model: an RGB image in (GeoTIFF/PNG/JPEG/NetCDF/zarr), class ids out
    (uint8; 255 where the input has no data) in the format of ``--out`` (.tif/.png, .nc, .zarr), a GeoTIFF's
    georeferencing kept. NetCDF, zarr and GeoTIFF with a CRS (the formats of large rasters) are read and
    predicted lazily, ``--chunk`` px per dask chunk side (a multiple of 2^depth; default ~1024, or ``--tile``),
    so the writer streams the result chunk by chunk; PNG/JPEG/plain TIFF are decoded whole (PIL) and predicted
    in ``--tile`` px tiles (default ~1024). Both equal a one-shot prediction. ``--probabilities``: also
    ``with_probabilities`` (NaN where the input has no data) in .nc/.zarr; a .tif then holds them as bands
    (one per class, then the uncertainty; the class map is their argmax) and needs a georeferenced input.
    ``--tta``: test-time augmentation for this prediction, as a model trained with ``-p tta true`` always does."""
    use_tta(model, args.tta)
    if args.probabilities:
        check_probability_out(args.out, args.input)
    aerial.refuse_lossy(args.out, "a class map")
    pred = Predictor(model)
    if is_lazy_input(args.input):
        chunk = _check_multiple(pred, args.chunk or args.tile or _side(pred), "chunk" if args.chunk else "tile")
        photo, valid = read_photo_lazy(args.input, args.var, chunk)
        if max(photo.shape[:2]) > chunk and min(photo.shape[:2]) > pred.halo:
            ds = _predicted_lazily(model, photo, valid, args.probabilities)
        else:  # one chunk, or thinner than the overlap dask gives a chunk: small, predicted whole
            ds = _predicted(model, pred, photo.values, valid.compute(), None, args.probabilities)
        tags = {}
    elif args.chunk:
        raise GeonbError(f"--chunk applies to NetCDF, zarr and GeoTIFF (with a CRS) inputs, which are read lazily; "
                         f"{args.input} is decoded whole: drop --chunk (--tile sets its tiles).")
    else:
        photo, tags, valid = aerial.read_photo(args.input, args.var)
        ds = _predicted(model, pred, photo, valid, args.tile, args.probabilities)
    h, w = ds["class"].shape
    ds = ds.assign_coords(y=np.arange(h), x=np.arange(w)).assign_attrs(
        title=f"geonb {model.arch} classes of {args.input}", image_variable="class",
        source=f"geonb model {args.model} ({model.arch}, trained on {model.info.get('trained_on', '?')})")
    ds.encoding["tiff_tags"] = {**tags, aerial.NODATA_TAG: str(aerial.IGNORE)} if tags else tags
    return as_written(ds, args.out, args.input, args.probabilities)


def as_written(ds: xr.Dataset, out, image, probabilities: bool) -> xr.Dataset:
    """``geonb predict``'s Dataset as ``out`` holds it (segment and translate models): to a GeoTIFF with
    ``probabilities``, their bands alone — one per class, then the uncertainty, as the class map's
    ``ancillary_variables`` names them; on the map coordinates and CF grid mapping (rioxarray's spatial_ref)
    of a georeferenced ``image``."""
    if probabilities and Path(out).suffix.lower() in (".tif", ".tiff"):
        names = ds["class"].attrs["ancillary_variables"].split()
        bands = ds[names].to_dataarray("band").transpose("y", "x", "band").drop_vars("band")
        ds = xr.Dataset({"bands": bands.assign_attrs(long_name=tuple(ds[k].attrs["long_name"] for k in names),
                                                     units="1")}, attrs={**ds.attrs, "image_variable": "bands"})
    geo = aerial.georeference(image)
    if geo is not None:
        ds = ds.assign_coords(geo)
        for k in ds.data_vars:
            ds[k].attrs["grid_mapping"] = "spatial_ref"
    return ds


def _predicted(model: TrainedModel, pred: Predictor, photo: np.ndarray, valid, tile, probabilities: bool):
    """A photo in memory → the Dataset of ``predict_file`` (``tile``: None for ``_tile``'s)."""
    classes, probs = segment_image(pred, photo, tile=tile or _tile(pred, photo), valid=valid, probabilities=True)
    ds = xr.Dataset({"class": (("y", "x"), classes, class_attrs(model))})
    if probabilities:
        probs = np.where(valid, probs, np.nan).astype(np.float32) if valid is not None else probs.astype(np.float32)
        ds = with_probabilities(ds, model, list(probs), calibration.uncertainty(probs, 0))
    return ds


def _predicted_lazily(model: TrainedModel, photo: xr.DataArray, valid, probabilities: bool) -> xr.Dataset:
    """``predict_lazy`` with the no-data pixels of ``valid`` (lazy, y × x) as ``aerial.IGNORE`` / NaN."""
    out = predict_lazy(model, photo, probabilities=probabilities)
    ds = out if probabilities else out.to_dataset()
    valid = xr.DataArray(valid, dims=ds["class"].dims)
    for k in ds.data_vars:
        ds[k] = ds[k].where(valid, aerial.IGNORE).astype(np.uint8) if k == "class" else ds[k].where(valid)
    return ds


def is_lazy_input(path) -> bool:
    """NetCDF/zarr, or a GeoTIFF with a CRS: read chunk by chunk (``read_photo_lazy``)."""
    p = Path(path)
    return aerial.is_gridded(p) or (p.suffix.lower() in GEOTIFF and aerial.georeference(p) is not None)


def read_photo_lazy(path, var: str, chunk: int):
    """``aerial.read_photo`` of a NetCDF/zarr variable or a GeoTIFF with a CRS, lazily: a dask-backed
    (y, x, band) uint8 DataArray in ``chunk``² px chunks, and where it has data (lazy (y, x) bool: NaN, a
    GeoTIFF's nodata — all three bands for 8-bit, any band for 16-bit/float images, as ``read_photo`` and
    ``images.tiff_bands`` — or alpha 0)."""
    import dask.array as dsa

    p = Path(path)
    if aerial.is_gridded(p):
        da = aerial.photo_variable(p, var, lazy=True)
        data, what, nodata, alpha = da.data, f"{path}:{da.name}", None, None
    else:
        import rioxarray

        da = rioxarray.open_rasterio(p, chunks={"band": -1, "y": chunk, "x": chunk})
        images.check_bands(p, da.sizes["band"])
        data, what, nodata = da.data.transpose(1, 2, 0), str(p), da.rio.nodata
        alpha = data[..., 3] > 0 if data.shape[2] == 4 else None
        data = data[..., :3] if data.shape[2] > 1 else dsa.repeat(data, 3, axis=2)
    data = data.rechunk((chunk, chunk, -1))
    valid = dsa.isfinite(data).all(-1) if data.dtype.kind == "f" else dsa.ones(data.shape[:2], bool, chunks=chunk)
    if nodata is not None:
        hit = data == nodata
        # dask's & and ~ on bool arrays give NotImplemented here: its ufuncs
        valid = dsa.logical_and(valid, dsa.logical_not(hit.all(-1) if data.dtype == np.uint8 else hit.any(-1)))
    if alpha is not None:
        valid = dsa.logical_and(valid, alpha.rechunk(chunk))
    if data.dtype != np.uint8:  # no-data values out of the scaled range, as tiff_bands
        data = dsa.where(valid[..., None], data, 0)
    return xr.DataArray(images.to_uint8(data, what), dims=("y", "x", "band")), valid


def check_probability_out(out, image) -> None:
    """Probabilities are float bands: NetCDF, zarr, or a GeoTIFF of a georeferenced image (a plain TIFF/PNG/JPEG
    holds 8-bit colours)."""
    suffix = Path(out).suffix.lower()
    if suffix in (*NETCDF, ".zarr") or (suffix in (".tif", ".tiff") and aerial.georeference(image) is not None):
        return
    raise GeonbError(f"{out}: --probabilities writes a float band per class and the uncertainty, which "
                     f"{'a TIFF without a CRS' if suffix in ('.tif', '.tiff') else 'an image file'} cannot hold; "
                     "give --out a .nc or .zarr name (or .tif for a georeferenced GeoTIFF input).")
