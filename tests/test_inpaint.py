import numpy as np
import pytest

import geonb
from geonb import GeonbError, synthetic_sst
from geonb.modelfile import TrainedModel
from geonb.predict import Predictor
from geonb.tasks.inpaint.infer import fill_holes, network_inputs


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    """Ten days of synthetic SST: a time split, so the per-pixel-mean baseline exists."""
    path = tmp_path_factory.mktemp("data") / "synthetic.nc"
    synthetic_sst(n_time=10, ny=96, nx=96).to_dataset().to_netcdf(path)
    return path


def _run(root, series, **params):
    settings = dict(arch="unet", quick=True, data=str(series), var="sst", patch=32, overlap=16, hole_sets="square,many,varied")
    return geonb.Run(root, **{**settings, **params})


@pytest.mark.slow
def test_quick_unet_beats_per_pixel_mean_on_held_out_holes(tmp_path, series):
    # prefill=zero: the seed's input, so everything the holes get was learned; 15 epochs (the quick 5 left
    # 'varied' at 1.1 × the pixel mean on one CPU and 0.9 × on another: a margin too thin to test)
    table = _run(tmp_path, series, prefill="zero", hole_weight=1.0, lr=3e-3, epochs=15).step("error_maps").tables[
        "RMSE per hole set"]
    for kind in ("square", "many", "varied"):
        unet, baseline = table.loc[(kind, "unet"), "rmse_holes"], table.loc[(kind, "pixel_mean"), "rmse_holes"]
        assert unet < 0.8 * baseline, (kind, unet, baseline)
    model = tmp_path / "inpaint" / "models" / "unet" / "model.pt"
    assert geonb.Run(tmp_path, arch="unet").model_path("unet") == model
    predictor = Predictor(TrainedModel.load(model, task="inpaint"))
    assert predictor.model.inputs["prefill"] == "zero" and predictor.model.inputs["variable"] == "sst"
    field = synthetic_sst(n_time=2, ny=36, nx=44, seed=5).values  # any size, land included
    hidden = np.zeros_like(field, bool)
    hidden[:, 10:20, 20:30] = True
    out = fill_holes(predictor, field, hidden)
    assert out.shape == field.shape and np.isfinite(out[hidden & np.isfinite(field)]).all()
    assert np.isnan(out[~np.isfinite(field)]).all()  # land stays NaN


@pytest.mark.slow
def test_ctxgan_reports_discriminator_accuracy(tmp_path, series):
    run = _run(tmp_path, series, arch="ctxgan", epochs=2)
    run.step("train")
    model = TrainedModel.load(tmp_path / "inpaint" / "models" / "ctxgan" / "model.pt", task="inpaint")
    assert model.arch == "ctxgan" and set(run.trained()) == {"ctxgan"}
    history = model.info["history"]
    assert len(history) == 2 and np.isfinite([h["d_loss"] for h in history]).all()
    assert history[-1]["d_acc"] > 0.6  # it learns to tell real from inpainted, above chance


def test_steps_rebuild_only_what_changed(tmp_path, series):
    run = _run(tmp_path, series)
    run.step("simulate")
    prep = (tmp_path / "inpaint" / "patches.nc").stat().st_mtime_ns
    holes = (tmp_path / "inpaint" / "holes.nc").stat().st_mtime_ns
    again = _run(tmp_path, series, hole_sets="square")
    assert again.is_current("data_prep") and not again.is_current("simulate")
    again.require("simulate")
    assert (tmp_path / "inpaint" / "patches.nc").stat().st_mtime_ns == prep
    assert (tmp_path / "inpaint" / "holes.nc").stat().st_mtime_ns != holes


def test_inputs_never_show_hidden_or_land_values():
    field = np.array([[[1.0, 2.0], [np.nan, 4.0]]])
    hidden = np.array([[[False, True], [False, False]]])
    x = network_inputs(field, hidden, "zero")
    assert x[0, 0].tolist() == [[1.0, 0.0], [0.0, 4.0]] and x[0, 1].tolist() == [[1, 0], [0, 1]]
    with pytest.raises(GeonbError, match="prefill 'cubic'"):
        network_inputs(field, hidden, "cubic")


def test_bad_run_parameters_are_named():
    with pytest.raises(GeonbError, match="unknown arch 'vgg'; valid names: .*ctxgan.*unet"):
        geonb.Run("/tmp/never", arch="vgg")
    with pytest.raises(GeonbError, match=r"unknown parameter 'epoch'; inpaint takes: .*epochs"):
        geonb.Run("/tmp/never", arch="unet", epoch=3)


def test_saving_a_drawn_mask_makes_the_hole_sets_stale(tmp_path, series):
    run = _run(tmp_path, series)
    run.step("simulate")
    assert run.is_current("simulate")
    field = geonb.load_field(str(series), "sst")
    mask = field.isel(time=0).notnull().astype("uint8").rename("mask")
    mask.to_netcdf(tmp_path / "inpaint" / "drawn_mask.nc")
    assert run.is_current("data_prep") and not run.is_current("simulate")
    run.require("simulate")
    assert "drawn" in geonb.tasks.inpaint.steps.load_holes(run)
