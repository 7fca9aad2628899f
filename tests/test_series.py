"""Downscaling a time series (issue: climate downscaling trains on many steps): `geonb train` learns from every
step of a (time, y, x) grid, split by time and region, with clouds and land out of the loss; `geonb predict`
returns every step, lazily, one chunk per step, NaN where the low-res input had none."""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from geonb import datasets
from geonb.cli import main
from geonb.errors import GeonbError
from geonb.modelfile import TrainedModel
from geonb.tasks.downscale.sampling import time_blocks


@pytest.fixture(scope="module")
def alboran_sst():
    """The real cloudy Alboran SST (10 days, 0.02°), land and clouds NaN, cut to multiples of 16 cells."""
    ds = xr.open_dataset(datasets.path("alboran"))
    return ds.SST.where(ds.mask > 0).isel(lat=slice(0, 192), lon=slice(0, 288)).load()


def test_a_time_series_is_trained_on_every_step_and_predicted_step_by_step(alboran_sst, tmp_path, capsys):
    fine, coarse, model = tmp_path / "fine.nc", tmp_path / "coarse.nc", tmp_path / "sr.pt"
    alboran_sst.to_dataset(name="SST").to_netcdf(fine)
    low = alboran_sst.coarsen(lat=4, lon=4).reduce(np.mean)  # NaN where any of the 16 cells is cloud or land
    low.to_dataset(name="SST").to_netcdf(coarse)
    assert main(["train", "--arch", "srcnn", "--data", str(fine), "--var", "SST", "--factor", "4", "--epochs", "2",
                 "--steps-per-epoch", "10", "--batch-size", "8", "--model", str(model)]) == 0
    assert TrainedModel.load(model, task="downscale").info["trained_on"].endswith("10 steps of 192x288")
    assert main(["predict", "--model", str(model), "--input", str(coarse), "--var", "SST",
                 "--out", str(tmp_path / "pred.nc")]) == 0
    pred = xr.open_dataset(tmp_path / "pred.nc")["SST"]
    assert pred.dims == ("time", "lat", "lon") and pred.shape == (10, 192, 288)
    np.testing.assert_array_equal(pred.time.values, alboran_sst.time.values)
    gaps = np.kron(np.isnan(low.values), np.ones((1, 4, 4), bool))
    assert np.array_equal(np.isnan(pred.values), gaps)  # NaN exactly under the low-res input's NaN cells
    truth = alboran_sst.values
    rmse = [[float(np.sqrt(np.nanmean((pred.values[t] - truth[s]) ** 2))) for s in range(10)] for t in range(10)]
    assert all(np.nanargmin(row) == t for t, row in enumerate(rmse))  # each step is its own day's field
    assert max(rmse[t][t] for t in range(10)) < 0.3  # °C, where the day's SST spans several degrees

    with xr.open_dataset(datasets.path("alboran"), chunks={}) as lazy:  # dask in, one chunk per step
        from geonb.predict import Predictor
        from geonb.tasks.downscale.infer import predict_steps

        low_lazy = lazy.SST.isel(lat=slice(0, 192), lon=slice(0, 288)).coarsen(lat=4, lon=4).mean().data
        out = predict_steps(Predictor(TrainedModel.load(model)), low_lazy)
        assert out.chunks[0] == (1,) * 10 and out.shape == (10, 192, 288)


def test_time_blocks_validate_on_the_last_steps_and_need_two():
    assert time_blocks(10).tolist() == [False] * 8 + [True] * 2
    assert time_blocks(2).tolist() == [False, True]
    with pytest.raises(GeonbError, match="a time series of 1 step cannot be split"):
        time_blocks(1)


def test_a_series_with_an_empty_step_is_refused(alboran_sst, tmp_path, capsys):
    cut = alboran_sst.copy()
    cut[3] = np.nan
    cut.to_dataset(name="SST").to_netcdf(tmp_path / "cut.nc")
    assert main(["train", "--arch", "srcnn", "--data", str(tmp_path / "cut.nc"), "--var", "SST",
                 "--model", str(tmp_path / "m.pt")]) == 2
    assert "has time steps without a single valid cell; drop them first." in capsys.readouterr().err
