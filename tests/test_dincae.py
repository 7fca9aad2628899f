"""dincae: the network, self-supervised training that beats the mean fill, model files."""
import warnings

import numpy as np
import pytest
import torch

from geonb.cloudinputs import CloudInputs
from geonb.cloudmodel import fill_cube, train_on_cube
from geonb.cv import cloud_cv_mask, synthetic_cloudy_cube
from geonb.errors import GeonbError
from geonb.modelfile import TrainedModel
from geonb.models.dincae import LOGVAR_RANGE
from geonb.registry import get_arch

SMALL = {"widths": [8, 16, 24], "crop": 48, "samples_per_day": 3, "batch_size": 4, "lr": 3e-3, "n_average": 3}


def test_registered_network_shapes():
    arch = get_arch("dincae")
    assert arch.task == "clouds"
    assert CloudInputs.channels(3) == 10  # (anomaly × precision, precision) × 3 days + lon, lat, cos, sin
    net = arch.build(in_channels=CloudInputs.channels(3), widths=[8, 12])
    out = net(torch.randn(2, 10, 32, 48) * 100)
    assert out.shape == (2, 2, 32, 48)
    assert out[:, 1].min() >= LOGVAR_RANGE[0] and out[:, 1].max() <= LOGVAR_RANGE[1]  # clamped log-variance


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    torch.manual_seed(0)
    truth, cloudy = synthetic_cloudy_cube(n_time=8, ny=48, nx=48, cover=0.35, seed=3)
    obs = np.isfinite(cloudy.values)
    held = cloud_cv_mask(obs, int(0.1 * obs.sum()), seed=0)  # scored, never seen in training
    inp = np.where(held, np.nan, cloudy.values)
    val = cloud_cv_mask(np.isfinite(inp), int(0.05 * np.isfinite(inp).sum()), seed=1)
    model = train_on_cube(inp, truth.lat.values, truth.lon.values, truth.time.values, val_points=val,
                          ckpt_dir=tmp_path_factory.mktemp("dincae"), device="cpu", epochs=15, **SMALL)
    return model, truth, inp, held


def test_brief_training_beats_the_mean_fill(trained):
    model, truth, inp, held = trained
    assert model.task == "clouds" and model.arch == "dincae" and model.inputs["window"] == 3
    assert len(model.weights) == SMALL["n_average"] and len(model.info["history"]) == 15
    assert model.method_args["sigma_scale"] > 0  # fitted on the validation points
    mean, sigma = fill_cube(model, inp, truth.lat.values, truth.lon.values, truth.time.values)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pixels never observed: mean of nothing, replaced below
        pixel_mean = np.nanmean(inp, axis=0)  # climatological fill: the pixel mean over observed days
    clim = np.broadcast_to(np.where(np.isfinite(pixel_mean), pixel_mean, np.nanmean(inp)), inp.shape)
    err = np.sqrt(np.mean((mean[held] - truth.values[held]) ** 2))
    err_clim = np.sqrt(np.mean((clim[held] - truth.values[held]) ** 2))
    print(f"dincae {err:.3f} vs pixel-mean fill {err_clim:.3f}")
    assert err < 0.92 * err_clim  # measured: 0.66 vs 0.78
    assert np.all(sigma[held] > 0)


def test_model_file_round_trip(trained, tmp_path):
    model, truth, inp, _ = trained
    model.save(tmp_path / "m.pt")
    saved = torch.load(tmp_path / "m.pt", weights_only=True)  # plain tensors/numbers/strings only
    assert saved["task"] == "clouds" and saved["arch"] == "dincae" and len(saved["weights"]) == SMALL["n_average"]
    assert saved["method_args"]["sigma_scale"] == model.method_args["sigma_scale"]
    again = TrainedModel.load(tmp_path / "m.pt", task="clouds")
    coords = (truth.lat.values, truth.lon.values, truth.time.values)
    a, sa = fill_cube(model, inp, *coords)
    b, sb = fill_cube(again, inp, *coords)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(sa, sb, rtol=1e-5, atol=1e-5)


