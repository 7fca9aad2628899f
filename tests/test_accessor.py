"""``da.geonb``: fill, downscale and segment on xarray objects, with coordinates, CF attributes and history;
segmentation lazily over dask chunks."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

import geonb  # noqa: F401  (registers da.geonb)
from geonb.cli import main
from geonb.errors import GeonbError
from geonb.predict import Predictor
from geonb.tasks.segment.infer import segment_image

from .test_segment import _model as segment_model
from .test_segment import _photo

torch.set_num_threads(1)


def test_fill_a_real_cloudy_cube_returns_the_field_and_its_sigma_with_cf_attributes(alboran_path, tmp_path):
    path = tmp_path / "alboran_subset.nc"  # 4 real days, 48×64 cells of the Alboran cube
    with xr.open_dataset(alboran_path) as full:
        full.isel(time=slice(0, 4), lat=slice(60, 108), lon=slice(100, 164)).to_netcdf(path)
    sst = xr.open_dataset(path)["SST"]
    out = sst.geonb.fill(arch="dincae", epochs=2)
    assert isinstance(out, xr.Dataset) and set(out.data_vars) == {"SST", "SST_error"}
    for name in ("time", "lat", "lon"):
        np.testing.assert_array_equal(out[name].values, sst[name].values)
    observed, sea = np.isfinite(sst.values), np.isfinite(sst.values).any(0)
    gaps = sea[None] & ~observed
    assert gaps.sum() > 100  # real clouds
    np.testing.assert_array_equal(out.SST.values[observed], sst.values[observed])
    assert np.isfinite(out.SST.values[gaps]).all() and (out.SST_error.values[gaps] > 0).all()
    assert (out.SST_error.values[observed] == 0).all()
    assert out.SST.attrs["units"] == out.SST_error.attrs["units"] == "degree Celsius"
    assert out.SST.attrs["ancillary_variables"] == "SST_error"
    assert "gaps filled" in out.SST.attrs["long_name"] and "standard deviation" in out.SST_error.attrs["long_name"]
    assert out.attrs["Conventions"].startswith("CF") and "SST.geonb.fill(arch='dincae')" in out.attrs["history"]


def test_downscale_returns_the_fine_grid_with_its_crs_as_geonb_predict_does(antarctic, tmp_path):
    model, coarse, ant = antarctic
    with pytest.raises(GeonbError, match="decode_coords='all'"):  # the CRS variable left behind: refused
        xr.open_dataset(coarse)["thickness"].geonb.downscale(model=model)
    da = xr.open_dataset(coarse, decode_coords="all")["thickness"]
    fine = da.geonb.downscale(model=model)
    assert fine.dims == ("y", "x") and fine.shape == (64, 80)
    np.testing.assert_allclose(fine.x.values, ant.x.values)
    np.testing.assert_allclose(fine.y.values, ant.y.values)
    assert fine.rio.crs.to_epsg() == 3031 and fine.attrs["units"] == "m"
    assert "super-resolved ×4" in fine.attrs["long_name"] and "thickness.geonb.downscale" in fine.attrs["history"]
    assert main(["predict", "--model", str(model), "--input", str(coarse), "--var", "thickness",
                 "--out", str(tmp_path / "fine.nc")]) == 0
    np.testing.assert_allclose(fine.values, xr.open_dataset(tmp_path / "fine.nc")["thickness"].values, atol=1e-3)
    chunked = xr.open_dataset(coarse, decode_coords="all", chunks={"y": 8, "x": 10})["thickness"]
    lazy = chunked.geonb.downscale(model=model)
    assert lazy.chunks is not None  # nothing computed yet: dask, chunk by chunk
    np.testing.assert_allclose(lazy.values, fine.values, atol=1e-3)
    with pytest.raises(GeonbError, match=r"a segment model; .geonb.downscale\(\) needs a downscale model"):
        da.geonb.downscale(model=segment_model("fcn"))


def test_segment_keeps_the_crs_and_runs_lazily_over_dask_chunks(tmp_path):
    rioxarray = pytest.importorskip("rioxarray")
    model = segment_model("unet_seg")
    photo = _photo(150, 170, seed=4)
    image = xr.DataArray(photo.transpose(2, 0, 1), dims=("band", "y", "x"),  # rioxarray's layout
                         coords={"band": [1, 2, 3], "y": 25.3 - 1e-5 * (np.arange(150) + 0.5),
                                 "x": 55.2 + 1e-5 * (np.arange(170) + 0.5)}).rio.write_crs("EPSG:4326")
    image.rio.to_raster(tmp_path / "image.tif")
    opened = rioxarray.open_rasterio(tmp_path / "image.tif")
    one = segment_image(Predictor(model), photo)
    classes = opened.geonb.segment(model=model)
    assert classes.dtype == np.uint8 and classes.dims == ("y", "x") and classes.chunks is None
    np.testing.assert_array_equal(classes.values, one)
    assert classes.rio.crs.to_epsg() == 4326
    np.testing.assert_allclose(classes.x.values, image.x.values)
    assert classes.attrs["flag_values"].dtype == np.uint8 and classes.attrs["flag_meanings"].split()[0] == "building"
    lazy = rioxarray.open_rasterio(tmp_path / "image.tif", chunks={"y": 64, "x": 64}).geonb.segment(model=model)
    assert lazy.chunks is not None  # nothing computed yet
    np.testing.assert_array_equal(lazy.compute().values, one)
    with pytest.raises(GeonbError, match="RGB image"):
        opened.isel(band=0).geonb.segment(model=model)
