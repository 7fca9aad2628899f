"""The segment task: the networks' receptive fields, tiled = one-shot (and the seam of too small a halo),
the classification loss with ignored pixels and class weights, schemes, the documented errors, lazy
chunk-by-chunk prediction (also on a dask.distributed cluster), `geonb predict` with GeoTIFF/PNG in and
GeoTIFF/NetCDF/zarr out, and a short training that beats the per-pixel baselines on held-out rows."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr
from PIL import Image

from geonb import Run, aerial, classtable, methods
from geonb.cli import main
from geonb.errors import GeonbError
from geonb.modelfile import TrainedModel
from geonb.predict import Predictor
from geonb.registry import NETWORKS, get_arch
from geonb.tasks.segment.data import NORM, image_pairs
from geonb.tasks.segment.infer import predict_lazy, segment_image
from geonb.tasks.segment.steps import forest_classifier

torch.set_num_threads(1)  # small tensors: one thread is fastest, and CI shares its cores
ARCHS = ("segnet", "fcn", "unet_seg", "deeplabv3plus")


@pytest.mark.parametrize("name", ARCHS)
def test_receptive_field_is_inside_the_halo(name):
    net = NETWORKS.build(name, width=2, depth=3).eval()
    for p in net.parameters():
        p.data = p.data.abs() * 0.3  # positive weights: no cancellation hides a dependence
    n = max(8 * 14, 2 * (net.halo + net.multiple))  # the support must not reach the image's edge
    x = torch.rand(1, 3, n, n, requires_grad=True)  # varied input: max-pooling picks varied positions
    out = net(x)
    assert out.shape == (1, 5, n, n)
    out[0, :, n // 2, n // 2].sum().backward()
    support = torch.nonzero(x.grad[0].abs().sum(0))
    assert net.multiple == 8 and net.halo % net.multiple == 0
    assert int((support - n // 2).abs().max()) <= net.halo


def _model(name, n_classes=5, depth=3, seed=0) -> TrainedModel:
    torch.manual_seed(seed)
    net = NETWORKS.build(name, n_classes=n_classes, width=4, depth=depth)
    with torch.no_grad():  # non-trivial BatchNorm statistics
        net.train()
        net(torch.randn(4, 3, 64, 64))
    args = {"in_channels": 3, "n_classes": n_classes, "width": 4, "depth": depth}
    return TrainedModel("segment", name, args, [net.state_dict()], {"photo": NORM},
                        inputs={"classes": list(classtable.NAMES[:n_classes])})


def _photo(h=75, w=91, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3)).astype(np.uint8)


@pytest.mark.parametrize("name", ARCHS)
def test_tiled_equals_one_shot_and_too_small_a_halo_shows_the_seam(name):
    pred = Predictor(_model(name), float64=True)
    photo = _photo()
    one, p_one = segment_image(pred, photo, probabilities=True)
    tiled, p_tiled = segment_image(pred, photo, tile=32, probabilities=True)
    assert one.shape == photo.shape[:2] and one.dtype == np.uint8
    exact = np.abs(p_one - p_tiled).max()
    assert exact < 1e-12 and np.array_equal(one, tiled)
    _, p_seam = segment_image(pred, photo, tile=32, halo=pred.multiple, probabilities=True)
    diff = np.abs(p_one - p_seam).max(0)
    # the control: a halo smaller than the receptive field changes the output (random weights: small
    # probabilities' changes, but a million times the float64 round-off of the exact tiling) …
    assert diff.max() > max(1e6 * exact, 1e-7)
    border = np.zeros_like(diff, bool)
    border[[31, 32, 63, 64]] = border[:, [31, 32, 63, 64]] = True
    assert diff[border].mean() > diff[~border].mean()  # … most at the tile borders: a seam


def test_test_time_augmentation_makes_the_prediction_turn_and_flip_with_the_image():
    model = _model("unet_seg")
    photo = _photo(64, 64)  # a multiple of 2^depth: no padding, which would sit on one side only
    views = {"flip left-right": lambda a: a[..., ::-1], "flip up-down": lambda a: a[..., ::-1, :],
             "turn 90°": lambda a: np.rot90(a, 1, (-2, -1))}

    def probs(tta, image):
        model.method_args["tta"] = tta
        return segment_image(Predictor(model, float64=True), image, probabilities=True)[1]

    for tta in (False, True):
        p = probs(tta, photo)
        worst = max(np.abs(probs(tta, np.ascontiguousarray(np.moveaxis(view(np.moveaxis(photo, -1, 0)), 0, -1)))
                           - view(p)).max() for view in views.values())
        if tta:
            assert worst < 1e-9 and np.allclose(p.sum(0), 1)
        else:  # the control: a network alone does not turn with its input
            assert worst > 1e-4
    model.method_args["tta"] = True
    tiled = segment_image(Predictor(model, float64=True), _photo(), tile=32, probabilities=True)[1]
    assert np.abs(tiled - segment_image(Predictor(model, float64=True), _photo(), probabilities=True)[1]).max() < 1e-12


def test_geonb_predict_tta_turns_it_on_for_one_prediction_and_is_refused_by_other_tasks(tmp_path, capsys):
    from .test_errors import one_error, run_cli, srcnn_model

    path = _model("unet_seg").save(tmp_path / "seg.pt")
    photo = _photo(48, 64, seed=2)
    Image.fromarray(photo).save(tmp_path / "image.png")
    for flags, out in (([], "plain.nc"), (["--tta"], "tta.nc")):
        assert main(["predict", "--model", str(path), "--input", str(tmp_path / "image.png"), "--out",
                     str(tmp_path / out), "--probabilities", *flags]) == 0
    plain, tta = (xr.load_dataset(tmp_path / out) for out in ("plain.nc", "tta.nc"))
    model = TrainedModel.load(path)
    model.method_args["tta"] = True
    expected = segment_image(Predictor(model), photo, probabilities=True)[1]
    got = np.stack([tta[f"probability_{n}"].values for n in aerial.NAMES])
    assert np.abs(got - expected).max() < 1e-5 and np.array_equal(tta["class"].values, expected.argmax(0))
    assert np.abs(got - np.stack([plain[f"probability_{n}"].values for n in aerial.NAMES])).max() > 1e-4
    assert "8 flips" in tta["class"].attrs["comment"] and "comment" not in plain["class"].attrs
    assert not TrainedModel.load(path).method_args.get("tta")  # the model file is read, never changed
    status, err = run_cli(capsys, "predict", "--model", srcnn_model(tmp_path / "srcnn.pt"), "--input",
                          tmp_path / "plain.nc", "--out", tmp_path / "x.nc", "--tta")
    assert status == 2 and "--tta does not apply to a downscale model" in one_error(err)


def test_tile_must_fit_the_pooling_grid_and_the_image():
    pred = Predictor(_model("segnet"))
    with pytest.raises(GeonbError, match="tile=12 is not a multiple of 8"):
        segment_image(pred, _photo(), tile=12)
    with pytest.raises(GeonbError, match=r"tile=128 is larger than the 75×91 px image"):
        segment_image(pred, _photo(), tile=128)


def test_cross_entropy_ignores_unlabeled_pixels_and_weights_classes():
    arch = get_arch("segnet")
    m = methods.build(arch, {"n_classes": 3, "width": 2, "depth": 2}, lr=1e-3, seed=0, device="cpu",
                      class_weights=[1.0, 2.0, 0.5], ignore_index=classtable.IGNORE)
    logits = torch.randn(2, 3, 8, 8)
    y = torch.randint(0, 3, (2, 8, 8))
    y[:, :4] = classtable.IGNORE
    changed = logits.clone()
    changed[:, :, :4] += 100 * torch.randn(2, 3, 4, 8)  # predictions on unlabeled pixels do not count
    assert float(m.loss(logits, y, None)) == pytest.approx(float(m.loss(changed, y, None)))
    w = torch.tensor([1.0, 2.0, 0.5])[y[:, 4:]]
    nll = -torch.log_softmax(logits, 1)[:, :, 4:].gather(1, y[:, None, 4:].long())[:, 0]
    assert float(m.loss(logits, y, None)) == pytest.approx(float((w * nll).sum() / w.sum()), rel=1e-5)
    logs = m.train_step((torch.randn(2, 3, 8, 8), y, None))
    assert np.isfinite(logs["loss"])


def test_median_frequency_weights_and_one_against_the_rest():
    a = np.array([[0, 0, 0, 1]], np.uint8)  # class 0: 3/4 of a; class 1 in a and b
    b = np.array([[1, 1, 255, 255]], np.uint8)
    w = aerial.median_frequency_weights([a, b], 3)
    f0, f1 = 3 / 4, 3 / 6  # class pixels / labelled pixels of the images holding the class
    med = np.median([f0, f1])
    assert w == pytest.approx([med / f0, med / f1, 0.0])
    classes = np.array([[3, 1, 255, 3]], np.uint8)
    assert aerial.apply_scheme(classes, "vegetation").tolist() == [[0, 1, 255, 0]]
    assert aerial.scheme_names("vegetation") == ("vegetation", "rest")
    with pytest.raises(GeonbError, match="scheme='forest'.*'all'.*vegetation"):
        aerial.scheme_names("forest")


def test_label_errors_unknown_colours_shape_mismatch_and_bad_ids(tmp_path):
    m = np.empty((6, 7, 3), np.uint8)
    m[:] = classtable.COLOURS[1]
    m[2, 3] = m[4, 4] = (1, 2, 3)
    Image.fromarray(m).save(tmp_path / "labels.png")
    with pytest.raises(GeonbError, match=r"2 pixels in 1 colour.*#010203 \(2 px, first at row 2, column 3\)"):
        aerial.read_labels(tmp_path / "labels.png")
    Image.fromarray(np.array([[0, 4, 255], [7, 7, 1]], np.uint8)).save(tmp_path / "ids.png")
    with pytest.raises(GeonbError, match=r"2 pixels with values outside the class ids 0–4 .*7 \(2 px\)"):
        aerial.read_labels(tmp_path / "ids.png")
    with pytest.raises(GeonbError, match="the image is 6×8 px but its labels are 6×7 px"):
        image_pairs(np.zeros((6, 8, 3), np.uint8), np.zeros((6, 7), np.uint8), np.ones((6, 8), bool), "x")


def _texture_scene(tmp_path, h=320, w=256):
    """Two classes of the same colour distribution: vertical 1-px stripes vs random black/white pixels.
    No per-pixel classifier can tell them apart; a convolution can."""
    rng = np.random.default_rng(0)
    labels = ((np.arange(w)[None] // 32 + np.arange(h)[:, None] // 40) % 2).astype(np.uint8)
    stripes = np.broadcast_to((np.arange(w) % 2)[None] * 255, (h, w))
    noise = rng.integers(0, 2, (h, w)) * 255
    grey = np.where(labels == 0, stripes, noise).astype(np.uint8)
    labels[:3, :5] = classtable.IGNORE
    Image.fromarray(np.repeat(grey[..., None], 3, -1)).save(tmp_path / "scene.png")
    Image.fromarray(labels).save(tmp_path / "scene_labels.png")
    return tmp_path / "scene.png", tmp_path / "scene_labels.png"


def test_a_tile_larger_than_the_image_band_is_a_clear_error(tmp_path):
    scene, labels = _texture_scene(tmp_path, h=100, w=96)
    run = Run(tmp_path / "run", arch="segnet", quick=True, data=str(scene), labels=str(labels), patch=32)
    with pytest.raises(GeonbError, match=r"rows 60–80 is 20×96 px, smaller than one 32×32 tile"):
        run.step("data_prep")


@pytest.mark.parametrize("unlabelled", ["everywhere", "in the validation rows"])
def test_images_without_a_labelled_pixel_are_refused_before_training(tmp_path, unlabelled):
    scene, labels = _texture_scene(tmp_path, h=320, w=64)
    ids = np.array(Image.open(labels))
    ids[slice(None) if unlabelled == "everywhere" else slice(192, 256)] = classtable.IGNORE  # val: rows 60–80 %
    Image.fromarray(ids).save(labels)
    run = Run(tmp_path / "run", arch="segnet", quick=True, data=str(scene), labels=str(labels), patch=32)
    split = "train" if unlabelled == "everywhere" else "val"
    with pytest.raises(GeonbError, match=rf"the {split} images \(scene.png rows .*\) have no labelled pixel: every "
                                         r"class id is 255 \(no label\)"):
        run.step("data_prep")


def test_bad_parameters_are_refused_before_training(tmp_path):
    with pytest.raises(GeonbError, match="depth=2: fcn needs depth >= 3"):
        Run(tmp_path, arch="fcn", quick=True, depth=2).step("data_prep")
    with pytest.raises(GeonbError, match="patch=60 is not a multiple of 2\\^depth = 8"):
        Run(tmp_path, arch="segnet", quick=True, patch=60).step("data_prep")
    with pytest.raises(GeonbError, match="labels='x.png' goes with one image file"):
        Run(tmp_path, arch="segnet", quick=True, labels="x.png").step("data_prep")


def test_the_forest_baseline_gives_class_probabilities_whose_argmax_is_its_class_map():
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(0)
    classes = rng.choice(np.array([0, 1, 3, 4, aerial.IGNORE], np.uint8), 3000)  # class 2 never labelled
    rgb = (classes[:, None] * 40 + rng.integers(0, 90, (3000, 3))).astype(np.uint8)  # overlapping colours
    forest = forest_classifier(rgb, classes, 5, pixels=1000, seed=3)
    photo = rng.integers(0, 256, (30, 40, 3)).astype(np.uint8)
    probs = forest(photo)
    assert probs.shape == (5, 30, 40) and np.allclose(probs.sum(0), 1, atol=1e-5)
    assert (probs[2] == 0).all() and 0 < probs.max(0).min() and probs.max() <= 1
    assert 0.05 < ((probs > 0) & (probs < 1)).mean()  # mixed leaves: probabilities, not hard votes
    # the same forest as sklearn's own fit on the same pixels: its class map is predict's
    labelled = np.flatnonzero(classes != aerial.IGNORE)
    pick = np.random.default_rng(3).choice(labelled, 1000, replace=False)
    own = RandomForestClassifier(n_estimators=50, min_samples_leaf=5, n_jobs=1, random_state=3)
    own.fit(rgb[pick].astype(np.float32), classes[pick])
    assert np.array_equal(probs.argmax(0), own.predict(photo.reshape(-1, 3).astype(np.float32)).reshape(30, 40))


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["fcn", "deeplabv3plus"])
def test_short_training_beats_the_per_pixel_baselines_on_held_out_rows(tmp_path, arch):
    scene, labels = _texture_scene(tmp_path)
    run = Run(tmp_path / "run", arch=arch, quick=True, data=str(scene), labels=str(labels), patch=32, width=8,
              epochs=2, steps_per_epoch=15, batch_size=8, lr=3e-3)
    report = run.step("error_maps")
    table = report.tables["test scores"]
    assert table.loc[arch, "mean IoU"] > table.loc["random_forest_rgb", "mean IoU"] + 0.2, table
    assert table.loc[arch, "overall accuracy"] > 0.75, table
    assert table.loc["random_forest_rgb", "overall accuracy"] < 0.6, table  # no per-pixel clue: chance
    assert table.loc["majority_class", "overall accuracy"] < 0.65
    calibrated = report.tables[f"{arch}: calibration"]  # T (and α) fitted on the val rows, scored on the test rows
    before, after = calibrated.iloc[0], calibrated.iloc[1]
    assert after["NLL"] < before["NLL"], calibrated
    # T alone never moves the class map; dividing the class weights' prior out (α > 0) may move a few pixels
    moved = abs(after["accuracy"] - before["accuracy"])
    assert moved < 0.01 if "prior" in calibrated.index[1] else moved == 0, calibrated
    assert after["accuracy, 20% most uncertain"] < after["accuracy, other 80%"] - 0.1, calibrated
    # the classical baseline's calibration on the same pixels: its class map is the argmax of its probabilities
    forest = calibrated.loc["random_forest_rgb (probabilities)"]
    assert forest["accuracy"] == pytest.approx(table.loc["random_forest_rgb", "overall accuracy"], abs=1e-6), calibrated


def test_lazy_chunked_prediction_equals_one_shot_also_on_a_distributed_cluster():
    distributed = pytest.importorskip("distributed")
    model = _model("segnet")
    photo = _photo(150, 170, seed=3)
    one = segment_image(Predictor(model, float64=True), photo)
    da = xr.DataArray(photo, dims=("y", "x", "band")).chunk({"y": 64, "x": 64, "band": 3})
    lazy = predict_lazy(model, da, float64=True)
    assert lazy.chunks == ((64, 64, 22), (64, 64, 42))  # thin last chunk predicted joined, written regular
    assert np.array_equal(lazy.compute(scheduler="threads").values, one)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            distributed.Client(cluster.scheduler_address) as client:
        assert np.array_equal(client.compute(lazy.data).result(), one)
    with pytest.raises(GeonbError, match="not multiples of 8"):
        predict_lazy(model, da.chunk({"y": 60}))


def test_geonb_predict_geotiff_keeps_crs_and_transform_png_netcdf_zarr(tmp_path):
    rasterio = pytest.importorskip("rasterio")
    pytest.importorskip("rioxarray")
    from rasterio.transform import from_origin

    path = _model("unet_seg").save(tmp_path / "seg.pt")
    photo = _photo(40, 56, seed=1)
    photo[:5, :7] = 0  # nodata
    transform = from_origin(55.2, 25.3, 1e-5, 1e-5)
    with rasterio.open(tmp_path / "image.tif", "w", driver="GTiff", height=40, width=56, count=3, dtype="uint8",
                       crs="EPSG:4326", transform=transform, nodata=0) as dst:
        dst.write(photo.transpose(2, 0, 1))
    assert main(["predict", "--model", str(path), "--input", str(tmp_path / "image.tif"), "--out",
                 str(tmp_path / "classes.tif")]) == 0
    with rasterio.open(tmp_path / "classes.tif") as src:
        classes = src.read(1)
        assert src.crs.to_epsg() == 4326 and src.transform.almost_equals(transform)
        assert src.count == 1 and src.dtypes[0] == "uint8" and src.nodata == 255
        colours = src.colormap(1)  # opens in the class colours in QGIS/GDAL
    assert [colours[k][:3] for k in range(5)] == [tuple(c) for c in classtable.COLOURS] and colours[255][:3] == (155,) * 3
    assert classes.shape == (40, 56) and (classes[:5, :7] == 255).all() and (classes[5:] < 5).all()
    assert main(["predict", "--model", str(path), "--input", str(tmp_path / "image.tif"), "--out",
                 str(tmp_path / "geo.nc")]) == 0
    geo = xr.load_dataset(tmp_path / "geo.nc", decode_coords="all")
    assert geo["class"].rio.crs.to_epsg() == 4326 and geo["class"].rio.transform().almost_equals(transform)
    assert np.array_equal(geo["class"].values, classes)
    Image.fromarray(photo).save(tmp_path / "image.png")
    for out in ("classes.png", "classes.nc", "classes.zarr"):
        assert main(["predict", "--model", str(path), "--input", str(tmp_path / "image.png"), "--out",
                     str(tmp_path / out), "--tile", "32"]) == 0
    image = Image.open(tmp_path / "classes.png")
    png = np.asarray(image)  # the class ids, shown in the class colours (a palette PNG)
    assert png.dtype == np.uint8 and np.array_equal(png[5:], classes[5:])
    assert image.mode == "P" and np.array_equal(np.asarray(image.convert("RGB"))[5:], aerial.colourise(classes[5:]))
    assert np.array_equal(xr.load_dataset(tmp_path / "classes.nc")["class"].values, png)
    assert np.array_equal(xr.open_zarr(tmp_path / "classes.zarr")["class"].values, png)
    assert main(["predict", "--model", str(path), "--input", str(tmp_path / "image.png"), "--out",
                 str(tmp_path / "image.png")]) == 2  # never overwrites an input
