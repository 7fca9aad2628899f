"""Downscaling σ (issue 28): the σ head leaves the mean as trained without it, its scale is the one fitted on
the val region and is applied to every prediction, `geonb predict` and the accessor write ``<var>_error`` with
CF attributes (lazy on dask equal to in memory), coverage and spread–skill are computed right, bad uses are
GeonbErrors."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import rioxarray  # noqa: F401  (registers .rio)
import torch
import xarray as xr

import geonb  # noqa: F401  (registers the .geonb accessor)
from geonb import terrain
from geonb.cli import parse
from geonb.errors import GeonbError
from geonb.metrics.probabilistic import fit_sigma_scale, score, spread_skill
from geonb.modelfile import TrainedModel
from geonb.normalise import Normaliser
from geonb.predict import Predictor
from geonb.resample import coarsen
from geonb.tasks.downscale.infer import predict_grid
from geonb.tasks.downscale.sampling import Scene, split_tensor
from geonb.tasks.downscale.train import save_model, train_model

torch.set_num_threads(1)
QUICK = dict(epochs=2, steps=3, batch_size=2, lr=1e-3, patch_lr=8, patience=3, seed=0)


def _scenes():
    ds = terrain.terrain_dataset(64, 128, seed=1)
    hr = ds.elevation.values.astype(float)
    norm = Normaliser.fit(hr)
    z = norm(hr)
    train = np.zeros(hr.shape, bool)
    train[:, :80] = True
    return hr, norm, Scene(z, [], "train", np.ones(hr.shape), train, ~train), Scene(z[:, 80:], [], "val", np.ones((64, 48)))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """srcnn ×4 trained with and without σ on the same patches and seed, both saved."""
    folder = tmp_path_factory.mktemp("sigma")
    hr, norm, train, val = _scenes()
    out = {"hr": hr, "val": val}
    for sigma in (False, True):
        method, hist = train_model("srcnn", 4, [], {}, [train], val, folder / f"ck{sigma}", sigma=sigma, **QUICK)
        out[sigma] = TrainedModel.load(save_model(folder / f"m{sigma}.pt", method, "srcnn", {}, "elevation", [], norm, [],
                                                  "test", hist, units="m"), task="downscale")
        out[f"method {sigma}"] = method
    return out


def test_the_mean_is_the_model_trained_without_sigma(trained):
    lr = coarsen(trained["hr"], 4)
    mean, sd = predict_grid(Predictor(trained[True]), lr, sigma=True)
    np.testing.assert_array_equal(mean, predict_grid(Predictor(trained[False]), lr))
    assert np.isfinite(sd).all() and (sd > 0).all()
    assert trained[True].arch_args["sigma"] is True and "sigma" not in trained[False].arch_args


def test_the_scale_is_fitted_on_the_val_region_and_applied(trained):
    model, method = trained[True], trained["method True"]
    (x, hr, _), = [split_tensor(trained["val"].tensor()[None], 4, [])]
    with torch.no_grad():
        out = method.predict(x)
    error, head_sd = (out[:, 0] - hr[:, 0]).numpy(), torch.exp(0.5 * out[:, 1]).numpy()
    scale = model.method_args["sigma_scale"]
    assert scale == pytest.approx(fit_sigma_scale(error, head_sd)) and scale != 1
    lr = coarsen(trained["hr"], 4)
    unscaled = dataclasses.replace(model, method_args={"sigma_scale": 1.0})
    np.testing.assert_allclose(predict_grid(Predictor(model), lr, sigma=True)[1],
                               scale * predict_grid(Predictor(unscaled), lr, sigma=True)[1], rtol=1e-6)


def test_coverage_spread_skill_and_scale_on_a_constructed_case():
    rng = np.random.default_rng(0)
    sigma = np.repeat(np.arange(1.0, 11.0), 20_000)  # ten σ levels, the errors drawn with twice that σ
    error = 2 * sigma * rng.standard_normal(sigma.size)
    truth = rng.standard_normal(sigma.size)
    s = score(truth, truth + error, np.ones(error.size, bool), sigma)
    assert s["cover_1sigma"] == pytest.approx(0.383, abs=0.01) and s["cover_2sigma"] == pytest.approx(0.683, abs=0.01)
    assert fit_sigma_scale(error, sigma) == pytest.approx(2.0, rel=0.02)
    table = spread_skill(error, sigma)
    assert list(table["n"]) == [20_000] * 10 and list(table["mean sigma"]) == list(np.arange(1.0, 11.0))
    np.testing.assert_allclose(table["rmse"], 2 * np.arange(1.0, 11.0), rtol=0.03)
    exact = score(np.zeros(4), np.array([0.5, -1.5, 2.5, -0.9]) * 3, np.ones(4, bool), np.full(4, 3.0))
    assert (exact["cover_1sigma"], exact["cover_2sigma"]) == (0.5, 0.75)  # within 1σ: 0.5, 0.9; within 2σ: and 1.5


def _write(path, values, lat, lon, name="elevation"):
    xr.DataArray(values, dims=("lat", "lon"), coords={"lat": lat, "lon": lon}, name=name,
                 attrs={"units": "m", "standard_name": "height"}).rio.write_crs("EPSG:4326").to_netcdf(path)
    return path


def test_cli_writes_the_error_as_a_cf_ancillary_variable_in_every_format(tmp_path):
    ds = terrain.terrain_dataset(64, 128, seed=1)
    hr = _write(tmp_path / "hr.nc", ds.elevation.values, ds.lat.values, ds.lon.values)
    model = tmp_path / "m.pt"
    args = parse(["train", "--arch", "srcnn", "--data", str(hr), "--var", "elevation", "--factor", "4", "--model",
                  str(model), "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "2", "--patch-lr", "8", "--sigma"])
    assert args.func(args) == 0
    saved = TrainedModel.load(model, task="downscale")
    lr_vals = coarsen(ds.elevation.values.astype(float), 4)
    lr = _write(tmp_path / "lr.nc", lr_vals, ds.lat.values.reshape(-1, 4).mean(1), ds.lon.values.reshape(-1, 4).mean(1))
    mean, sd = predict_grid(Predictor(saved), lr_vals, tile=8, sigma=True)
    for suffix in (".nc", ".zarr"):
        out = tmp_path / f"sr{suffix}"
        args = parse(["predict", "--model", str(model), "--input", str(lr), "--var", "elevation", "--out", str(out),
                      "--tile", "8"])
        assert args.func(args) == 0
        res = xr.open_zarr(out) if suffix == ".zarr" else xr.open_dataset(out)
        err = res["elevation_error"]
        assert res["elevation"].attrs["ancillary_variables"] == "elevation_error"
        assert err.attrs["units"] == "m" and err.attrs["standard_name"] == "height standard_error"
        assert "68 %" in err.attrs["comment"] and (err.values > 0).all()
        np.testing.assert_allclose(err.values, sd, rtol=1e-4)
        np.testing.assert_allclose(res["elevation"].values, mean, rtol=1e-5, atol=1e-3)
    args = parse(["predict", "--model", str(model), "--input", str(lr), "--var", "elevation", "--out",
                  str(tmp_path / "sr.tif"), "--tile", "8"])
    assert args.func(args) == 0
    tif = rioxarray.open_rasterio(tmp_path / "sr.tif")
    assert tif.shape == (2, 64, 128) and tif.rio.crs is not None and tif.attrs["units"] == "m"
    np.testing.assert_allclose(tif.values[1][::-1] if ds.lat.values[1] > ds.lat.values[0] else tif.values[1], sd, rtol=1e-4)


def test_accessor_error_is_lazy_on_dask_and_equals_in_memory(trained, tmp_path):
    ds = terrain.terrain_dataset(64, 128, seed=1)
    lr = xr.DataArray(coarsen(ds.elevation.values.astype(float), 4), dims=("lat", "lon"), name="elevation",
                      coords={"lat": ds.lat.values.reshape(-1, 4).mean(1), "lon": ds.lon.values.reshape(-1, 4).mean(1)},
                      attrs={"units": "m"})
    eager = lr.geonb.downscale(trained[True], tile=None)
    lazy = lr.chunk({"lat": 12, "lon": 16}).geonb.downscale(trained[True], tile=None)
    assert lazy["elevation_error"].chunks is not None and lazy.chunks is not None  # nothing computed yet
    assert eager.attrs["ancillary_variables"] == "elevation_error" and eager["elevation_error"].attrs["units"] == "m"
    np.testing.assert_allclose(lazy.values, eager.values, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(lazy["elevation_error"].values, eager["elevation_error"].values, rtol=1e-4)
    assert "elevation_error" not in lr.geonb.downscale(trained[False], tile=None).coords


def test_srgan_sigma_tiles_equal_one_pass(tmp_path):
    hr, norm, train, val = _scenes()
    hp = {"n_blocks": 1, "nf": 8}
    train = dataclasses.replace(train, clear=None)  # srgan's halo (64 cells) would keep every patch off this small grid
    method, hist = train_model("srgan", 4, [], hp, [train], val, tmp_path / "ck", sigma=True, **{**QUICK, "epochs": 1})
    model = TrainedModel.load(save_model(tmp_path / "m.pt", method, "srgan", hp, "elevation", [], norm, [], "test", hist,
                                         units="m"), task="downscale")
    predictor, lr = Predictor(model, float64=True), coarsen(hr, 4)
    (mean, sd), (tiled, tiled_sd) = (predict_grid(predictor, lr, tile=t, sigma=True) for t in (None, 8))
    assert model.arch_args["sigma"] and (sd > 0).all()
    np.testing.assert_allclose(tiled, mean, atol=1e-6)
    np.testing.assert_allclose(tiled_sd, sd, rtol=1e-6)


def test_bad_uses_are_geonb_errors(trained):
    hr, _, train, val = _scenes()
    with pytest.raises(GeonbError, match="rsrcnn network has no σ head"):
        train_model("rsrcnn", 4, [], {}, [train], val, "/nonexistent", sigma=True, **QUICK)
    with pytest.raises(GeonbError, match="has no σ; retrain it with sigma"):
        predict_grid(Predictor(trained[False]), coarsen(hr, 4), sigma=True)
