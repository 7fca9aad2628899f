"""geonb fill: real CF encodings in, observed pixels unchanged, input never modified, clear errors."""
import hashlib
import os
import re

import numpy as np
import pytest
import xarray as xr

from geonb import cli
from geonb.cv import synthetic_cloudy_cube
from geonb.errors import GeonbError
from geonb.filling import fill, fill_file
from geonb.modelfile import TrainedModel


def cf_file(path, n_time=6, ny=32, nx=48, all_cloud_day=None, clouds=True):
    """A packed file as satellites ship them: int16 + scale/offset, _FillValue, missing_value, float days."""
    truth, cloudy = synthetic_cloudy_cube(n_time, ny, nx, cover=0.3, seed=5)
    data = cloudy if clouds else truth
    if all_cloud_day is not None:
        data = data.copy()
        data[all_cloud_day] = np.nan
    ds = xr.Dataset({"SST": data.assign_attrs(units="degree_Celsius", standard_name="sea_surface_temperature"),
                     "mask": (("lat", "lon"), np.isfinite(truth.values[0]).astype("int8"))})
    ds = ds.assign_coords(time=np.arange(n_time, dtype="float64") + 0.0)
    ds.time.attrs["units"] = "days since 2020-03-01"
    encoding = {"SST": {"dtype": "int16", "scale_factor": 0.001, "add_offset": 20.0, "_FillValue": np.int16(-32768),
                        "missing_value": np.int16(-32768)}, "time": {"dtype": "float64"}}
    ds.to_netcdf(path, encoding=encoding)
    return path


def _downscale_model(path):
    from geonb.normalise import Normaliser
    from geonb.registry import get_arch

    net = get_arch("srcnn").build("generator", factor=4, cond_res=[])
    return TrainedModel("downscale", "srcnn", {"factor": 4, "cond_res": []}, [net.state_dict()],
                        {"target": Normaliser(0.0, 1.0)}, inputs={"variable": "SST", "cond": []}).save(path)


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_cli_fill_keeps_observed_and_input(tmp_path, capsys):
    src = cf_file(tmp_path / "in.nc")
    before = digest(src)
    out = tmp_path / "out.nc"
    assert cli.main(["fill", str(src), "--var", "SST", "--mask-var", "mask", "--quick", "--out", str(out),
                     "--save-model", str(tmp_path / "m.pt")]) == 0
    said = capsys.readouterr().out  # the skill on pixels never trained on, beside biharmonic on the same pixels
    assert re.search(r"held-out skill: RMSE [\d.]+ degree_Celsius on \d+ observed pixels .*; biharmonic per day on "
                     r"the same pixels: [\d.]+ degree_Celsius", said), said
    assert digest(src) == before  # the input file is never modified
    a, b = xr.open_dataset(src), xr.open_dataset(out)
    assert b.SST.dims == a.SST.dims and np.array_equal(b.time.values, a.time.values)
    assert b.SST.attrs["units"] == a.SST.attrs["units"] and b.SST_error.attrs["units"] == "degree_Celsius"
    observed, sea = np.isfinite(a.SST.values), a.mask.values > 0
    np.testing.assert_array_equal(b.SST.values[observed], a.SST.values[observed])
    assert np.isfinite(b.SST.values[:, sea]).all() and np.isnan(b.SST.values[:, ~sea]).all()
    gaps = sea[None] & ~observed
    assert (b.SST_error.values[gaps] > 0).all() and (b.SST_error.values[observed] == 0).all()
    with xr.open_dataset(out, mask_and_scale=False) as raw:
        assert raw.SST.dtype == np.int16  # written back with the input's packing
    assert b.SST.attrs["geonb_held_out_points"] > 0 and b.SST.attrs["geonb_held_out_rmse_biharmonic"] > 0

    # a saved model fills without training (its speed is measured in benchmarks/, not here)
    out2 = tmp_path / "out2.nc"
    assert cli.main(["fill", str(src), "--var", "SST", "--mask-var", "mask", "--model", str(tmp_path / "m.pt"),
                     "--out", str(out2)]) == 0
    np.testing.assert_allclose(xr.open_dataset(out2).SST.values, b.SST.values, atol=2e-3, equal_nan=True)
    # the output format follows the extension: zarr reads back the same values and CF attributes
    assert cli.main(["fill", str(src), "--var", "SST", "--mask-var", "mask", "--model", str(tmp_path / "m.pt"),
                     "--out", str(tmp_path / "out2.zarr")]) == 0
    z = xr.open_zarr(tmp_path / "out2.zarr")
    np.testing.assert_array_equal(z.SST.values, xr.open_dataset(out2).SST.values)
    assert z.SST.attrs["ancillary_variables"] == "SST_error" and z.SST_error.attrs["units"] == "degree_Celsius"
    assert cli.main(["fill", str(src), "--var", "SST", "--quick", "--out", str(tmp_path / "x.tif")]) == 2
    assert not (tmp_path / "x.tif").exists()  # refused before any training: a cube is no GeoTIFF
    saved = TrainedModel.load(tmp_path / "m.pt", task="clouds")
    assert saved.arch == "dincae" and saved.method_args["average"] == "weights" and saved.method_args["sigma_scale"] > 0

    # `geonb predict` dispatches on the model's task: a clouds model fills like `geonb fill --model`
    out3 = tmp_path / "out3.nc"
    assert cli.main(["predict", "--model", str(tmp_path / "m.pt"), "--input", str(src), "--var", "SST",
                     "--mask-var", "mask", "--out", str(out3)]) == 0
    assert digest(src) == before
    c, d = xr.open_dataset(out3), xr.open_dataset(out2)
    # the same model and input; a float ulp apart before packing can round to the next int16 step (0.001 °C)
    np.testing.assert_allclose(c.SST.values, d.SST.values, rtol=0, atol=1.5e-3, equal_nan=True)
    np.testing.assert_allclose(c.SST_error.values, d.SST_error.values, rtol=1e-5, atol=1e-6, equal_nan=True)


