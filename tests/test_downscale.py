"""Downscaling: seamless tiles, a short SRCNN beats bicubic on held-out real data, model
files load with weights_only, CLI round trip, and each bad input is a clear GeonbError."""
from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch
import xarray as xr

from geonb import superres as sr
from geonb import terrain
from geonb.data import load_field
from geonb.errors import GeonbError
from geonb.metrics import rmse
from geonb.registry import get_arch
from geonb.tiling import Normaliser

torch.set_num_threads(1)


def _meta(arch, factor, cond_res=(), hp=None):
    cond = [(f"c{i}", r) for i, r in enumerate(cond_res)]
    return sr.model_meta(arch, factor, "elevation", cond, Normaliser(500.0, 100.0),
                         [Normaliser(0.0, 1.0)] * len(cond), hp or {}, "test")


@pytest.mark.parametrize("arch,factor,cond_res,hp", [
    ("srcnn", 4, (4,), {}),
    ("rsrcnn", 8, (8,), {}),
    ("srgan", 4, (4, 2), {"n_blocks": 1, "nf": 8}),
])
def test_tiled_equals_one_shot(arch, factor, cond_res, hp):
    meta = _meta(arch, factor, cond_res, hp)
    torch.manual_seed(0)
    model = sr.build_model(meta).eval()
    rng = np.random.default_rng(0)
    lr = 500 + 100 * rng.standard_normal((21, 30))  # not a multiple of the tile: ragged edge tiles too
    conds = [rng.standard_normal((21 * r, 30 * r)) for r in cond_res]
    one = sr.predict_grid(model, meta, lr, conds, float64=True)
    tiled = sr.predict_grid(model, meta, lr, conds, tile=8, float64=True)
    assert one.shape == (21 * factor, 30 * factor)
    assert np.abs(one - tiled).max() < 1e-4
    # The halo matters: one too small leaves seams.
    seams = sr.predict_grid(model, meta, lr, conds, tile=8, halo=1, float64=True)
    assert np.abs(one - seams).max() > 1e-3


def _jacksboro():
    return sr.crop_to_multiple(load_field("jacksboro").isel(time=0).values.astype("float64"), 16)


def test_short_srcnn_beats_bicubic_on_held_out_region(tmp_path):
    hr = _jacksboro()[:, :-16]
    train, val, test = hr[:, :224], hr[:, 224:288], hr[:, 288:]  # column bands: test never seen
    norm = Normaliser.fit(train)
    model, history = sr.train_model("srcnn", 4, (), {}, [sr.Scene(norm(train))], sr.Scene(norm(val)), tmp_path,
                                    epochs=4, steps=15, batch_size=8, lr=1e-3, patch_lr=12, patience=5, seed=0)
    meta = _meta("srcnn", 4)
    meta["norm"] = [norm.mean, norm.std]
    lr = sr.coarsen(test, 4)
    pred, base = sr.predict_grid(model, meta, lr), sr.bicubic(lr, 4)
    assert rmse(pred, test) < 0.99 * rmse(base, test)
    assert len(history) == 4 and (tmp_path / "last.pt").exists()


def test_model_file_round_trip_weights_only(tmp_path):
    meta = _meta("srgan", 4, (4,), {"n_blocks": 1, "nf": 8, "beta": 0.2})
    model = sr.build_model(meta).eval()
    path = sr.save_model(tmp_path / "m.pt", model, meta)
    raw = torch.load(path, weights_only=True)
    assert raw["arch"] == "srgan" and raw["factor"] == 4 and raw["cond"] == ["c0"] and raw["norm"] == [500.0, 100.0]
    loaded, meta2 = sr.load_model(path)
    lr, cond = np.full((6, 7), 480.0), [np.zeros((24, 28))]
    np.testing.assert_array_equal(sr.predict_grid(model, meta, lr, cond), sr.predict_grid(loaded, meta2, lr, cond))


def _write(path, values, lat, lon, name="elevation"):
    xr.DataArray(values, dims=("lat", "lon"), coords={"lat": lat, "lon": lon}, name=name,
                 attrs={"units": "m"}).to_netcdf(path)
    return path


def _parser():
    parser = argparse.ArgumentParser()
    sr.add_cli(parser.add_subparsers())
    return parser


