"""``da.geonb``: geonb's tasks as xarray methods, registered on ``import geonb``.

- ``da.geonb.fill(arch="dincae", epochs=…)`` → Dataset: ``da`` filled and ``<name>_error`` (σ), linked
  by ``ancillary_variables`` (``geonb.fill``; the whole cube is read: training needs every day).
- ``da.geonb.downscale(model=…)`` → the (y, x) grid × factor, its CRS as a grid-mapping coordinate.
- ``da.geonb.segment(model=…)`` → (y, x) uint8 class ids with ``flag_values``/``flag_meanings``; lazy,
  chunk by chunk, when ``da`` is dask-backed (``tasks.segment.infer.predict_lazy``); with
  ``probabilities=True`` a Dataset that adds a probability per class and the uncertainty.

Each result keeps the input's coordinates and gets a timestamped ``history`` line.
"""
from __future__ import annotations

import xarray as xr

from .errors import GeonbError
from .version import __version__


def _load(model, task: str):
    from .modelfile import TrainedModel

    if isinstance(model, TrainedModel):
        if model.task != task:
            raise GeonbError(f"this is a {model.task} model; .geonb.{task}() needs a {task} model.")
        return model, f"a {model.arch} model"
    return TrainedModel.load(model, task=task), f"model {model}"


@xr.register_dataarray_accessor("geonb")
class GeonbAccessor:
    def __init__(self, da: xr.DataArray):
        self._da = da

    def _history(self, attrs: dict, call: str) -> dict:
        from .io import add_history  # here: importing xarray registers this accessor, and io imports xarray

        return add_history(attrs, f"geonb {__version__}: {self._da.name or 'DataArray'}.geonb.{call}")

    def fill(self, arch: str = "dincae", **options) -> xr.Dataset:
        """Fill the missing sea values (dims time/lat/lon in any naming) with ``arch`` (dincae, dineof,
        unet); ``options`` as ``geonb.fill`` (``epochs``, ``mask``, ``model``, ``quick``, ``seed``, …)."""
        from .filling import fill

        ds = fill(self._da, arch=arch, **options)
        self._history(ds.attrs, f"fill(arch={arch!r})")
        return ds

    def downscale(self, model, cond=(), tile: int | str = "auto") -> xr.DataArray:
        """Super-resolve this low-res (y, x) grid with a downscaling model (path, shipped name or ``TrainedModel``);
        ``cond``: the model's conditioning grids as ``geonb predict --cond`` takes them (``x``, ``y``,
        ``FILE:VAR[@r]``); ``tile``: low-res cells per tile (the halo is added and cropped; ``"auto"``:
        sized from the free memory). Lazy when the
        grid is dask-backed: chunk by chunk in its own chunks (each with the network's halo). A model trained
        with ``sigma`` adds its calibrated σ as the coordinate ``<name>_error`` (the result's CF
        ``ancillary_variables``), lazy alike."""
        from .data import load_grid
        from .predict import Predictor
        from .tasks.downscale.infer import (
            check_inputs, conditioning, has_sigma, predict_grid, predict_lazy, super_resolved, unpacked)

        model, source = _load(model, "downscale")
        grid = load_grid(self._da)
        low_res, conds, predictor = grid[grid.attrs["target"]], conditioning(model, grid, cond), Predictor(model)
        check_inputs(model, low_res, conds, f"the DataArray {self._da.name!r}")
        sigma = has_sigma(model)
        if low_res.chunks:
            hr, error = unpacked(predict_lazy(predictor, low_res.data, conds, chunk=None, tile=tile, sigma=sigma), sigma)
        else:
            hr = predict_grid(predictor, low_res.values.astype("float64"), conds, tile=tile, sigma=sigma)
            hr, error = hr if sigma else (hr, None)
        out = super_resolved(model, grid, hr, error, f"the DataArray {self._da.name!r}", source)
        da = out[grid.attrs["target"]]
        if sigma:
            da = da.assign_coords({f"{da.name}_error": out[f"{da.name}_error"]})
        da.attrs.update({k: v for k, v in out.attrs.items() if k != "history"})
        self._history(da.attrs, f"downscale(model={source!r})")
        return da

    def segment(self, model, probabilities: bool = False):
        """Classify every pixel of this RGB image — dims (y, x, band) or rioxarray's (band, y, x) — with a
        segment model (path, shipped name or ``TrainedModel``): uint8 class ids, lazily when the image is
        dask-backed (chunks: multiples of 2^depth along y and x). ``probabilities``: a Dataset of the class ids,
        a calibrated probability per class and the uncertainty (1 − max probability)."""
        from .tasks.segment.infer import predict_lazy

        photo = self._da
        bands = [d for d in photo.dims if photo.sizes[d] == 3]
        if photo.ndim != 3 or len(bands) != 1:
            raise GeonbError(f"the image has dims {dict(photo.sizes)}; give an RGB image: 3 dims, one of them the "
                             "3 bands, e.g. rioxarray.open_rasterio(path).")
        photo = photo.transpose(*(d for d in photo.dims if d != bands[0]), bands[0])
        model, source = _load(model, "segment")
        out = predict_lazy(model, photo, probabilities=probabilities)
        out = out.assign_coords({k: c for k, c in photo.coords.items() if bands[0] not in c.dims and k not in out.coords})
        if photo.chunks is None:  # an in-memory image gives an in-memory map
            out = out.compute()
        self._history(out.attrs, f"segment(model={source!r})")
        return out
