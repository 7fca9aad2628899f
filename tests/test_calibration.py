"""Class probabilities and their calibration: temperature scaling fitted by NLL (constructed over-confident
cases, stored in the model file and applied by the predictor), ECE and the reliability bins on a case worked
by hand, the most uncertain pixels, `geonb predict --probabilities` (NetCDF, zarr, GeoTIFF bands; CF
attributes; lazy on dask equal to in-memory) and its documented errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

from geonb import aerial, calibration
from geonb.errors import GeonbError
from geonb.modelfile import TrainedModel
from geonb.predict import Predictor
from geonb.tasks.segment.calibrate import choose, fit_on_validation, scores
from geonb.tasks.segment.infer import predict_lazy, segment_image

from .test_errors import one_error, run_cli, srcnn_model
from .test_segment import _model, _photo

torch.set_num_threads(1)


def _overconfident(n=20000, c=4, sharpen=3.0, seed=0):
    """Labels drawn from softmax(z); the 'network' says softmax(sharpen · z): over-confident by T = sharpen."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.5, (n, c))
    truth = torch.softmax(torch.as_tensor(z), 1).numpy()
    labels = (truth.cumsum(1) > rng.random((n, 1))).argmax(1)
    return torch.softmax(torch.as_tensor(sharpen * z), 1).numpy(), labels


def test_temperature_fitted_on_an_overconfident_case_recovers_it_and_lowers_nll_and_ece():
    probs, labels = _overconfident()
    t = calibration.fit_temperature(probs, labels)
    assert 2.7 < t < 3.3, t
    fixed = calibration.temper(probs, t)
    assert np.allclose(fixed.sum(1), 1) and np.array_equal(fixed.argmax(1), probs.argmax(1))
    assert calibration.nll(fixed, labels) < calibration.nll(probs, labels) - 0.1
    before, after = (calibration.expected_calibration_error(p, labels) for p in (probs, fixed))
    assert before > 0.1 and after < 0.02, (before, after)
    # an under-confident network is sharpened (T < 1); ignored labels count nowhere
    soft, labels = _overconfident(sharpen=0.5)
    labels[::3] = 255
    assert 0.4 < calibration.fit_temperature(soft, labels, ignore_index=255) < 0.6


def test_snapshots_are_averaged_by_probability_then_tempered():
    from geonb.methods.classification import Classification

    logits = [np.random.default_rng(k).normal(0, 30, (2, 5, 4, 6)) for k in range(3)]  # far beyond float32's exp
    mean = np.mean([torch.softmax(torch.as_tensor(z), 1).numpy() for z in logits], 0)
    out = Classification.for_prediction({"temperature": 2.5}).combine(logits)
    assert np.allclose(out["mean"], calibration.temper(mean, 2.5)) and np.allclose(out["mean"].sum(1), 1)
    assert np.array_equal(out["classes"], mean.argmax(1))
    assert np.allclose(Classification.for_prediction({}).combine(logits)["mean"], mean)


def test_ece_and_reliability_bins_on_a_case_worked_by_hand():
    # 10 pixels at confidence 0.75 (half right), 10 at 0.95 (all right), 5 unlabelled at 0.55:
    # ECE = 0.5 · |0.5 − 0.75| + 0.5 · |1 − 0.95| = 0.15
    probs = np.array([[0.75, 0.25]] * 10 + [[0.05, 0.95]] * 10 + [[0.55, 0.45]] * 5)
    labels = np.array([0, 1] * 5 + [1] * 10 + [255] * 5)
    assert calibration.expected_calibration_error(probs, labels, ignore_index=255) == pytest.approx(0.15, abs=1e-6)
    bins = calibration.reliability(probs, labels, ignore_index=255, n_bins=10)
    used = bins[bins.pixels > 0]
    assert list(used.pixels) == [10, 10] and np.allclose(used.accuracy, [0.5, 1.0])
    assert np.allclose(used.confidence, [0.75, 0.95])
    assert (used.pixels / used.pixels.sum() * (used.accuracy - used.confidence).abs()).sum() == pytest.approx(0.15)
    assert calibration.nll(probs, labels, 255) == pytest.approx(-(5 * np.log(.75) + 5 * np.log(.25) + 10 * np.log(.95)) / 20)
    # the 20 % most uncertain: the first 4 pixels at 0.75 (2 right); the rest 13 of 16 right
    split = calibration.accuracy_by_uncertainty(probs, labels, ignore_index=255)
    assert list(split.values()) == [pytest.approx(2 / 4), pytest.approx(13 / 16)]


