"""Downscaling: seamless tiles, a short SRCNN beats bicubic on held-out real data, model
files load with weights_only, CLI round trip, and each bad input is a clear GeonbError."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from geonb import terrain
from geonb.baselines import bicubic
from geonb.cli import parse
from geonb.data import load_field
from geonb.errors import GeonbError
from geonb.metrics import rmse
from geonb.metrics.superres import masked_scores, radial_spectrum, spectrum_ratio, topographic_consistency
from geonb.modelfile import TrainedModel
from geonb.normalise import Normaliser
from geonb.predict import Predictor
from geonb.registry import get_arch
from geonb.resample import check_factor, coarsen, crop_to_multiple
from geonb.tasks.downscale.data import PARAMS, parse_cond
from geonb.tasks.downscale.infer import predict_grid
from geonb.tasks.downscale.sampling import Scene, patch_sampler
from geonb.tasks.downscale.train import save_model, train_model

torch.set_num_threads(1)
# DeepBedMap's loss weights, as the task passes them
LOSSES = {k: PARAMS[k].default for k in ("w_content", "w_adversarial", "w_topographic", "w_structural")}


def _model(arch, factor, cond_res=(), hp=None, seed=0) -> TrainedModel:
    """An untrained downscaling model (as a model file holds it), target normalised by (500, 100)."""
    cond = [f"c{i}" for i in range(len(cond_res))]
    arch_args = {"factor": factor, "cond_res": list(cond_res), **(hp or {})}
    torch.manual_seed(seed)
    net = get_arch(arch).build("generator", **arch_args)
    norms = {"target": Normaliser(500.0, 100.0), **{f"cond {c}": Normaliser(0.0, 1.0) for c in cond}}
    return TrainedModel("downscale", arch, arch_args, [net.state_dict()], norms,
                        inputs={"variable": "elevation", "cond": cond}, info={"trained_on": "test"})


@pytest.mark.parametrize("arch,factor,cond_res,hp", [
    ("srcnn", 4, (4,), {}),
    ("rsrcnn", 8, (8,), {}),
    ("srgan", 4, (4, 2), {"n_blocks": 1, "nf": 8}),
])
def test_tiled_equals_one_shot(arch, factor, cond_res, hp):
    predictor = Predictor(_model(arch, factor, cond_res, hp), float64=True)
    rng = np.random.default_rng(0)
    lr = 500 + 100 * rng.standard_normal((21, 30))  # not a multiple of the tile: ragged edge tiles too
    conds = [rng.standard_normal((21 * r, 30 * r)) for r in cond_res]
    one = predict_grid(predictor, lr, conds)
    tiled = predict_grid(predictor, lr, conds, tile=8)
    assert one.shape == (21 * factor, 30 * factor) and one.dtype == np.float64
    assert np.abs(one - tiled).max() < 1e-4
    # The halo matters: one too small leaves seams.
    seams = predict_grid(predictor, lr, conds, tile=8, halo=1)
    assert np.abs(one - seams).max() > 1e-3


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """A briefly trained srgan (2 RRDBs × 16 maps, 30 steps: its field already wider than the untrained net's)
    saved as a model file, so its effective halo was measured and stored, and loaded back."""
    tmp = tmp_path_factory.mktemp("measured")
    hr = terrain.fractal_terrain(128, 128, seed=3)
    norm = Normaliser.fit(hr)
    hp = {"n_blocks": 2, "nf": 16}
    method, history = train_model("srgan", 4, (), hp, [Scene(norm(hr[:, :96]))], Scene(norm(hr[:, 96:])), tmp / "ckpt",
                                  epochs=1, steps=30, batch_size=4, lr=1e-3, patch_lr=12, patience=1, seed=0,
                                  losses=LOSSES)
    path = save_model(tmp / "m.pt", method, "srgan", hp, "elevation", [], norm, [], "test", history)
    return TrainedModel.load(path, task="downscale"), path


def test_tiled_equals_one_shot_within_the_stored_tolerance_with_the_measured_halo(measured):
    """srgan's receptive field (37 cells here, 187 at DeepBedMap's 12 RRDBs) is far wider than what moves its
    output: the halo measured when the model was saved is smaller, and tiles with it equal one pass within the
    stored tolerance × the output's scale (the target's std), on a grid many tiles wide, in memory and in dask
    chunks. A halo narrower than the measured one does not."""
    import dask.array as dsa

    from geonb.tasks.downscale.infer import predict_lazy

    model, _ = measured
    predictor = Predictor(model)
    halo, tol, scale = model.info["effective_halo"], model.info["halo_tol"], model.norms["target"].std
    assert predictor.halo == halo and 0 < halo < predictor.net.halo == 37 and tol == 1e-3
    rng = np.random.default_rng(7)  # other terrain than the probes', ±3 stds, with noise: rougher than the training data
    z = coarsen(terrain.fractal_terrain(384, 336, seed=11), 4)
    lr = model.norms["target"].inverse(1.5 * (z - z.mean()) / z.std() + 0.3 * rng.standard_normal(z.shape))
    one = predict_grid(predictor, lr, tile=None)  # one pass, replicate-padded by the measured halo
    for tile in (16, 23):  # 6 × 6 tiles, and ragged ones
        assert np.abs(predict_grid(predictor, lr, tile=tile) - one).max() <= tol * scale, tile
    lazy = predict_lazy(predictor, dsa.from_array(lr, chunks=40), chunk=40, tile=20).compute(scheduler="threads")
    assert np.abs(lazy - one).max() <= tol * scale
    # the full receptive field as the grid's edge padding changes nothing beyond the tolerance either
    assert np.abs(predict_grid(predictor, lr, halo=predictor.net.halo) - one).max() <= tol * scale
    # the measured halo is the smallest that keeps the tolerance: a third of it leaves seams
    assert np.abs(predict_grid(predictor, lr, tile=16, halo=halo // 3) - predict_grid(predictor, lr, halo=halo // 3)).max() \
        > tol * scale
    assert ("halo", f"{halo} input cells of context per tile (measured: tiles equal one pass within 0.001 of the "
                    "output's scale); receptive field 37") in model.card()


def test_small_receptive_fields_keep_theirs(tmp_path):
    """srcnn's halo (5 cells) is below ``MEASURE_ABOVE``: nothing is measured or stored, tiles stay exact."""
    hr = terrain.fractal_terrain(64, 64, seed=2)
    norm = Normaliser.fit(hr)
    method, history = train_model("srcnn", 4, (), {}, [Scene(norm(hr))], Scene(norm(hr)), tmp_path / "ckpt", epochs=1,
                                  steps=1, batch_size=2, lr=1e-3, patch_lr=8, patience=1, seed=0)
    model = TrainedModel.load(save_model(tmp_path / "m.pt", method, "srcnn", {}, "z", [], norm, [], "test", history))
    assert "effective_halo" not in model.info and Predictor(model).halo == method.generator.halo == 5


