"""Class probabilities of translated maps (issue 28): p_c ∝ exp(−d²_c / 2T) from the colour distances, T fitted
on validation and kept in the model file, `geonb predict --probabilities` for a translate model."""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from geonb import aerial, calibration, classtable
from geonb.errors import GeonbError
from geonb.modelfile import TrainedModel
from geonb.tasks.translate_calibration import class_probabilities, fit_on_validation, scores

from .test_errors import one_error, run_cli
from .test_translate import _model


def _noisy_maps(sigma: float, n: int = 4, size: int = 48, seed: int = 0):
    """Maps whose every pixel is its true class colour plus Gaussian noise of ``sigma`` levels (0–255), clipped:
    the nearest-colour posterior of such pixels is p_c ∝ exp(−d²_c / 2σ²), so the NLL's T is σ² (normalised)."""
    rng = np.random.default_rng(seed)
    classes = rng.integers(0, len(classtable.NAMES), (n, size, size)).astype(np.uint8)
    classes[:, :3, :3] = aerial.IGNORE  # unlabeled pixels count nowhere
    colours = classtable.COLOURS[np.where(classes == aerial.IGNORE, 0, classes)].astype(float)
    maps = np.clip(np.round(colours + rng.normal(0, sigma, colours.shape)), 0, 255).astype(np.uint8)
    return maps, classes


def test_probabilities_sum_to_one_and_their_argmax_is_the_nearest_colour_decoding():
    model = _model()
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (40, 50, 3)).astype(np.uint8)
    rgb[0, 0] = (classtable.COLOURS[0].astype(int) + classtable.COLOURS[1]) // 2  # (near) ties too
    rgb[0, 1] = classtable.COLOURS[3]
    for t in (0.01, 0.1, 1.0, 100.0):
        p = class_probabilities(model, rgb, t=t)
        assert p.shape == (40, 50, 5) and np.allclose(p.sum(-1), 1)
        assert np.array_equal(p.argmax(-1), aerial.nearest_class(rgb))
    assert class_probabilities(model, rgb, t=0.01)[0, 1, 3] > 0.999  # a class's own colour, sharp T: sure
    soft = class_probabilities(model, rgb, t=100.0)
    assert np.allclose(soft, 0.2, atol=0.01)  # a wide T: every class about equally likely


def test_temperature_fitted_on_validation_recovers_the_noise_lowers_nll_and_is_stored_and_applied(tmp_path):
    model = _model()
    sigma = 40.0
    maps, classes = _noisy_maps(sigma)
    t = fit_on_validation(model, list(maps), list(classes))
    assert model.method_args["temperature"] == t
    assert t == pytest.approx((sigma / 127.5) ** 2, rel=0.15)  # σ² in the map's normalised units
    test_maps, test_classes = _noisy_maps(sigma, seed=1)
    table, bins, figure = scores(model, test_maps, test_classes, tmp_path / "rel.png", "test")
    before, after = table.iloc[0], table.iloc[1]
    assert after.NLL < before.NLL and after.ECE < before.ECE < 1 and after.ECE < 0.03
    assert after.accuracy == before.accuracy == pytest.approx(
        (aerial.nearest_class(test_maps) == test_classes)[test_classes != aerial.IGNORE].mean())
    assert after["accuracy, 20% most uncertain"] < after["accuracy, other 80%"]
    assert figure.exists() and set(bins) == set(table.index)
    loaded = TrainedModel.load(model.save(tmp_path / "p2p.pt"))
    assert loaded.method_args["temperature"] == pytest.approx(t)
    assert ("temperature", f"{t:.3g} (class probabilities; fitted on validation pixels)") in loaded.card()
    p = class_probabilities(loaded, test_maps[0])  # the model's T, applied
    assert np.allclose(p, calibration.temper(class_probabilities(loaded, test_maps[0], t=1.0), t, axis=-1))
    model.method_args["temperature"] = 0.0  # a crafted file: every probability 0 or NaN
    with pytest.raises(GeonbError, match="temperature"):
        TrainedModel.load(model.save(tmp_path / "bad.pt"))


def test_geonb_predict_probabilities_of_a_translate_model_netcdf_zarr_geotiff_and_refusals(tmp_path, capsys):
    rasterio = pytest.importorskip("rasterio")
    from PIL import Image
    from rasterio.transform import from_origin

    model = _model()
    model.method_args["temperature"] = 0.2
    path = model.save(tmp_path / "p2p.pt")
    photo = np.random.default_rng(1).integers(0, 256, (30, 41, 3)).astype(np.uint8)
    with rasterio.open(tmp_path / "photo.tif", "w", driver="GTiff", height=30, width=41, count=3, dtype="uint8",
                       crs="EPSG:4326", transform=from_origin(55.2, 25.3, 1e-5, 1e-5)) as dst:
        dst.write(photo.transpose(2, 0, 1))
    for out in ("p.nc", "p.zarr", "p.tif"):
        assert run_cli(capsys, "predict", "--model", path, "--input", tmp_path / "photo.tif", "--out", tmp_path / out,
                       "--tile", "16", "--probabilities")[0] == 0
    names = [f"probability_{n}" for n in aerial.NAMES]
    nc, zarr = xr.load_dataset(tmp_path / "p.nc"), xr.open_zarr(tmp_path / "p.zarr").load()
    for ds in (nc, zarr):
        p = np.stack([ds[k].values for k in names], -1)
        assert np.allclose(p.sum(-1), 1, atol=1e-5) and np.array_equal(p.argmax(-1), ds["class"].values)
        assert np.array_equal(ds["class"].values, aerial.nearest_class(ds["map"].values))
        assert np.allclose(p, class_probabilities(model, ds["map"].values), atol=1e-6)
        assert ds["probability_road"].attrs["long_name"] == "probability of road" and ds["probability_road"].attrs["units"] == "1"
        assert "T = 0.2" in ds["probability_road"].attrs["comment"] and ds["spatial_ref"].attrs["crs_wkt"]
        assert ds["class"].attrs["ancillary_variables"] == " ".join([*names, "uncertainty"])
        assert np.allclose(ds["uncertainty"].values, 1 - p.max(-1))
    with rasterio.open(tmp_path / "p.tif") as src:
        bands = src.read()
        assert src.count == 6 and src.crs.to_epsg() == 4326 and src.dtypes[0] == "float32"
        assert src.descriptions == (*(f"probability of {n}" for n in aerial.NAMES), nc["uncertainty"].attrs["long_name"])
    assert np.allclose(np.moveaxis(bands[:5], 0, -1), p) and np.allclose(bands[5], nc["uncertainty"].values)
    Image.fromarray(photo).save(tmp_path / "photo.png")
    for out in ("p.png", "p.jpg", "q.tif"):  # 8-bit images, and a TIFF without a CRS, hold no float bands
        status, err = run_cli(capsys, "predict", "--model", path, "--input", tmp_path / "photo.png", "--out",
                              tmp_path / out, "--probabilities")
        assert status == 2 and "--probabilities writes a float band per class" in one_error(err) and ".nc or .zarr" in err