def test_no_missing_values_copies_through(tmp_path):
    src = cf_file(tmp_path / "full.nc", clouds=False)
    with pytest.warns(UserWarning, match="no missing"):
        ds = fill_file(src, "SST", tmp_path / "out.nc", mask_var="mask", quick=True)
    a = xr.open_dataset(src)
    np.testing.assert_array_equal(ds.SST.values, a.SST.values)


def test_bad_inputs_say_what_is_wrong(tmp_path):
    src = cf_file(tmp_path / "in.nc", n_time=2)
    with pytest.raises(GeonbError, match="window"):
        fill_file(src, "SST", tmp_path / "out.nc", quick=True)
    src = cf_file(tmp_path / "in6.nc")
    ds = xr.open_dataset(src)
    with pytest.raises(GeonbError, match=r"mask has shape \(10, 10\)"):
        fill(ds.SST, mask=np.ones((10, 10)), quick=True)
    with pytest.raises(GeonbError, match="never overwrites its input"):
        fill_file(src, "SST", src, quick=True)
    os.link(src, tmp_path / "hardlink.nc")  # another name, the same file (inode)
    with pytest.raises(GeonbError, match="never overwrites its input"):
        fill_file(src, "SST", tmp_path / "hardlink.nc", quick=True)
    with pytest.raises(GeonbError, match="--save-model .* never overwrites"):
        fill_file(src, "SST", tmp_path / "o.nc", save_model=src, quick=True)
    with pytest.raises(GeonbError, match="mask variable 'land'"):
        fill_file(src, "SST", tmp_path / "o.nc", mask_var="land", quick=True)
    with pytest.raises(GeonbError, match="all NaN"):  # every day all cloud
        fill(ds.SST * np.nan, quick=True)
    with pytest.raises(GeonbError, match="is a downscale model .*needs an? clouds model"):
        fill(ds.SST, model=_downscale_model(tmp_path / "sr.pt"))
    assert not (tmp_path / "out.nc").exists() and not (tmp_path / "o.nc").exists()  # nothing half-written


def test_all_cloud_day_and_dineof(tmp_path):
    import geonb

    assert geonb.fill is fill  # the Python API: geonb.fill(dataarray, ...)
    src = cf_file(tmp_path / "in.nc", all_cloud_day=2)
    ds = xr.open_dataset(src)
    sea = ds.mask.values > 0
    with pytest.warns(UserWarning, match=r"day\(s\) \[2\] are all cloud"):
        out = fill(ds.SST, mask=ds.mask, quick=True)
    assert np.isfinite(out.SST.values[2][sea]).all()  # filled from the neighbouring days
    with pytest.warns(UserWarning, match="all cloud"):
        out = fill(ds.SST, mask=ds.mask, arch="dineof", progress=False)
    gaps = sea[None] & np.isnan(ds.SST.values)
    gaps[2] = False
    err = out.SST_error.values[gaps]
    assert np.isnan(out.SST.values[2][sea]).all() and np.all(err == err[0]) and err[0] > 0