def _jacksboro():
    return crop_to_multiple(load_field("jacksboro").isel(time=0).values.astype("float64"), 16)


def test_short_srcnn_beats_bicubic_on_held_out_region(tmp_path):
    hr = _jacksboro()[:, :-16]
    train, val, test = hr[:, :224], hr[:, 224:288], hr[:, 288:]  # column bands: test never seen
    norm = Normaliser.fit(train)
    method, history = train_model("srcnn", 4, (), {}, [Scene(norm(train))], Scene(norm(val)), tmp_path / "ckpt",
                                  epochs=4, steps=15, batch_size=8, lr=1e-3, patch_lr=12, patience=5, seed=0)
    path = save_model(tmp_path / "m.pt", method, "srcnn", {}, "elevation", [], norm, [], "jacksboro train band", history)
    lr = coarsen(test, 4)
    pred, base = predict_grid(Predictor(TrainedModel.load(path, task="downscale")), lr), bicubic(lr, 4)
    assert rmse(pred, test) < 0.99 * rmse(base, test)
    assert len(history) == 4 and (tmp_path / "ckpt" / "last.pt").exists()


def test_model_file_round_trip_weights_only(tmp_path):
    scene = Scene(terrain.fractal_terrain(64, 64, seed=2) / 100.0, [terrain.fractal_terrain(64, 64, seed=4)], "s")
    hp = {"n_blocks": 1, "nf": 8, "beta": 0.2}
    method, history = train_model("srgan", 4, (4,), hp, [scene], scene, tmp_path / "ckpt", epochs=1, steps=1,
                                  batch_size=2, lr=1e-4, patch_lr=8, patience=1, seed=0, losses=LOSSES)
    path = save_model(tmp_path / "m.pt", method, "srgan", hp, "elevation", [("c0", 4)], Normaliser(500.0, 100.0),
                      [Normaliser(0.0, 1.0)], "test", history)
    raw = torch.load(path, weights_only=True)
    assert raw["task"] == "downscale" and raw["arch"] == "srgan"
    assert raw["arch_args"] == {"factor": 4, "cond_res": [4], **hp}
    assert raw["inputs"]["cond"] == ["c0"] and raw["norms"] == {"target": [500.0, 100.0], "cond c0": [0.0, 1.0]}
    assert raw["info"]["history"] == history and len(raw["weights"]) == 1
    loaded = TrainedModel.load(path, task="downscale")
    lr, cond = np.full((6, 7), 480.0) + np.arange(7), [np.zeros((24, 28))]
    # the loaded file predicts what the trained generator predicts (no halo: the same input exactly)
    with torch.no_grad():
        direct = method.generator.eval()(torch.as_tensor((lr - 500.0) / 100.0, dtype=torch.float32)[None, None],
                                         [torch.zeros(1, 1, 24, 28)])
    expected = direct[0, 0].double().numpy() * 100.0 + 500.0
    np.testing.assert_allclose(predict_grid(Predictor(loaded), lr, cond, halo=0), expected, rtol=0, atol=1e-9)
    with pytest.raises(GeonbError, match=r"needs 1 conditioning grid\(s\) \(c0\); got 0"):
        predict_grid(Predictor(loaded), lr, [])
    with pytest.raises(GeonbError, match=r"conditioning grid 'c0' is \(6, 7\); expected \(24, 28\)"):
        predict_grid(Predictor(loaded), lr, [np.zeros((6, 7))])


