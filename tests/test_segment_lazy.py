"""`geonb predict` with a segment model on NetCDF, zarr and GeoTIFF inputs: read and predicted lazily
(dask, ``--chunk`` px chunks with the network's halo), equal to the in-memory prediction of the same
image (a transparent-where-no-data PNG, decoded whole), nodata → class 255 and NaN probabilities, and the
documented errors."""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from PIL import Image

from geonb import aerial
from geonb.cli import parse
from geonb.modelfile import TrainedModel
from geonb.tasks.segment.infer import predict_file

from .test_errors import one_error, run_cli
from .test_segment import _model, _photo


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """One 150×170 photo with a no-data corner as an RGBA PNG (in memory), float NetCDF and zarr (NaN) and
    a GeoTIFF with a CRS (nodata 0), and a unet_seg model with a temperature."""
    rasterio = pytest.importorskip("rasterio")
    from rasterio.transform import from_origin

    tmp = tmp_path_factory.mktemp("lazy")
    model = _model("unet_seg")
    model.method_args["temperature"] = 1.5
    model.save(tmp / "seg.pt")
    photo = _photo(150, 170, seed=4)
    photo[photo == 0] = 1  # 0 is the GeoTIFF's nodata: only the corner below has none
    photo[:20, :30] = 0
    valid = ~(photo == 0).all(-1)
    Image.fromarray(np.dstack([photo, 255 * valid.astype(np.uint8)])).save(tmp / "image.png")
    floats = np.where(valid[..., None], photo / np.float32(255), np.nan).astype(np.float32)
    ds = xr.Dataset({"rgb": (("y", "x", "band"), floats)})
    ds.to_netcdf(tmp / "image.nc")
    ds.chunk({"y": 48, "x": 40}).to_zarr(tmp / "image.zarr")  # the file's chunks: not the prediction's
    with rasterio.open(tmp / "image.tif", "w", driver="GTiff", height=150, width=170, count=3, dtype="uint8",
                       crs="EPSG:32640", transform=from_origin(300000, 2800000, 0.5, 0.5), nodata=0) as dst:
        dst.write(photo.transpose(2, 0, 1))
    return tmp, valid


def _predict(tmp, capsys, image, out, *flags):
    status, err = run_cli(capsys, "predict", "--model", tmp / "seg.pt", "--input", tmp / image, "--out", tmp / out,
                          *flags)
    assert status == 0, err
    return xr.open_zarr(tmp / out).load() if out.endswith(".zarr") else xr.load_dataset(tmp / out)


def _attrs(da):  # the CF attributes, without the grid mapping only a georeferenced input has
    return {k: np.asarray(v).tolist() for k, v in da.attrs.items() if k != "grid_mapping"}


@pytest.mark.parametrize("image", ["image.nc", "image.zarr", "image.tif"])
def test_lazy_input_equals_the_in_memory_prediction(inputs, capsys, image):
    tmp, valid = inputs
    args = parse(["predict", "--model", str(tmp / "seg.pt"), "--input", str(tmp / image), "--out", str(tmp / "o.nc"),
                  "--chunk", "64", "--probabilities"])
    lazy = predict_file(TrainedModel.load(tmp / "seg.pt"), args)
    assert all(v.chunks is not None for v in lazy.data_vars.values())  # dask-backed: the writer streams it
    assert lazy["class"].data.chunksize == (64, 64)
    stem = image.replace(".", "_")
    memory = _predict(tmp, capsys, "image.png", f"{stem}_memory.nc", "--probabilities")
    for flags in ((), ("--probabilities",)):
        out = _predict(tmp, capsys, image, f"{stem}{len(flags)}.zarr", "--chunk", "64", *flags)
        assert np.array_equal(out["class"].values, memory["class"].values)
        assert (out["class"].values[~valid] == aerial.IGNORE).all() and (out["class"].values[valid] < 5).all()
        assert out["class"].attrs["flag_meanings"] == memory["class"].attrs["flag_meanings"]
    for k in memory.data_vars:
        assert _attrs(out[k]) == _attrs(memory[k]), k
        if k != "class":
            assert np.isnan(out[k].values[~valid]).all() and np.allclose(out[k].values, memory[k].values, atol=1e-5,
                                                                          equal_nan=True), k
    if image.endswith(".tif"):  # the georeferencing kept, in every output format
        assert out["class"].rio.crs.to_epsg() == 32640 and float(out["x"][0]) == 300000.25
        rasterio = pytest.importorskip("rasterio")
        for flags in ((), ("--probabilities",)):
            run_cli(capsys, "predict", "--model", tmp / "seg.pt", "--input", tmp / image, "--out", tmp / f"o{len(flags)}.tif",
                    "--chunk", "64", *flags)
            with rasterio.open(tmp / f"o{len(flags)}.tif") as src:  # streamed: tiled, then copied
                bands = src.read()
                assert src.crs.to_epsg() == 32640 and src.transform.c == 300000 and src.compression.name == "deflate"
                if not flags:
                    assert src.nodata == 255 and src.colormap(1)[255][:3] == (155,) * 3
                    assert np.array_equal(bands[0], out["class"].values)
                else:
                    assert np.isnan(src.nodata) and src.descriptions[-1] == out["uncertainty"].attrs["long_name"]
        probs = np.stack([out[f"probability_{n}"].values for n in aerial.NAMES] + [out["uncertainty"].values])
        assert bands.shape == (6, 150, 170) and np.allclose(bands, probs, atol=1e-6, equal_nan=True)

def test_bad_lazy_inputs_are_one_line_errors_with_the_fix(inputs, capsys):
    rasterio = pytest.importorskip("rasterio")
    tmp, _ = inputs
    cases = {("image.zarr", "--chunk", "60"): "chunk=60 is not a multiple of 8",
             ("image.tif", "--tile", "36"): "tile=36 is not a multiple of 8",
             ("image.png", "--chunk", "64"): "--chunk applies to NetCDF, zarr and GeoTIFF"}
    with rasterio.open(tmp / "two.tif", "w", driver="GTiff", height=150, width=170, count=2, dtype="uint8",
                       crs="EPSG:32640", transform=rasterio.transform.from_origin(0, 0, 1, 1)) as dst:
        dst.write(np.zeros((2, 150, 170), np.uint8))
    cases[("two.tif",)] = "has 2 bands; a photo has 3 (RGB)"
    xr.Dataset({"rgba": (("y", "x", "band"), np.zeros((150, 170, 4), np.float32))}).to_zarr(tmp / "four.zarr")
    cases[("four.zarr",)] = "give --var, the RGB variable (3 dims, one of size 3)"
    cases[("four.zarr", "--var", "rgba")] = "an RGB photo needs 3 dims, one of size 3"
    for (image, *flags), message in cases.items():
        status, err = run_cli(capsys, "predict", "--model", tmp / "seg.pt", "--input", tmp / image, "--out",
                              tmp / "bad.nc", *flags)
        assert status == 2 and message in one_error(err), err
