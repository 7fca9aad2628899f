import numpy as np
import pytest
import xarray as xr

from geonb import GeonbError, load_field, synthetic_sst
from geonb.data import standardise


def test_embedded_hadisst_is_real_sst_with_land_nan():
    sst = load_field("hadisst")
    assert sst.dims == ("time", "lat", "lon") and sst.shape == (1, 180, 360)
    ocean = np.isfinite(sst.values)
    assert 0.55 < ocean.mean() < 0.8  # about two thirds of the globe is open ocean
    assert -2.0 <= np.nanmin(sst) and np.nanmax(sst) < 35.0
    # warm tropics, cold poles
    assert float(sst.sel(lat=slice(5, -5)).mean()) > float(sst.sel(lat=slice(-55, -65)).mean()) + 15


def test_alboran_cube_has_real_clouds(alboran_path):
    sst = load_field("alboran")
    assert sst.shape == (10, 201, 301)
    sea = np.isfinite(sst.values).any(0)
    cloud = np.isnan(sst.values) & sea
    assert 0.3 < cloud.sum() / (sea.sum() * 10) < 0.7


def test_topobathy_elevation():
    z = load_field("topobathy")
    assert z.shape == (1, 91, 120) and z.attrs["units"] == "m"
    assert float(z.min()) < 0 < float(z.max())


def test_path_and_variable(tmp_path):
    da = synthetic_sst(n_time=3, ny=32, nx=40)
    da.to_dataset(name="sst").to_netcdf(tmp_path / "f.nc")
    assert load_field(str(tmp_path / "f.nc"), "sst").shape == (3, 32, 40)
    with pytest.raises(GeonbError, match="variable 'temp' is not in .*it has: sst"):
        load_field(str(tmp_path / "f.nc"), "temp")


def test_not_netcdf_is_named(tmp_path):
    bad = tmp_path / "notes.nc"
    bad.write_text("this is not a netcdf file")
    with pytest.raises(GeonbError, match="not a readable NetCDF"):
        load_field(str(bad), "sst")


def test_unknown_name_or_missing_file():
    with pytest.raises(GeonbError, match="neither an embedded dataset"):
        load_field("no-such-dataset")


def test_all_nan_input_is_refused():
    da = xr.DataArray(np.full((2, 8, 8), np.nan), dims=("time", "lat", "lon"), name="sst")
    with pytest.raises(GeonbError, match="all NaN"):
        standardise(da)


def test_synthetic_sst_spectrum_is_red():
    field = synthetic_sst(n_time=1, ny=128, nx=128, land=False).values[0]
    power = np.abs(np.fft.fft2(field - field.mean())) ** 2
    k = np.hypot(*np.meshgrid(np.fft.fftfreq(128), np.fft.fftfreq(128), indexing="ij"))
    low, high = power[(k > 0.02) & (k < 0.05)].mean(), power[(k > 0.2) & (k < 0.3)].mean()
    assert low > 100 * high  # energy at large scales, as for real SST