def _sharp_model(gain=30.0):
    """A small untrained segnet made sure of itself (its logits × ``gain``: mean top probability ~0.9)."""
    model = _model("segnet")
    for k in ("out.weight", "out.bias"):
        model.weights[0][k] = model.weights[0][k] * gain
    return model


def test_temperature_is_fitted_on_validation_stored_in_the_model_file_and_applied_by_the_predictor(tmp_path):
    model = _sharp_model()
    photos = [_photo(64, 72, seed=s) for s in (1, 2)]
    own = [segment_image(Predictor(model), p) for p in photos]
    rng = np.random.default_rng(0)  # labels: the network's own classes, half of them replaced at random
    labels = [np.where(rng.random(o.shape) < 1 / 2, rng.integers(0, 5, o.shape), o).astype(np.uint8) for o in own]
    pairs = [aerial.Pair(p, aerial.colourise(lab), lab, f"val {k}") for k, (p, lab) in enumerate(zip(photos, labels))]
    t, alpha = fit_on_validation(model, pairs)  # trained without class weights: no prior to divide out
    assert t > 1.2 and model.method_args["temperature"] == t and alpha == 0 and "prior_alpha" not in model.method_args
    table, _ = scores([segment_image(Predictor(model), p.photo, probabilities=True)[1] for p in pairs], pairs,
                      model.method_args)
    before, after = table.iloc[0], table.iloc[1]
    assert after.NLL < before.NLL and after.ECE < before.ECE and after.accuracy == before.accuracy
    loaded = TrainedModel.load(model.save(tmp_path / "seg.pt"))
    assert loaded.method_args["temperature"] == pytest.approx(t)
    assert ("temperature", f"{t:.3g} (class probabilities; fitted on validation pixels)") in loaded.card()
    classes, probs = segment_image(Predictor(loaded, float64=True), photos[0], probabilities=True)
    loaded.method_args["temperature"] = 1.0
    raw_classes, raw = segment_image(Predictor(loaded, float64=True), photos[0], probabilities=True)
    assert np.allclose(probs.sum(0), 1) and np.array_equal(classes, raw_classes)
    assert np.allclose(probs, calibration.temper(raw, t, axis=0)) and probs.max(0).mean() < raw.max(0).mean()
    model.method_args["temperature"] = -1.0  # a crafted file: would flip every probability ranking
    with pytest.raises(GeonbError, match="temperature"):
        TrainedModel.load(model.save(tmp_path / "bad.pt"))


