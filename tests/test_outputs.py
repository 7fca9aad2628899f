"""`geonb predict`: the output format follows the extension — NetCDF, zarr, GeoTIFF (COG) — and every one
reads back with the same values and CRS: a downscaling model on a projected grid (EPSG:3031) and a
segmentation model on a georeferenced image."""
from __future__ import annotations

import numpy as np
import rasterio
import rioxarray
import xarray as xr

from geonb.cli import main

from .test_segment import _model as segment_model
from .test_segment import _photo


def _predict(model, source, out, *extra) -> None:
    assert main(["predict", "--model", str(model), "--input", str(source), "--out", str(out), *extra]) == 0


def test_downscaled_projected_grid_as_geotiff_and_zarr(antarctic, tmp_path, capsys):
    model, coarse, ant = antarctic
    for name in ("fine.nc", "fine.tif", "fine.zarr"):
        _predict(model, coarse, tmp_path / name, "--var", "thickness")
    ref = xr.open_dataset(tmp_path / "fine.nc")["thickness"]
    assert ref.y.values[1] > ref.y.values[0]  # the grid runs south to north, as the input does

    tif = rioxarray.open_rasterio(tmp_path / "fine.tif").squeeze("band", drop=True)
    assert tif.rio.crs.to_epsg() == 3031
    assert tuple(tif.rio.resolution()) == (5000.0, -5000.0)  # north up, 5 km cells
    np.testing.assert_array_equal(tif.sortby("y").values, ref.values)
    np.testing.assert_allclose(tif.sortby("y").y.values, ant.y.values)
    np.testing.assert_allclose(tif.x.values, ant.x.values)
    assert tif.attrs["units"] == "m" and "geonb predict" in tif.attrs["history"]
    with rasterio.open(tmp_path / "fine.tif") as src:  # a Cloud Optimized GeoTIFF: tiled, compressed
        assert src.profile["tiled"] and src.compression.name.lower() == "deflate"

    z = xr.open_zarr(tmp_path / "fine.zarr", decode_coords="all")["thickness"]  # CF: the grid mapping too
    assert z.rio.crs.to_epsg() == 3031
    np.testing.assert_array_equal(z.values, ref.values)
    np.testing.assert_array_equal(z.x.values, ref.x.values)

    capsys.readouterr()
    assert main(["predict", "--model", str(model), "--input", str(coarse), "--out", str(tmp_path / "fine.png")]) == 2
    assert "NetCDF (.nc), zarr (.zarr) or GeoTIFF (.tif)" in capsys.readouterr().err


def test_class_map_of_a_georeferenced_image_as_geotiff_and_zarr(tmp_path):
    path = segment_model("unet_seg").save(tmp_path / "seg.pt")
    photo = _photo(64, 80, seed=2)
    image = xr.DataArray(photo.transpose(2, 0, 1), dims=("band", "y", "x"),
                         coords={"y": 2_700_000 - 10 * (np.arange(64) + 0.5), "x": 300_000 + 10 * (np.arange(80) + 0.5)})
    image.rio.write_crs("EPSG:32640").rio.to_raster(tmp_path / "image.tif")  # UTM 40N, 10 m pixels
    for name in ("classes.tif", "classes.zarr", "classes.nc"):
        _predict(path, tmp_path / "image.tif", tmp_path / name)
    ref = xr.open_dataset(tmp_path / "classes.nc")["class"]
    tif = rioxarray.open_rasterio(tmp_path / "classes.tif").squeeze("band", drop=True)
    assert tif.rio.crs.to_epsg() == 32640 and tif.rio.nodata == 255 and tif.dtype == np.uint8
    assert tif.rio.transform() == image.rio.transform()
    np.testing.assert_array_equal(tif.values, ref.values)
    assert tif.attrs["flag_meanings"] == ref.attrs["flag_meanings"]
    z = xr.open_zarr(tmp_path / "classes.zarr", decode_coords="all")["class"]
    assert z.rio.crs.to_epsg() == 32640
    np.testing.assert_array_equal(z.values, ref.values)
    np.testing.assert_array_equal(z.attrs["flag_values"], np.arange(5))


def test_geotiff_grids_are_read_by_predict_and_train_with_their_crs(antarctic, tmp_path):
    """Elevation and thickness grids come as GeoTIFF: one written by rioxarray and one written by geonb itself
    are inputs of `geonb predict` and `geonb train`, CRS kept, values as from the NetCDF."""
    from geonb.data import load_grid

    model, coarse, ant = antarctic
    low = xr.open_dataset(coarse)["thickness"]
    low.encoding = {}
    low.rio.write_crs("EPSG:3031").rio.to_raster(tmp_path / "coarse.tif")  # rioxarray's GeoTIFF, no CF attributes
    _predict(model, coarse, tmp_path / "from_nc.nc", "--var", "thickness")
    _predict(model, tmp_path / "coarse.tif", tmp_path / "from_tif.nc", "--var", "thickness")
    ref = xr.open_dataset(tmp_path / "from_nc.nc", decode_coords="all")["thickness"]
    got = xr.open_dataset(tmp_path / "from_tif.nc", decode_coords="all")["thickness"]
    assert got.rio.crs.to_epsg() == 3031
    np.testing.assert_allclose(got.values, ref.values, rtol=1e-6)
    np.testing.assert_allclose(got.y.values, ref.y.values)

    _predict(model, coarse, tmp_path / "fine.tif", "--var", "thickness")  # geonb's own COG, read back as input
    again = load_grid(str(tmp_path / "fine.tif"), "thickness")
    assert again.attrs["crs"] == "EPSG:3031" and again["thickness"].shape == ref.shape
    np.testing.assert_array_equal(again["thickness"].sortby("y").values, ref.values)  # north up in the COG

    big = load_grid("antarctica").isel(y=slice(256, 512), x=slice(448, 704))["thickness"]  # 256² cells, 5 km
    big.rio.write_crs("EPSG:3031").rio.to_raster(tmp_path / "fine_grid.tif")
    assert main(["train", "--arch", "srcnn", "--data", str(tmp_path / "fine_grid.tif"), "--var", "thickness",
                 "--factor", "4", "--valid-above", "0", "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "2",
                 "--model", str(tmp_path / "from_tif.pt")]) == 0
    from geonb.modelfile import TrainedModel

    assert TrainedModel.load(tmp_path / "from_tif.pt").inputs["crs"] == "EPSG:3031"