def _write(path, values, lat, lon, name="elevation"):
    xr.DataArray(values, dims=("lat", "lon"), coords={"lat": lat, "lon": lon}, name=name,
                 attrs={"units": "m"}).to_netcdf(path)
    return path


def test_cli_train_and_predict(tmp_path, capsys):
    ds = terrain.terrain_dataset(64, 128, seed=1)
    hr = _write(tmp_path / "hr.nc", ds.elevation.values, ds.lat.values, ds.lon.values)
    surf = _write(tmp_path / "surf.nc", ds.surface.values, ds.lat.values, ds.lon.values, "surface")
    model = tmp_path / "m.pt"
    args = parse(["train", "--arch", "srcnn", "--data", str(hr), "--var", "elevation", "--factor", "4",
                                 "--model", str(model), "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "2",
                                 "--patch-lr", "8", "--cond", f"{surf}:surface"])
    assert args.func(args) == 0
    said = capsys.readouterr().out  # the skill in the grid's unit, beside both baselines on the same cells
    assert re.search(r"skill on the validation region .*: RMSE [\d.]+ m; bicubic [\d.]+, cubic spline [\d.]+ m: "
                     r"[\d.]+ × the better baseline", said), said
    saved = TrainedModel.load(model, task="downscale")
    assert saved.arch == "srcnn" and saved.arch_args["factor"] == 4 and saved.inputs["cond"] == ["surface"]
    lr_vals = coarsen(ds.elevation.values.astype(float), 4)
    lr = _write(tmp_path / "lr.nc", lr_vals, ds.lat.values.reshape(-1, 4).mean(1), ds.lon.values.reshape(-1, 4).mean(1))
    out = tmp_path / "sr.nc"
    args = parse(["predict", "--model", str(model), "--input", str(lr), "--var", "elevation",
                                 "--out", str(out), "--cond", f"{surf}:surface", "--tile", "8"])
    assert args.func(args) == 0
    res = xr.open_dataset(out)
    assert res.elevation.shape == (64, 128)
    np.testing.assert_allclose(res.lat.values, ds.lat.values, atol=1e-9)
    assert res.attrs["Conventions"].startswith("CF") and res.lat.attrs["units"] == "degrees_north"
    assert res.elevation.attrs["units"] == "m"
    # the written grid is the model's prediction from the low-res grid and the conditioning grid
    expected = predict_grid(Predictor(saved), lr_vals, [ds.surface.values.astype(float)], tile=8)
    np.testing.assert_allclose(res.elevation.values, expected, rtol=1e-5, atol=1e-3)
    # A conditioning grid that does not cover the target is refused.
    small = _write(tmp_path / "small.nc", ds.surface.values[:32], ds.lat.values[:32], ds.lon.values, "surface")
    args = parse(["predict", "--model", str(model), "--input", str(lr), "--var", "elevation",
                                 "--out", str(tmp_path / "x.nc"), "--cond", f"{small}:surface"])
    with pytest.raises(GeonbError, match="covers"):
        args.func(args)


@pytest.mark.parametrize("factor", [3, 6, 1, 0, "4", 2.5])
def test_factor_not_power_of_two(factor):
    with pytest.raises(GeonbError, match="power of 2"):
        check_factor(factor)


def test_grid_smaller_than_a_tile():
    with pytest.raises(GeonbError, match="smaller than one training tile"):
        patch_sampler([Scene(np.zeros((40, 40)))], 4, (), 16, 2, 1, 0)
    patch_sampler([Scene(np.zeros((64, 64)))], 4, (), 16, 2, 1, 0)  # exactly one tile is enough


def test_nan_in_target():
    hr = np.ones((32, 32))
    hr[3, 4] = np.nan
    with pytest.raises(GeonbError, match="NaN"):
        coarsen(hr, 4)


def test_bad_conditioning_spec():
    with pytest.raises(GeonbError, match="power of 2"):
        parse_cond("surface@3", 4)
    with pytest.raises(GeonbError, match="power of 2"):
        parse_cond("surface@8", 4)  # finer than the target
    assert parse_cond("surface,velocity@2", 4) == [("surface", 4), ("velocity", 2)]


