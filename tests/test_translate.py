"""The translate task (pix2pix): the class table and its errors, tiles, the networks, the conditional
PatchGAN step, tiled = one-shot prediction, `geonb predict` with images, a short training."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from geonb import Run, aerial, classtable, losses, methods
from geonb.cli import main
from geonb.errors import GeonbError
from geonb.modelfile import TrainedModel
from geonb.predict import Predictor
from geonb.registry import NETWORKS, get_arch
from geonb.methods.paired_gan import PairedGAN
from geonb.tasks.translate import NORM, pixel_weights, translate_image


def _map(h=8, w=9):
    m = np.empty((h, w, 3), np.uint8)
    m[:] = classtable.COLOURS[1]
    m[: h // 2] = classtable.COLOURS[4]
    m[0, 0] = (0x9B, 0x9B, 0x9B)
    return m


def test_decode_and_nearest_class_use_the_one_table():
    classes = classtable.decode(_map())
    assert classes[0, 0] == classtable.IGNORE and classes[1, 0] == 4 and classes[-1, -1] == 1
    assert classtable.NAMES == ("building", "land", "road", "vegetation", "water")
    noisy = classtable.COLOURS.astype(int) + 7
    assert list(aerial.nearest_class(noisy)) == list(range(5))
    assert classtable.decode(np.zeros((2, 2, 3), np.uint8)).tolist() == [[255, 255], [255, 255]]  # black: no label


def test_unknown_colours_are_reported_with_count_and_position():
    m = _map()
    m[3, 5] = m[6, 2] = (1, 2, 3)
    with pytest.raises(GeonbError, match=r"2 pixels in 1 colour.*#010203 \(2 px, first at row 3, column 5\)"):
        classtable.decode(m, "test map")


def test_size_mismatch_and_small_images_are_clear_errors():
    with pytest.raises(GeonbError, match="photo is 8×9 px but its map is 8×10 px"):
        aerial.make_pair(np.zeros((8, 9, 3), np.uint8), np.zeros((8, 10, 3), np.uint8), "p")
    pair = aerial.make_pair(np.zeros((8, 9, 3), np.uint8), _map(), "small")
    with pytest.raises(GeonbError, match="small is 8×9 px, smaller than one 16×16 tile"):
        aerial.grid_tiles([pair], 16)
    with pytest.raises(GeonbError, match="smaller than one 16×16 tile"):
        aerial.random_tiles([pair], 16, 2, np.random.default_rng(0))


def test_palette_masks_load_and_bad_files_name_their_location(tmp_path):
    folder = tmp_path / "tile_1"
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    Image.fromarray(np.full((8, 9, 3), 120, np.uint8)).save(folder / "images" / "image_part_001.jpg")
    Image.fromarray(_map()).convert("P", palette=Image.Palette.ADAPTIVE, colors=8).save(folder / "masks" / "image_part_001.png")
    [pair] = aerial.load_location(1, (1,), tmp_path)
    assert pair.classes[1, 0] == 4
    bad = _map()
    bad[2, 3] = (10, 10, 10)
    Image.fromarray(bad).save(folder / "masks" / "image_part_001.png")
    with pytest.raises(GeonbError, match=r"tile_1/image_part_001.*#0A0A0A \(1 px, first at row 2, column 3\)"):
        aerial.load_location(1, (1,), tmp_path)


def test_split_is_by_whole_location():
    split = aerial.split_locations(2, 3)
    assert split == {"train": [1, 4, 5, 6, 7], "val": [2], "test": [3]}
    assert aerial.split_locations([2, 6], 3) == {"train": [1, 4, 5, 7], "val": [2, 6], "test": [3]}
    for val, test, message in ((3, 3, "must differ"), ([2, 3], 3, "must differ"), ([2, 2], 3, "several different"),
                               ([1, 2, 4, 5, 6, 7], 3, "no location to train on"), ([2, 8], 3, "pick one of")):
        with pytest.raises(GeonbError, match=message):
            aerial.split_locations(val, test)


def test_random_tiles_keep_photo_and_map_aligned():
    photo = np.random.default_rng(0).integers(0, 255, (40, 50, 3)).astype(np.uint8)
    m = np.empty_like(photo)
    m[:] = classtable.COLOURS[np.arange(50) % 5][None]
    photo[..., 0] = np.arange(50)[None] % 5  # channel 0 encodes the map's class
    pair = aerial.make_pair(photo, m, "p")
    p, q = aerial.random_tiles([pair], 16, 20, np.random.default_rng(1))
    assert np.array_equal(p[..., 0], aerial.nearest_class(q))


@pytest.mark.parametrize("depth", [3, 4])
def test_unet_receptive_field_is_inside_the_halo(depth):
    net = NETWORKS.build("pix2pix_unet", ngf=2, depth=depth).eval()
    for p in net.parameters():
        p.data = p.data.abs() * 0.3  # positive weights: no cancellation hides a dependence
    n = 2 ** depth * 10
    x = torch.ones(1, 3, n, n, requires_grad=True)
    net(x)[0, :, n // 2, n // 2].sum().backward()
    rows = torch.nonzero(x.grad[0].abs().sum(0).sum(1))[:, 0] - n // 2
    assert net.multiple == 2 ** depth and net.halo % net.multiple == 0
    assert int(rows.abs().max()) <= net.halo


def _model(depth=3):
    torch.manual_seed(0)
    net = NETWORKS.build("pix2pix_unet", ngf=4, depth=depth)
    with torch.no_grad():  # non-trivial BatchNorm statistics
        net.train()
        net(torch.randn(4, 3, 64, 64))
    args = {"in_channels": 3, "out_channels": 3, "ngf": 4, "depth": depth}
    return TrainedModel("translate", "pix2pix", args, [net.state_dict()], {"photo": NORM, "map": NORM})


def test_tiled_prediction_equals_one_shot_and_tiles_must_fit_the_pooling_grid():
    pred = Predictor(_model())
    photo = np.random.default_rng(0).integers(0, 256, (37, 53, 3)).astype(np.uint8)
    x = pred.tensor(aerial.to_tensor_range(photo[None]))
    one = pred(x)["mean"]
    tiled = pred(x, tile=16)["mean"]
    assert one.shape == (1, 3, 37, 53)
    assert np.abs(one - tiled).max() < 1e-5
    assert np.array_equal(translate_image(pred, photo), translate_image(pred, photo, tile=8))
    with pytest.raises(GeonbError, match="tile=12 is not a multiple of 8"):
        translate_image(pred, photo, tile=12)


def test_geonb_predict_writes_png_netcdf_and_tiff(tmp_path):
    path = _model().save(tmp_path / "p2p.pt")
    photo = np.random.default_rng(1).integers(0, 256, (30, 41, 3)).astype(np.uint8)
    Image.fromarray(photo).save(tmp_path / "photo.png")
    for out in ("map.png", "map.nc", "map.tif"):
        assert main(["predict", "--model", str(path), "--input", str(tmp_path / "photo.png"), "--out",
                     str(tmp_path / out), "--tile", "16"]) == 0
    png = np.asarray(Image.open(tmp_path / "map.png"))
    assert png.shape == (30, 41, 3)
    assert np.array_equal(png, np.asarray(Image.open(tmp_path / "map.tif")))
    import xarray as xr

    ds = xr.load_dataset(tmp_path / "map.nc")
    assert np.array_equal(ds["map"].values, png) and ds["class"].shape == (30, 41)
    ds.rename(map="photo")[["photo"]].to_netcdf(tmp_path / "photo.nc")  # NetCDF in
    assert main(["predict", "--model", str(path), "--input", str(tmp_path / "photo.nc"), "--out",
                 str(tmp_path / "again.png")]) == 0


def test_conditional_patchgan_step_sees_pairs():
    arch = get_arch("pix2pix")
    m = methods.build(arch, {"ngf": 2, "depth": 3}, lr=2e-4, seed=0, device="cpu",
                      role_args={"discriminator": {"in_channels": 6, "ndf": 2}}, adv_weight=1.0,
                      content_args={"weight": 100.0})
    assert m.conditional and m.nets["discriminator"].net[0].in_channels == 6
    assert m.optimizers["discriminator"].defaults["betas"] == (0.5, 0.999)
    x, y = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    logs = m.train_step((x, y, None))
    assert {"loss", "l1", "adversarial", "d_loss", "d_acc", "d_acc_real", "d_acc_fake"} <= set(logs)
    assert logs["loss"] == pytest.approx(100 * logs["l1"] + logs["adversarial"], rel=1e-5)


def test_pix2pix_moving_average_trains_the_generator_and_validates_and_keeps_the_average():
    m = methods.build(get_arch("pix2pix"), {"ngf": 2, "depth": 3}, lr=2e-3, seed=0, device="cpu",
                      role_args={"discriminator": {"in_channels": 6, "ndf": 2}}, adv_weight=1.0,
                      content_args={"weight": 100.0}, ema=0.5)
    trained = m.nets["generator"]
    assert m.generator is m.nets["average"].module  # what predict (validation) and weights() run
    x, y = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    states = []
    for _ in range(2):
        m.train_step((x, y, None))
        states.append({k: v.clone() for k, v in trained.state_dict().items() if v.is_floating_point()})
    assert not all(torch.equal(states[0][k], states[1][k]) for k in states[0])  # the trained generator learns
    kept = m.weights()[0]  # the model file's: the mean of the 1/(1 − 0.5) = 2 steps so far
    assert all(torch.allclose(kept[k], (states[0][k] + states[1][k]) / 2, atol=1e-6) for k in states[0])


@pytest.mark.slow
def test_short_l1_training_beats_its_start_and_04_scores_it_beside_the_colour_classifier(tmp_path):
    run = Run(tmp_path, arch="pix2pix_l1", quick=True, epochs=4, steps_per_epoch=6, lr=2e-3, patience=10,
              rotate=False)  # 24 steps on one image part: turned tiles need more to beat the start
    report = run.step("train")
    hist = report.tables["pix2pix_l1: history (last epochs)"]["val_loss"]
    assert hist.min() < hist.iloc[0]
    t = TrainedModel.load(run.model_path("pix2pix_l1")).method_args["temperature"]  # fitted at the end of 03
    assert f"(T = {t:.3g})" in report.text
    tables = run.step("error_maps").tables
    table = tables["test location"]
    assert list(table.index) == ["pix2pix_l1", "colour_classifier"]
    assert ((table["class accuracy"] >= 0) & (table["class accuracy"] <= 1)).all()
    iou = table[[f"IoU {n}" for n in classtable.NAMES]]
    assert ((iou >= 0) & (iou <= 1)).all().all() and "mean IoU" in table
    calibrated = tables["calibration"]  # the arch's probabilities before / after T, on the same pixels
    assert list(calibrated.index) == ["before (T = 1)", f"after (T = {t:.3g})"]
    assert calibrated["accuracy"].tolist() == pytest.approx([table.loc["pix2pix_l1", "class accuracy"]] * 2)


def test_pixel_weights_put_each_class_weight_on_its_pixels_and_one_where_unlabeled():
    classes = np.array([[[0, 1], [4, classtable.IGNORE]]], np.uint8)
    w = pixel_weights(classes, np.array([2.0, 0.5, 1.5, 3.0, 0.25]))
    assert w.shape == (1, 3, 2, 2)
    assert (w[0] == torch.tensor([[2.0, 0.5], [0.25, 1.0]])).all()  # the same on every colour channel
    assert pixel_weights(classes, None) is None  # class_balance 0: plain L1


@pytest.mark.slow
def test_class_balance_weights_the_training_l1_and_picks_the_epoch_by_the_same_weighted_l1(tmp_path, monkeypatch):
    seen = []
    step = PairedGAN.train_step

    def spy(self, batch):
        seen.append(batch[2])
        return step(self, batch)

    monkeypatch.setattr(PairedGAN, "train_step", spy)
    run = Run(tmp_path, arch="pix2pix", quick=True, class_balance=0.5, baseline="")
    run.step("train")
    model = TrainedModel.load(run.model_path("pix2pix"))
    train = [p for loc in aerial.split_locations(2, 3)["train"] for p in aerial.load_location(loc, aerial.PARTS[:1])]
    expected = aerial.median_frequency_weights([p.classes for p in train], len(classtable.NAMES)) ** 0.5
    assert model.info["class_weights"] == pytest.approx(expected) and model.info["class_balance"] == 0.5
    assert seen and all(w is not None and w.shape == (2, 3, 64, 64) for w in seen)
    values = set(np.unique(torch.cat(seen).numpy()).round(5))
    assert len(values) > 2 and values <= set(np.append(expected, 1.0).astype(np.float32).round(5))
    last = model.info["history"][-1]  # one quick epoch: the kept weights are that epoch's
    assert 0 <= last["val_iou_building"] <= 1 and 0 < last["val_mean_iou"] <= 1
    photos, maps, _ = aerial.grid_tiles(aerial.load_location(2, aerial.PARTS[:1]), 64)
    pick = np.random.default_rng(0).permutation(len(photos))[:16]
    pred = Predictor(model)
    out = torch.as_tensor(pred(pred.tensor(aerial.to_tensor_range(photos[pick])))["mean"])
    weights = pixel_weights(np.stack([classtable.decode(m) for m in maps[pick]]), expected)
    truth = torch.as_tensor(aerial.to_tensor_range(maps[pick]))
    assert last["val_loss"] == pytest.approx(float(losses.weighted_l1(out, truth, weights)), rel=1e-4)
    assert abs(last["val_loss"] - float(losses.weighted_l1(out, truth))) > 1e-3  # not the plain L1