def test_class_weights_prior_is_divided_out_when_validation_says_so_and_applied_by_the_predictor(tmp_path):
    # a network trained with class weights w leans to the rare classes: p_w ∝ w · p. Validation labels drawn
    # from the unweighted p: dividing w back out (α = 1) is right, and the fit must find an α > 0
    model = _sharp_model(gain=3.0)
    photos = [_photo(64, 72, seed=s) for s in (1, 2)]
    raw = [segment_image(Predictor(model, float64=True), p, probabilities=True)[1] for p in photos]
    weights = [3.0, 1.0, 0.3, 1.0, 1.0]
    rng = np.random.default_rng(0)
    labels = []
    for q in raw:
        p = calibration.unweight(q, weights, 1.0, axis=0).reshape(5, -1).T
        labels.append((p.cumsum(1) > rng.random((len(p), 1))).argmax(1).reshape(q.shape[1:]).astype(np.uint8))
    pairs = [aerial.Pair(p, aerial.colourise(lab), lab, f"val {k}") for k, (p, lab) in enumerate(zip(photos, labels))]
    model.info["class_weights"] = weights
    t, alpha = fit_on_validation(model, pairs)
    assert alpha > 0 and model.method_args["prior_alpha"] == alpha and model.method_args["class_weights"] == weights
    loaded = TrainedModel.load(model.save(tmp_path / "seg.pt"))
    assert ("class prior", f"divided out: p / w^{alpha:.3g}, w the class weights (chosen on validation pixels)") in loaded.card()
    classes, probs = segment_image(Predictor(loaded, float64=True), photos[0], probabilities=True)
    expected = calibration.temper(calibration.unweight(raw[0], weights, alpha, axis=0), t, axis=0)
    assert np.allclose(probs, expected, atol=1e-6) and np.array_equal(classes, expected.argmax(0))
    assert not np.array_equal(classes, raw[0].argmax(0))  # the class map moves off the weighted network's
    # 04's "before" row is the network's own probabilities, recovered from the calibrated ones
    table, _ = scores([segment_image(Predictor(loaded), p.photo, probabilities=True)[1] for p in pairs], pairs,
                      loaded.method_args)
    assert table.index[1] == f"after (T = {t:.3g}, prior ÷ w^{alpha:.3g})" and table.NLL.iloc[1] < table.NLL.iloc[0]
    own = np.concatenate([r.reshape(5, -1).T for r in raw]), np.concatenate([p.classes.ravel() for p in pairs])
    assert table.NLL.iloc[0] == pytest.approx(calibration.nll(*own), abs=1e-4)
    assert table.ECE.iloc[0] == pytest.approx(calibration.expected_calibration_error(*own), abs=1e-4)
    # crafted files: a share outside 0–1, weights for another number of classes, or none
    model.method_args["prior_alpha"] = 1.5
    with pytest.raises(GeonbError, match="prior_alpha'] is 1.5"):
        TrainedModel.load(model.save(tmp_path / "bad.pt"))
    model.method_args.update(prior_alpha=0.5, class_weights=[1.0, 2.0])
    with pytest.raises(GeonbError, match="divides out class weights, but the file has 2 for its network's 5 classes"):
        TrainedModel.load(model.save(tmp_path / "bad2.pt"))
    del model.method_args["class_weights"]
    with pytest.raises(GeonbError, match="the file has none for its network's 5 classes"):
        TrainedModel.load(model.save(tmp_path / "bad3.pt"))


def test_the_prior_share_of_least_validation_nll_is_kept_only_if_the_class_map_keeps_its_mean_iou():
    # the shipped unet_seg's tile_2 numbers (α, T, NLL, mean IoU): α = 1 has the least NLL but costs the map
    fits = [(0.0, 0.809, 0.981, 0.4171), (0.25, 0.760, 0.879, 0.4179), (0.5, 0.753, 0.812, 0.4112),
            (0.75, 0.792, 0.781, 0.4034), (1.0, 0.879, 0.779, 0.3930)]
    assert choose(fits) == (0.760, 0.25)
    assert choose([fits[0], *[(a, t, nll, 0.41) for a, t, nll, _ in fits[1:]]]) == (0.809, 0.0)  # every α > 0 costs
    assert choose([(a, t, nll, 0.5) for a, t, nll, _ in fits]) == (0.879, 1.0)  # none costs: least NLL


def test_unweight_divides_the_prior_out_and_back_in():
    probs = np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]])
    w = [2.0, 1.0, 0.0]  # a class absent from training (weight 0) divides nothing
    out = calibration.unweight(probs, w, 1.0)
    assert np.allclose(out, [[0.25 / 0.75, 0.3 / 0.75, 0.2 / 0.75], [0.05 / 0.95, 0.1 / 0.95, 0.8 / 0.95]])
    assert np.allclose(calibration.unweight(out, w, -1.0), probs)
    assert np.allclose(calibration.unweight(probs.T, w, 0.5, axis=0), calibration.unweight(probs, w, 0.5).T)