def test_bad_training_inputs(tmp_path):
    _, cloudy = synthetic_cloudy_cube(n_time=2, ny=32, nx=32)
    coords = (cloudy.lat.values, cloudy.lon.values, cloudy.time.values)
    with pytest.raises(GeonbError, match="window"):
        train_on_cube(cloudy.values, *coords, ckpt_dir=tmp_path, device="cpu", epochs=1)
    with pytest.raises(GeonbError, match="odd"):
        train_on_cube(cloudy.values, *coords, ckpt_dir=tmp_path, device="cpu", epochs=1, window=2)
    with pytest.raises(GeonbError, match="unknown cloud-model option"):
        train_on_cube(cloudy.values, *coords, ckpt_dir=tmp_path, device="cpu", epoch=1)
    with pytest.raises(GeonbError, match="not a geonb model file"):
        torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
        TrainedModel.load(tmp_path / "other.pt", task="clouds")
    with pytest.raises(GeonbError, match="a geonb 0.1 cloud-filling model"):
        torch.save({"arch": "dincae", "params": {}, "norm": [0.0, 1.0], "states": []}, tmp_path / "old.pt")
        TrainedModel.load(tmp_path / "old.pt", task="clouds")


# ---------------------------------------------------------------- the main job's hole sets (clouds task)
def test_the_hole_sets_lie_on_observed_pixels_apart_from_each_other_and_from_validation(tmp_path):
    from geonb import Run
    from geonb.tasks.clouds.data import _field, _points

    run = Run(tmp_path, arch="dincae", quick=True)
    run.step("simulate")
    field, _ = _field(run)
    obs = np.isfinite(field.values)
    cv, val, sets = _points(run)
    assert list(sets) == ["clouds", "square", "many", "varied"]
    assert all(points.sum() > 100 for points in sets.values())  # in every set, thousands on the full cube
    union = np.zeros_like(obs)
    for points in sets.values():
        assert not (points & union).any()  # disjoint: each point is scored in one set
        union |= points
    assert (union == cv).all() and not (cv & ~obs).any() and not (val & cv).any() and not (val & ~obs).any()
    first = np.argwhere(sets["square"][0])  # one 10×10 square per 64×64 tile (clipped by clouds, never beyond)
    assert np.ptp(first[:, 0]) <= 9 and np.ptp(first[:, 1]) <= 9


def test_each_hole_set_is_filled_with_only_its_own_points_hidden():
    from geonb.tasks.clouds.data import per_set

    values = np.arange(24, dtype=float).reshape(1, 4, 6)
    sets = {"a": np.zeros_like(values, bool), "b": np.zeros_like(values, bool)}
    sets["a"][0, 0, :2], sets["b"][0, 3, 4:] = True, True
    seen = []

    def fill(inp):  # answers each hidden point with how many points its input hid
        seen.append(np.isnan(inp).sum())
        return (np.where(np.isnan(inp), np.isnan(inp).sum() * 100.0, inp),)

    out, = per_set(fill, values, sets)
    assert seen == [2, 2] and (out[sets["a"]] == 200).all() and (out[sets["b"]] == 200).all()
    assert (out[~(sets["a"] | sets["b"])] == values[~(sets["a"] | sets["b"])]).all()


def test_bad_hole_sets_are_refused_before_training(tmp_path):
    from geonb import Run

    for bad in ("square,circle", "", "many,many"):
        with pytest.raises(GeonbError, match="hole_sets=.*give a comma list of distinct clouds, square, many, varied"):
            Run(tmp_path / "r", arch="dincae", quick=True, hole_sets=bad).step("simulate")


def test_a_drawn_mask_is_a_hole_set_of_the_main_job_on_every_day_it_was_observed(tmp_path):
    from geonb import Run
    from geonb.draw import MASK_FILE, save_mask
    from geonb.tasks.clouds.data import _field, _points

    run = Run(tmp_path, arch="dincae", quick=True)
    run.step("simulate")
    field, _ = _field(run)
    drawn = np.zeros(field.shape[1:], bool)
    drawn[10:30, 40:70] = True
    save_mask(drawn, field, run.path(MASK_FILE))
    run.step("simulate")  # the saved mask makes 02 stale: rebuilt with the 'drawn' set
    cv, _, sets = _points(run)
    others = np.any([m for name, m in sets.items() if name != "drawn"], axis=0)
    assert list(sets)[-1] == "drawn" and sets["drawn"].any()
    assert (sets["drawn"] == (drawn[None] & np.isfinite(field.values) & ~others)).all()
