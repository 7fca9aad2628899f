"""Applying a downscaling model: in memory, lazily on dask chunks, step by step for a series, conditioning
grids matched to the target's cells, the CF output of `geonb predict` and the accessor."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import xarray as xr

from ...data import load_grid
from ...errors import GeonbError
from ...io import GEOTIFF
from ...modelfile import TrainedModel
from ...predict import Predictor, channels_to_fine, fine_to_channels, lazy_map
from ...resample import check_finite, nearest_filled, refine_coords
from .data import COORDS, _layer, parse_cond


def has_sigma(model: TrainedModel) -> bool:
    """Whether the model predicts a σ beside its mean (trained with ``sigma``: ``tasks.downscale.sigma``)."""
    return bool(model.arch_args.get("sigma", False))


def predict_grid(predictor: Predictor, low_res: np.ndarray, conds=(), *, halo=None, tile=None,
                 padded: bool = False, sigma: bool = False):
    """Physical-units low-res grid (+ conditioning grids at their resolutions) → high-res grid (float64);
    with ``sigma`` (a model with a σ head) → (grid, σ): σ the calibrated predictive standard deviation
    per fine cell in the grid's units (the head's σ × the model's ``sigma_scale``), NaN where the cell is
    passed through.

    ``tile``: low-res cells per tile (``"auto"``: sized from the free memory; None: one pass).
    ``padded``: the grids hold the predictor's halo of context on every side (a dask chunk with its
    overlap): only the inner cells are predicted and returned.
    Low-res cells at or below the model's ``valid_above`` (ice-free) keep their value in every
    high-res cell they hold: masked cells are passed through, not invented.
    """
    model = predictor.model
    low_res = check_finite(low_res, "the low-res input grid")
    names, cond_res = model.inputs["cond"], model.arch_args["cond_res"]
    if len(conds) != len(names):
        raise GeonbError(f"this model needs {len(names)} conditioning grid(s) ({', '.join(names) or 'none'}); "
                         f"got {len(conds)}. Pass them with --cond FILE:VAR.")
    norm = model.norms["target"]
    cs = []
    for c, name, r in zip(conds, names, cond_res):
        c = check_finite(c, f"conditioning grid {name!r}")
        if c.shape != (low_res.shape[0] * r, low_res.shape[1] * r):
            raise GeonbError(f"conditioning grid {name!r} is {c.shape}; expected "
                             f"{(low_res.shape[0] * r, low_res.shape[1] * r)} (the low-res grid × {r}).")
        cs.append(predictor.tensor(model.norms[f"cond {name}"](c))[None, None])
    if sigma and not has_sigma(model):
        raise GeonbError(f"this {model.arch} model has no σ; retrain it with sigma (-p sigma true, geonb train --sigma).")
    out = predictor((predictor.tensor(norm(low_res))[None, None], cs), tile=tile, halo=halo, batch=1,
                    padded=padded)["mean"][0]
    # one weight set: its (mean, log-variance) channels are the output as they are
    hr = (out[0] if has_sigma(model) else out).astype("float64") * norm.std + norm.mean
    sd = np.exp(0.5 * out[1].astype("float64")) * norm.std * model.method_args["sigma_scale"] if sigma else None
    above = model.inputs.get("valid_above")
    if above is not None:
        f, k = model.arch_args["factor"], (predictor.halo if halo is None else halo) if padded else 0
        coarse = np.kron(low_res[k:low_res.shape[0] - k, k:low_res.shape[1] - k], np.ones((f, f)))
        hr = np.where(coarse <= above, coarse, hr)
        sd = None if sd is None else np.where(coarse <= above, np.nan, sd)
    return (hr, sd) if sigma else hr


def _packed(out, sigma: bool):
    """A fine block (grid, or (grid, σ) with ``sigma``) as one float32 array: σ as a last axis of 2 bands, so
    one lazy pass per chunk yields both (``lazy_map``'s ``bands``; ``unpacked`` splits them)."""
    return np.stack(out, -1).astype(np.float32) if sigma else out.astype(np.float32)


def unpacked(out, sigma: bool):
    """(grid, σ) of a ``predict_lazy``/``predict_steps`` result made with ``sigma``; (grid, None) without."""
    return (out[..., 0], out[..., 1]) if sigma else (out, None)


def predict_lazy(predictor: Predictor, low_res, conds=(), *, chunk: int | None = 512, tile: int | str | None = "auto",
                 sigma: bool = False):
    """``predict_grid`` out of core: a low-res grid (numpy or dask, e.g. from ``xr.open_zarr``) in
    chunks of ``chunk`` cells (None: a dask grid's own chunks), each with the network's halo of neighbours (``predict.lazy_map``)
    as its tiles' context and predicted in ``tile``-cell tiles (``"auto"``: sized from the free memory
    shared by dask's threads) → a lazy (y·f, x·f) float32 dask array equal to the
    in-memory prediction; memory is bounded by the chunk size, not the grid's. Conditioning grids
    (numpy/dask, at their resolutions) travel with the chunks as channels. ``sigma``: σ too, a last axis of 2
    (grid, σ) of the same lazy array (``unpacked`` splits it)."""
    import dask.array as dsa

    model = predictor.model
    rs = model.arch_args["cond_res"]
    if len(conds) != len(rs):
        raise GeonbError(f"this model needs {len(rs)} conditioning grid(s) ({', '.join(model.inputs['cond']) or 'none'}); "
                         f"got {len(conds)}. Pass them with --cond FILE:VAR.")
    low_res = low_res if isinstance(low_res, dsa.Array) else dsa.from_array(np.asarray(low_res), chunks=chunk or 512)
    low_res = low_res.rechunk(chunk) if chunk else low_res
    parts = [low_res[..., None]] + [
        fine_to_channels(dsa.asarray(c).rechunk(tuple(tuple(k * r for k in ks) for ks in low_res.chunks)), r)
        for c, r in zip(conds, rs)]
    edges = np.cumsum([0] + [r * r for r in rs])
    if tile == "auto":  # dask's local threads each predict a chunk at once
        tile = predictor.auto_tile(share=os.cpu_count() or 1)

    def block(b):
        cs = [channels_to_fine(b[..., 1 + edges[k]:1 + edges[k + 1]], r) for k, r in enumerate(rs)]
        return _packed(predict_grid(predictor, b[..., 0], cs, tile=tile, padded=True, sigma=sigma), sigma)

    return lazy_map(block, dsa.concatenate(parts, axis=2), halo=predictor.halo, factor=model.arch_args["factor"],
                    crops=True, bands=2 if sigma else 0)


def _cond_on_grid(spec: str, target: xr.Dataset, factor: int, allow_outliers: bool):
    """``FILE:VAR[@r]`` (or ``x``/``y``: a coordinate) → (name, r, values on the target's cells)."""
    if spec in COORDS:
        return spec, factor, _layer(target, spec)
    path, sep, var = spec.rpartition(":")
    if not sep or not path or not var:
        raise GeonbError(f"--cond {spec!r}: write FILE:VAR (e.g. surface.nc:elevation), optionally FILE:VAR@r, "
                         "or x / y for a coordinate.")
    [(var, r)] = parse_cond(var, factor)
    grid = load_grid(path, var, allow_outliers)
    if grid.attrs["crs"] != target.attrs["crs"]:
        if not (grid.attrs["crs"] and target.attrs["crs"]):
            raise GeonbError(f"conditioning grid {spec!r} is in {grid.attrs['crs'] or 'no declared CRS'} but the target "
                             f"in {target.attrs['crs'] or 'none'}; declare both CRS (a CF grid mapping) so geonb can match them.")
        return var, r, check_finite(_reprojected(grid[var], grid.attrs["crs"], target, spec),
                                    f"conditioning grid {spec!r} on the target grid")
    da = grid[var]
    for axis in ("y", "x"):
        have, want = da[axis].values, target[axis].values
        half = abs(np.diff(have).mean()) / 2 if have.size > 1 else 0
        if want.min() < have.min() - half or want.max() > have.max() + half:
            raise GeonbError(f"conditioning grid {spec!r} covers {axis} {have.min():.4f}..{have.max():.4f} but the "
                             f"target needs {want.min():.4f}..{want.max():.4f}; give a grid that covers the target's extent.")
    # Coverage is checked to half a cell: clip the last half cell onto the edge centres.
    values = da.interp(y=np.clip(target.y.values, da.y.min().item(), da.y.max().item()),
                       x=np.clip(target.x.values, da.x.min().item(), da.x.max().item())).values
    return var, r, check_finite(values, f"conditioning grid {spec!r} on the target grid")


def _reprojected(da: xr.DataArray, crs: str, target: xr.Dataset, spec: str) -> np.ndarray:
    """``da`` (in ``crs``) resampled bilinearly onto the target's cells in the target's CRS (rioxarray's
    reproject_match, GDAL warp); refused when it leaves any target cell uncovered."""
    import rioxarray  # noqa: F401  (registers .rio)
    from rasterio.enums import Resampling

    template = xr.DataArray(np.zeros((target.sizes["y"], target.sizes["x"]), "float32"), dims=("y", "x"),
                            coords={"y": target.y.values, "x": target.x.values}).rio.write_crs(target.attrs["crs"])
    source = da.astype("float32").rio.write_crs(crs).rio.write_nodata(np.nan, encoded=False)
    # warping a field of ones marks the target cells the source grid reaches (NaN outside it)
    reach = xr.ones_like(source).rio.write_nodata(np.nan, encoded=False)
    covered = np.isfinite(reach.rio.reproject_match(template, resampling=Resampling.nearest).values)
    if not covered.all():
        raise GeonbError(f"conditioning grid {spec!r} (in {crs}) covers only {covered.mean():.1%} of the target's "
                         f"cells once matched to {target.attrs['crs']}; give a grid that covers the target's extent.")
    return source.rio.reproject_match(template, resampling=Resampling.bilinear).values


def predict_file(model: TrainedModel, args) -> xr.Dataset:
    """``geonb predict`` for a downscaling model: a low-res grid in, the grid × factor out (CF NetCDF, zarr or
    GeoTIFF) with the input's coordinate names and attributes and its CRS; lazy (``predict_lazy``), so the
    writer streams it chunk by chunk."""
    grid = load_grid(args.input, args.var or model.inputs["variable"], lazy=True, allow_outliers=args.allow_outliers,
                     steps=True)
    da = grid[grid.attrs["target"]]
    predictor = Predictor(model)
    ny, nx = da.shape[-2:]
    if min(ny, nx) < predictor.halo:  # the chunks' overlap with their neighbours needs that many cells
        raise GeonbError(f"{args.input}:{da.name} is {ny}×{nx} cells; this model needs at least "
                         f"{predictor.halo}×{predictor.halo} (its receptive field). Give a larger grid.")
    conds = conditioning(model, grid, args.cond, args.allow_outliers)
    check_inputs(model, da, conds, f"{args.input}:{da.name}")
    if "time" in da.dims:
        hr = predict_steps(predictor, da.data, conds, tile=args.tile or "auto", sigma=has_sigma(model))
    else:
        check_finite(da.data, f"{args.input}:{da.name}")  # one lazy pass over the input before any prediction
        hr = predict_lazy(predictor, da.data, conds, chunk=args.chunk or 512, tile=args.tile or "auto",
                          sigma=has_sigma(model))
    out = super_resolved(model, grid, *unpacked(hr, has_sigma(model)), f"{args.input}", f"geonb model {args.model}")
    if not has_sigma(model) or "time" in da.dims or Path(args.out).suffix.lower() not in GEOTIFF:
        return out
    # a GeoTIFF holds one variable: the grid and its σ as bands 1 and 2, the units they share
    name = str(da.name)
    bands = out.to_array("band").transpose(..., "band").assign_attrs(
        units=out[name].attrs.get("units", ""), long_name=f"band 1: {out[name].attrs['long_name']}; band 2: "
        f"{out[name + '_error'].attrs['long_name']} (1 sigma)")
    return bands.to_dataset(name=name)


def check_inputs(model: TrainedModel, low_res: xr.DataArray, conds, what: str) -> None:
    """The low-res grid and the conditioning grids in the units and value range the model was trained on
    (``TrainedModel.check_input``); x and y are positions, any region's."""
    model.check_input("target", low_res.data, low_res.attrs.get("units"), what)
    for name, c in zip(model.inputs["cond"], conds):
        if name not in COORDS:
            model.check_input(f"cond {name}", c, None, f"conditioning grid {name!r}")


def predict_steps(predictor: Predictor, low_res, conds=(), *, tile: int | str | None = "auto", sigma: bool = False):
    """Every step of a (time, y, x) low-res series (numpy or dask), lazily, one dask chunk per step: the
    step's NaN cells (clouds, land) nearest-filled for the network and NaN again in the output (each
    covers its factor × factor fine cells), as training treated them. ``sigma``: σ too, a last axis of 2 as in
    ``predict_lazy``."""
    import dask.array as dsa

    f = predictor.model.arch_args["factor"]
    low_res = dsa.asarray(low_res).rechunk({0: 1, 1: -1, 2: -1})
    if tile == "auto":
        tile = predictor.auto_tile(share=os.cpu_count() or 1)

    def step(block):
        out = predict_grid(predictor, nearest_filled(block[0].astype("float64")), conds, tile=tile, sigma=sigma)
        gaps = np.kron(~np.isfinite(block[0]), np.ones((f, f), bool))
        return _packed(np.where(gaps, np.nan, out), sigma)[None]

    return low_res.map_blocks(step, dtype=np.float32, new_axis=[3] if sigma else None,
                              chunks=((1,) * low_res.shape[0], (low_res.shape[1] * f,), (low_res.shape[2] * f,),
                                      *[(2,)][:sigma]))


def conditioning(model: TrainedModel, grid: xr.Dataset, specs, allow_outliers: bool = False) -> list[np.ndarray]:
    """The model's conditioning grids (``FILE:VAR[@r]`` or ``x``/``y`` specs) on ``grid``'s cells refined ×r."""
    specs = list(specs or [])
    if specs and not model.inputs["cond"]:
        raise GeonbError(f"this model was trained without conditioning grids; drop --cond ({' '.join(specs)}).")
    if len(specs) != len(model.inputs["cond"]):
        raise GeonbError(f"this model needs {len(model.inputs['cond'])} conditioning grid(s) "
                         f"({', '.join(model.inputs['cond'])}); got {len(specs)}. Pass them with --cond FILE:VAR.")
    return [_cond_on_grid(spec, _refined(grid, r), r, allow_outliers)[2]
            for spec, r in zip(specs, model.arch_args["cond_res"])]


def super_resolved(model: TrainedModel, grid: xr.Dataset, hr, error, what: str, source: str) -> xr.Dataset:
    """The high-res grid ``hr`` (numpy or dask; (time, y, x) for a series) as a CF Dataset on ``grid``'s
    refined cells, with the input's coordinate names and attributes and its CRS (a grid-mapping coordinate,
    via rioxarray); its σ ``error`` (or None) as ``<var>_error``, named by the grid's ``ancillary_variables``."""
    import rioxarray  # noqa: F401  (registers .rio)

    f = model.arch_args["factor"]
    da = grid[grid.attrs["target"]]
    y_name, x_name = grid.attrs["y_name"], grid.attrs["x_name"]
    fine = _refined(grid, f)
    x = fine.x.values
    if "lon_seam" in grid.attrs:  # across the seam: back into the input's convention (0…360 or −180…180)
        x = (x - grid.attrs["lon_seam"]) % 360 + grid.attrs["lon_seam"]
    crs = grid.attrs["crs"]
    cf = ({"units": "degrees_north", "standard_name": "latitude"}, {"units": "degrees_east", "standard_name": "longitude"}) \
        if crs == "EPSG:4326" else ({}, {})
    t_name = grid.attrs.get("t_name")
    times = {t_name: (t_name, grid.time.values, grid.time.attrs)} if "time" in da.dims else {}
    out = xr.DataArray(
        hr, dims=(*times, y_name, x_name), name=str(da.name),
        coords={**times, y_name: (y_name, fine.y.values, {**cf[0], **grid.y.attrs}),
                x_name: (x_name, x, {**cf[1], **grid.x.attrs})},
        attrs={**{k: v for k, v in da.attrs.items() if k != "grid_mapping"},
               "long_name": f"{da.attrs.get('long_name', da.name)}, super-resolved ×{f}"},
    ).to_dataset()
    if error is not None:
        name = f"{da.name}_error"
        out[name] = out[str(da.name)].copy(data=error).assign_attrs(standard_error_attrs(da, model))
        out[str(da.name)].attrs["ancillary_variables"] = name
    if crs:  # a CF grid-mapping coordinate: NetCDF, zarr and GeoTIFF readers all find the CRS
        out = out.rio.write_crs(crs)
    out.attrs.update(Conventions="CF-1.8", title=f"geonb {model.arch} ×{f} downscaling of {what}",
                     source=f"{source} ({model.arch}, trained on {model.info.get('trained_on', '?')})")
    return out


def standard_error_attrs(da: xr.DataArray, model: TrainedModel) -> dict:
    """CF attributes of the σ of ``da``'s prediction: its units, the ``standard_error`` modifier of its
    standard name, what the number means and how it was calibrated."""
    return {"units": da.attrs.get("units", ""),
            **({"standard_name": f"{da.attrs['standard_name']} standard_error"} if "standard_name" in da.attrs else {}),
            "long_name": f"predictive standard deviation of {da.attrs.get('long_name', da.name)}, super-resolved",
            "comment": "1 sigma of a Gaussian predictive distribution per cell: the truth lies within 1 sigma of the "
                       "prediction in about 68 % of cells and within 2 sigma in about 95 %; the network's sigma scaled "
                       f"by {model.method_args['sigma_scale']:.4g}, fitted on the training grid's validation region; "
                       "NaN where the input cell is passed through (at or below valid_above)"}


def _refined(grid: xr.Dataset, r: int) -> xr.Dataset:
    """An empty grid with the cell centres of ``grid`` refined ×r (its CRS kept)."""
    return xr.Dataset(coords={"y": refine_coords(grid.y.values, r), "x": refine_coords(grid.x.values, r)},
                      attrs={"crs": grid.attrs["crs"]})