def test_lazy_probabilities_on_dask_equal_in_memory():
    model = _model("unet_seg")
    model.method_args["temperature"] = 1.7
    photo = _photo(150, 170, seed=3)
    classes, probs = segment_image(Predictor(model, float64=True), photo, probabilities=True)
    da = xr.DataArray(photo, dims=("y", "x", "band")).chunk({"y": 64, "x": 64, "band": 3})
    lazy = predict_lazy(model, da, float64=True, probabilities=True)
    assert lazy["probability_water"].chunks == ((64, 64, 22), (64, 64, 42))  # predicted, not yet computed
    out = lazy.compute(scheduler="threads")
    assert np.array_equal(out["class"].values, classes)
    got = np.stack([out[f"probability_{n}"].values for n in aerial.NAMES])
    assert np.abs(got - probs).max() < 1e-6 and np.allclose(got.sum(0), 1, atol=1e-5)
    assert np.allclose(out["uncertainty"].values, 1 - probs.max(0), atol=1e-6)
    assert out["probability_road"].attrs["long_name"] == "probability of road" and out["uncertainty"].attrs["units"] == "1"
    image = xr.DataArray(photo.transpose(2, 0, 1), dims=("band", "y", "x"))  # rioxarray's layout, in memory
    same = image.geonb.segment(model, probabilities=True)
    assert np.array_equal(same["class"].values, out["class"].values) and "history" in same.attrs
    assert np.abs(same["probability_water"].values - out["probability_water"].values).max() < 1e-5


def test_geonb_predict_probabilities_netcdf_zarr_geotiff_and_the_documented_errors(tmp_path, capsys):
    rasterio = pytest.importorskip("rasterio")
    from PIL import Image
    from rasterio.transform import from_origin

    model = _model("unet_seg")
    model.method_args["temperature"] = 1.5
    path = model.save(tmp_path / "seg.pt")
    photo = _photo(40, 56, seed=1)
    photo[:5, :7] = 0  # nodata
    with rasterio.open(tmp_path / "image.tif", "w", driver="GTiff", height=40, width=56, count=3, dtype="uint8",
                       crs="EPSG:4326", transform=from_origin(55.2, 25.3, 1e-5, 1e-5), nodata=0) as dst:
        dst.write(photo.transpose(2, 0, 1))
    for out in ("p.nc", "p.zarr", "p.tif"):
        assert run_cli(capsys, "predict", "--model", path, "--input", tmp_path / "image.tif", "--out", tmp_path / out,
                       "--probabilities")[0] == 0
    nc, zarr = xr.load_dataset(tmp_path / "p.nc"), xr.open_zarr(tmp_path / "p.zarr").load()
    names = [f"probability_{n}" for n in aerial.NAMES]
    for ds in (nc, zarr):
        p = np.stack([ds[k].values for k in names])
        assert np.isnan(p[:, :5, :7]).all() and np.allclose(p[:, 5:].sum(0), 1, atol=1e-5)
        assert np.array_equal(ds["class"].values[5:], p[:, 5:].argmax(0))
        assert ds["probability_land"].attrs["long_name"] == "probability of land" and ds["probability_land"].attrs["units"] == "1"
        assert "T = 1.5" in ds["probability_land"].attrs["comment"]
        assert ds["class"].attrs["ancillary_variables"] == " ".join([*names, "uncertainty"])
    assert np.allclose(nc["uncertainty"].values[5:], 1 - p[:, 5:].max(0))
    with rasterio.open(tmp_path / "p.tif") as src:
        bands = src.read()
        assert src.count == 6 and src.crs.to_epsg() == 4326 and src.dtypes[0] == "float32"
        assert src.descriptions == (*(f"probability of {n}" for n in aerial.NAMES), nc["uncertainty"].attrs["long_name"])
    assert np.allclose(bands[:5, 5:], p[:, 5:]) and np.allclose(bands[5, 5:], nc["uncertainty"].values[5:])
    Image.fromarray(photo).save(tmp_path / "image.png")
    for out in ("p.png", "q.tif"):  # 8-bit images, and a TIFF without a CRS, hold no float bands
        status, err = run_cli(capsys, "predict", "--model", path, "--input", tmp_path / "image.png", "--out",
                              tmp_path / out, "--probabilities")
        assert status == 2 and "--probabilities writes a float band per class" in one_error(err) and ".nc or .zarr" in err
    grid = srcnn_model(tmp_path / "srcnn.pt")
    status, err = run_cli(capsys, "predict", "--model", grid, "--input", tmp_path / "p.nc", "--out", tmp_path / "x.nc",
                          "--probabilities")
    assert status == 2 and "--probabilities does not apply to a downscale model" in one_error(err)
