"""Downscaling on projected grids with a mask (issue: Antarctic ice thickness): the shared 5 km grid
loads with its own coordinates, the region split keeps training patches (and their halo) off the
test blocks, masked cells stay out of the loss and pass through prediction, both baselines are
pixel-area aligned, and `geonb predict` keeps the input's coordinate names, attributes and CRS."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr
from pyproj import CRS

from geonb.baselines import bicubic, cubic_spline
from geonb.cli import parse
from geonb.data import load_grid
from geonb.errors import GeonbError
from geonb.methods.regression import Regression
from geonb.modelfile import TrainedModel
from geonb.normalise import Normaliser
from geonb.predict import Predictor
from geonb.registry import get_arch
from geonb.resample import coarsen
from geonb.tasks.downscale.data import split_map
from geonb.tasks.downscale.infer import _cond_on_grid, predict_grid
from geonb.tasks.downscale.sampling import Scene, _corners

torch.set_num_threads(1)


def test_antarctica_loads_projected_with_log_beta():
    ds = load_grid("antarctica")
    assert ds.attrs["target"] == "thickness" and ds.attrs["crs"] == "EPSG:3031"
    assert ds["thickness"].dims == ("y", "x") and ds.sizes == {"y": 1120, "x": 1160}
    assert ds.x.attrs["standard_name"] == "projection_x_coordinate" and float(ds.x[1] - ds.x[0]) == 5000.0
    assert 0.35 < float((ds["thickness"] > 0).mean()) < 0.5  # ~42 % ice (data README)
    assert float(ds["beta"].max()) < 20  # log10: raw beta reaches 4.8e16


def test_block_split_keeps_training_patches_and_halo_off_the_test_blocks():
    split = split_map((1024, 1024), 256)
    share = [float((split == k).mean()) for k in (0, 1, 2)]
    assert share == pytest.approx([0.6, 0.2, 0.2], abs=0.05)
    scene = Scene(np.zeros(split.shape), region=split == 0, clear=split == 2)
    size, margin = 64, 40
    corners = _corners(scene, size, 4, margin)
    assert len(corners) > 100
    for i, j in corners:
        assert (split[i:i + size, j:j + size] == 0).all()
        window = split[max(i - margin, 0):i + size + margin, max(j - margin, 0):j + size + margin]
        assert not (window == 2).any()
    # the control: without ``clear`` some patch halos do reach a test cell
    loose = _corners(Scene(np.zeros(split.shape), region=split == 0), size, 4, margin)
    assert any((split[max(i - margin, 0):i + size + margin, max(j - margin, 0):j + size + margin] == 2).any()
               for i, j in loose)


def test_masked_cells_are_out_of_the_loss():
    method = Regression({"generator": torch.nn.Conv2d(1, 1, 1)}, lr=1e-3)
    pred, y = torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4)
    w = torch.ones_like(y)
    w[..., :2, :] = 0
    changed = y.clone()
    changed[..., :2, :] = 1e6  # any value on masked cells
    assert method.loss(pred, changed, w) == method.loss(pred, y, w) == 1.0


def test_ice_free_low_res_cells_pass_through_prediction():
    arch_args = {"factor": 4, "cond_res": []}
    net = get_arch("srcnn").build("generator", **arch_args)
    model = TrainedModel("downscale", "srcnn", arch_args, [net.state_dict()], {"target": Normaliser(1000.0, 500.0)},
                         inputs={"variable": "thickness", "cond": [], "valid_above": 0.0}, info={"trained_on": "test"})
    lr = np.full((12, 12), 1500.0)
    lr[:, :4] = -16.5  # ocean
    hr = predict_grid(Predictor(model), lr)
    assert (hr[:, :16] == -16.5).all() and (hr[:, 16:] != -16.5).all()


@pytest.mark.parametrize("upsample", [bicubic, cubic_spline])
def test_baselines_are_pixel_area_aligned(upsample):
    """A block mean sits at its block's centre: on a linear ramp (slope 1 and 2 per cell) the
    upsampled grid has no offset inside the grid; half a cell of misalignment would offset it by 1.5."""
    hr = np.add.outer(np.arange(64.0), 2 * np.arange(64.0))
    error = (upsample(coarsen(hr, 4), 4) - hr)[8:-8, 8:-8]
    assert abs(error.mean()) < 0.02 and np.abs(error).max() < 0.5


def _projected(path, values, y, x, name="thickness"):
    """A CF file with x/y coordinates and an EPSG:3031 grid-mapping variable."""
    da = xr.DataArray(values.astype("float32"), dims=("y", "x"), name=name, attrs={"units": "m", "grid_mapping": "crs"},
                      coords={"y": ("y", y, {"units": "m", "standard_name": "projection_y_coordinate"}),
                              "x": ("x", x, {"units": "m", "standard_name": "projection_x_coordinate"})})
    da.to_dataset().assign(crs=xr.DataArray(0, attrs=CRS.from_epsg(3031).to_cf())).to_netcdf(path)
    return path


def test_cli_train_and_predict_keep_projected_coordinates_and_crs(tmp_path):
    ant = load_grid("antarctica").isel(y=slice(400, 528), x=slice(560, 752))  # 128×192 of interior ice
    hr = _projected(tmp_path / "hr.nc", ant["thickness"].values, ant.y.values, ant.x.values)
    model = tmp_path / "sr.pt"
    args = parse(["train", "--arch", "srcnn", "--data", str(hr), "--var", "thickness", "--factor", "4", "--model",
                  str(model), "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "2", "--patch-lr", "8", "--valid-above", "0"])
    assert args.func(args) == 0
    saved = TrainedModel.load(model, task="downscale")
    assert saved.inputs["crs"] == "EPSG:3031" and saved.inputs["valid_above"] == 0.0
    lr = coarsen(ant["thickness"].values.astype(float), 4)
    coarse = _projected(tmp_path / "coarse.nc", lr, ant.y.values.reshape(-1, 4).mean(1), ant.x.values.reshape(-1, 4).mean(1))
    out = tmp_path / "fine.nc"
    args = parse(["predict", "--model", str(model), "--input", str(coarse), "--var", "thickness", "--out", str(out)])
    assert args.func(args) == 0
    res = xr.open_dataset(out)
    assert res["thickness"].dims == ("y", "x") and res["thickness"].shape == (128, 192)
    np.testing.assert_allclose(res.x.values, ant.x.values)
    assert res.x.attrs["standard_name"] == "projection_x_coordinate" and res["thickness"].attrs["units"] == "m"
    mapping = res["thickness"].attrs.get("grid_mapping") or res["thickness"].encoding["grid_mapping"]
    assert CRS.from_cf(res[mapping].attrs).to_epsg() == 3031


def test_a_conditioning_grid_in_another_crs_is_matched_to_the_target(tmp_path):
    """DeepBedMap's conditioning grids come in other projections: log10 beta warped to NSIDC's EPSG:3412 (by
    rioxarray, independently of geonb) is matched back onto the EPSG:3031 target cells and trains a model; one
    that does not cover the target is refused naming its coverage."""
    ant = load_grid("antarctica")
    target = ant.isel(y=slice(256, 384), x=slice(448, 576))  # 128² cells of 5 km
    beta = ant["beta"].isel(y=slice(200, 440), x=slice(390, 640)).rio.write_crs("EPSG:3031").rio.reproject(
        "EPSG:3412", resolution=5000)
    beta.encoding = {}
    beta.to_dataset(name="beta").to_netcdf(tmp_path / "beta_3412.nc")
    name, r, values = _cond_on_grid(f"{tmp_path / 'beta_3412.nc'}:beta", target, 1, False)
    error = np.abs(values - target["beta"].values)
    assert name == "beta" and values.shape == (128, 128)
    assert error.mean() < 0.1 * float(target["beta"].std())  # two bilinear warps: close, not identical
    beta.isel(y=slice(0, 40), x=slice(0, 40)).to_dataset(name="beta").to_netcdf(tmp_path / "corner.nc")
    with pytest.raises(GeonbError, match=r"'.*corner.nc:beta' \(in EPSG:3412\) covers only 0.0% of the target's cells"):
        _cond_on_grid(f"{tmp_path / 'corner.nc'}:beta", target, 1, False)

    hr = _projected(tmp_path / "hr.nc", target["thickness"].values, target.y.values, target.x.values)
    args = parse(
        ["train", "--arch", "srcnn", "--data", str(hr), "--var", "thickness", "--factor", "4", "--model",
         str(tmp_path / "sr.pt"), "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "2", "--patch-lr", "8",
         "--valid-above", "0", "--cond", f"{tmp_path / 'beta_3412.nc'}:beta"])
    assert args.func(args) == 0
    assert TrainedModel.load(tmp_path / "sr.pt", task="downscale").inputs["cond"] == ["beta"]


def test_conditioning_grid_of_another_shape_is_refused():
    arch_args = {"factor": 4, "cond_res": [4]}
    net = get_arch("srcnn").build("generator", **arch_args)
    model = TrainedModel("downscale", "srcnn", arch_args, [net.state_dict()],
                         {"target": Normaliser(0.0, 1.0), "cond beta": Normaliser(0.0, 1.0)},
                         inputs={"variable": "thickness", "cond": ["beta"]}, info={"trained_on": "test"})
    with pytest.raises(GeonbError, match=r"conditioning grid 'beta' is \(40, 40\); expected \(48, 48\)"):
        predict_grid(Predictor(model), np.zeros((12, 12)), [np.zeros((40, 40))])


def test_cli_refuses_a_grid_with_nan_cells_and_one_smaller_than_a_patch(tmp_path):
    ant = load_grid("antarctica").isel(y=slice(400, 464), x=slice(560, 656))  # 64×96
    y, x, values = ant.y.values, ant.x.values, ant["thickness"].values.copy()
    small = _projected(tmp_path / "small.nc", values, y, x)
    args = parse(["train", "--arch", "srcnn", "--data", str(small), "--factor", "4", "--model", str(tmp_path / "a.pt"),
                  "--patch-lr", "32", "--epochs", "1"])
    with pytest.raises(GeonbError, match=r"64×96 in whole 16-cell blocks; downscaling needs at least 128×144 \(a "
                                         "training tile of 128 cells"):
        args.func(args)
    values[10, 20] = np.nan
    holed = _projected(tmp_path / "holed.nc", values, y, x)
    args = parse(["train", "--arch", "srcnn", "--data", str(holed), "--factor", "4", "--model", str(tmp_path / "b.pt")])
    with pytest.raises(GeonbError, match="1 NaN/inf cells"):
        args.func(args)
    assert not (tmp_path / "b.pt").exists()