def test_terrain_spectrum_is_power_law():
    k, p = radial_spectrum(terrain.fractal_terrain(256, 256, beta=2.6, seed=3))
    sel = (k > 0.02) & (k < 0.3)
    slope = np.polyfit(np.log(k[sel]), np.log(p[sel]), 1)[0]
    assert -3.3 < slope < -2.0


def test_sr_metrics():
    truth = terrain.fractal_terrain(64, 64, seed=0)
    lr = coarsen(truth, 4)
    assert topographic_consistency(truth, lr, 4) < 1e-9
    assert masked_scores(truth, truth, np.ones(truth.shape, bool))["ssim"] == pytest.approx(1.0)
    assert spectrum_ratio(truth, truth, 4) == pytest.approx(1.0)
    assert spectrum_ratio(bicubic(lr, 4), truth, 4) < 0.5


def test_srgan_content_and_topographic_losses_in_physical_units(tmp_path):
    """DeepBedMap's loss weights assume metres: the L1 terms are scaled by the normaliser's std."""
    scene = Scene(terrain.fractal_terrain(64, 64, seed=1) / 100.0)
    hist = {}
    for units in (1.0, 150.0):
        _, h = train_model("srgan", 4, (), {"n_blocks": 1, "nf": 8}, [scene], scene, tmp_path / str(units),
                           epochs=1, steps=1, batch_size=2, lr=1e-4, patch_lr=8, patience=1, seed=0, units=units,
                           losses=LOSSES)
        hist[units] = h[0]
    for key in ("content_l1", "topographic"):
        assert hist[150.0][key] == pytest.approx(150.0 * hist[1.0][key], rel=1e-4)
    assert hist[150.0]["ssim"] == pytest.approx(hist[1.0]["ssim"], rel=1e-5)


def test_quick_run_through_the_task_api(tmp_path):
    """data_prep → train → error_maps through geonb.Run (catches drift between the task and workflow)."""
    from geonb.workflow import Run

    run = Run(tmp_path / "run", arch="srcnn", factor=4, quick=True)
    run.step("error_maps")
    assert set(run.trained()) == {"srcnn_x4"} and run.model_path("srcnn_x4").exists()
    table = pd.read_csv(run.metrics_path("test_region")).set_index(["method", "factor"])
    assert {("srcnn", 4), ("bicubic", 4), ("spline", 4)} <= set(table.index)
    assert np.isfinite(table.loc[("srcnn", 4), "RMSE"]) and table.loc[("srcnn", 4), "RMSE"] > 0


def test_cli_trains_srgan_with_deepbedmap_default_weights(tmp_path, capsys):
    ds = terrain.terrain_dataset(64, 128, seed=1)
    hr = _write(tmp_path / "hr.nc", ds.elevation.values, ds.lat.values, ds.lon.values)
    model = tmp_path / "srgan.pt"
    args = parse(["train", "--arch", "srgan", "--data", str(hr), "--var", "elevation", "--model",
                                 str(model), "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "2", "--patch-lr", "8",
                                 "--n-blocks", "1", "--nf", "8", "--device", "cpu"])
    assert args.func(args) == 0
    said = capsys.readouterr().out  # the skill in the grid's unit, beside both baselines on the same cells
    assert re.search(r"skill on the validation region .*: RMSE [\d.]+ m; bicubic [\d.]+, cubic spline [\d.]+ m: "
                     r"[\d.]+ × the better baseline", said), said
    saved = TrainedModel.load(model, task="downscale")
    h = saved.info["history"][0]  # one step: the logged terms are that step's
    content = LOSSES["w_content"] * h["content_l1"] + LOSSES["w_topographic"] * h["topographic"] \
        + LOSSES["w_structural"] * (1 - h["ssim"])
    assert (h["loss"] - content) / h["adversarial"] == pytest.approx(LOSSES["w_adversarial"], rel=1e-3)


def test_the_baselines_of_the_train_skill_line_are_scored_like_the_model():
    from geonb.tasks.downscale.data import baseline, baseline_rmse

    hr = terrain.terrain_dataset(40, 48, seed=3).elevation.values.astype(float)
    valid = np.ones(hr.shape, bool)
    valid[:8] = False  # cells out of the score
    got = baseline_rmse([Scene(hr, valid=valid)], 4)
    for name in ("bicubic", "spline"):
        assert got[name] == pytest.approx(rmse(baseline(name, coarsen(hr, 4), 4), hr, valid))
    assert baseline_rmse([Scene(np.full((16, 16), 3.0))], 4) == pytest.approx({"bicubic": 0.0, "spline": 0.0}, abs=1e-4)