def test_cli_train_and_predict(tmp_path):
    ds = terrain.terrain_dataset(64, 128, seed=1)
    hr = _write(tmp_path / "hr.nc", ds.elevation.values, ds.lat.values, ds.lon.values)
    surf = _write(tmp_path / "surf.nc", ds.surface.values, ds.lat.values, ds.lon.values, "surface")
    model = tmp_path / "m.pt"
    args = _parser().parse_args(["train", "--arch", "srcnn", "--data", str(hr), "--var", "elevation", "--factor", "4",
                                 "--model", str(model), "--epochs", "1", "--steps", "2", "--batch-size", "2",
                                 "--patch", "8", "--cond", f"{surf}:surface"])
    args.func(args)
    lr_vals = sr.coarsen(ds.elevation.values.astype(float), 4)
    lr = _write(tmp_path / "lr.nc", lr_vals, ds.lat.values.reshape(-1, 4).mean(1), ds.lon.values.reshape(-1, 4).mean(1))
    out = tmp_path / "sr.nc"
    args = _parser().parse_args(["predict", "--model", str(model), "--input", str(lr), "--var", "elevation",
                                 "--out", str(out), "--cond", f"{surf}:surface", "--tile", "8"])
    args.func(args)
    res = xr.open_dataset(out)
    assert res.elevation.shape == (64, 128)
    np.testing.assert_allclose(res.lat.values, ds.lat.values, atol=1e-9)
    assert res.attrs["Conventions"].startswith("CF") and res.lat.attrs["units"] == "degrees_north"
    assert res.elevation.attrs["units"] == "m"
    # A conditioning grid that does not cover the target is refused.
    small = _write(tmp_path / "small.nc", ds.surface.values[:32], ds.lat.values[:32], ds.lon.values, "surface")
    args = _parser().parse_args(["predict", "--model", str(model), "--input", str(lr), "--var", "elevation",
                                 "--out", str(tmp_path / "x.nc"), "--cond", f"{small}:surface"])
    with pytest.raises(GeonbError, match="covers"):
        args.func(args)


@pytest.mark.parametrize("factor", [3, 6, 1, 0, "4", 2.5])
def test_factor_not_power_of_two(factor):
    with pytest.raises(GeonbError, match="power of 2"):
        sr.check_factor(factor)


def test_grid_smaller_than_a_tile():
    with pytest.raises(GeonbError, match="smaller than one training tile"):
        sr.patch_sampler([sr.Scene(np.zeros((40, 40)))], 4, 16, 2, 1, 0)


def test_nan_in_target():
    hr = np.ones((32, 32))
    hr[3, 4] = np.nan
    with pytest.raises(GeonbError, match="NaN"):
        sr.coarsen(hr, 4)


def test_bad_conditioning_spec():
    with pytest.raises(GeonbError, match="power of 2"):
        sr.parse_cond("surface@3", 4)


def test_terrain_spectrum_is_power_law():
    k, p = sr.radial_spectrum(terrain.fractal_terrain(256, 256, beta=2.6, seed=3))
    sel = (k > 0.02) & (k < 0.3)
    slope = np.polyfit(np.log(k[sel]), np.log(p[sel]), 1)[0]
    assert -3.3 < slope < -2.0


def test_sr_metrics():
    truth = terrain.fractal_terrain(64, 64, seed=0)
    lr = sr.coarsen(truth, 4)
    assert sr.topographic_consistency(truth, lr, 4) < 1e-9
    assert sr.ssim(truth, truth) == pytest.approx(1.0)
    assert sr.spectrum_ratio(truth, truth, 4) == pytest.approx(1.0)
    assert sr.spectrum_ratio(sr.bicubic(lr, 4), truth, 4) < 0.5


def test_srgan_content_and_topographic_losses_in_physical_units(tmp_path):
    """DeepBedMap's loss weights assume metres: the L1 terms are scaled by the normaliser's std."""
    scene = sr.Scene(terrain.fractal_terrain(64, 64, seed=1) / 100.0)
    hist = {}
    for units in (1.0, 150.0):
        _, h = sr.train_model("srgan", 4, (), {"n_blocks": 1, "nf": 8}, [scene], scene, tmp_path / str(units),
                              epochs=1, steps=1, batch_size=2, lr=1e-4, patch_lr=8, patience=1, seed=0, units=units)
        hist[units] = h[0]
    for key in ("content_l1", "topographic"):
        assert hist[150.0][key] == pytest.approx(150.0 * hist[1.0][key], rel=1e-4)
    assert hist[150.0]["ssim"] == pytest.approx(hist[1.0]["ssim"], rel=1e-5)


def test_quick_run_through_the_task_api(tmp_path):
    """data_prep → train → error_maps through geonb.Run (catches drift between the task and workflow)."""
    from geonb.workflow import Run

    run = Run(tmp_path / "run", arch="srcnn", factor=4, quick=True)
    run.step("error_maps")
    table = open(run.path("eval", "metrics.csv")).read()
    assert "srcnn" in table and "bicubic" in table
