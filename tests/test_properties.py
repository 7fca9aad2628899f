"""Invariants checked on generated cases (hypothesis): tiling, hole simulation, mask rasterisation, the predictor.

Few, small examples each (CI runs on 2 shared cores); ``deadline=None`` because the first example builds
a network.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr
from hypothesis import HealthCheck, given, settings, strategies as st

from geonb import holes
from geonb.rasterise import rasterise_box, rasterise_polygon
from geonb.modelfile import TrainedModel
from geonb.normalise import Normaliser
from geonb.predict import Predictor
from geonb.registry import get_arch
from geonb.tiling import cut_patches, split_blocks

SETTINGS = settings(max_examples=15, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _predictor(arch, args, **model):
    torch.manual_seed(0)
    net = get_arch(arch).build("generator", **args)
    return Predictor(TrainedModel(arch=arch, arch_args=args, weights=[net.state_dict()], **model), float64=True)


SRCNN = _predictor("srcnn", {"factor": 2, "cond_res": [], "f1": 8, "f2": 4}, task="downscale",
                   norms={"target": Normaliser(0.0, 1.0)}, inputs={"variable": "z", "cond": []})
UNET = _predictor("unet_seg", {"width": 4, "depth": 2}, task="segment", norms={"photo": Normaliser(127.5, 127.5)})


@SETTINGS
@given(h=st.integers(3, 24), w=st.integers(3, 24), tile=st.integers(3, 30), batch=st.integers(1, 2),
       seed=st.integers(0, 2**16))
def test_tiles_reassemble_exactly_into_the_one_shot_prediction(h, w, tile, batch, seed):
    x = torch.from_numpy(np.random.default_rng(seed).normal(size=(batch, 1, h, w)))
    whole = SRCNN((x, []), batch=batch)["mean"]
    tiled = SRCNN((x, []), tile=tile, batch=1)["mean"]
    assert whole.shape == tiled.shape and whole.shape[0] == batch and whole.shape[-2:] == (2 * h, 2 * w)
    np.testing.assert_allclose(tiled, whole, rtol=0, atol=1e-10)


@SETTINGS
@given(h=st.integers(4, 20), w=st.integers(4, 20), tiles=st.integers(2, 4), seed=st.integers(0, 2**16))
def test_pooling_networks_tiled_on_their_grid_equal_one_shot(h, w, tiles, seed):
    x = torch.from_numpy(np.random.default_rng(seed).normal(size=(1, 3, h, w)))
    tile = UNET.multiple * tiles
    whole, tiled = UNET(x, halo=UNET.halo)["mean"], UNET(x, tile=tile)["mean"]
    assert whole.shape[0] == 1 and whole.shape[-2:] == (h, w)  # any size in, the same size out
    np.testing.assert_allclose(tiled, whole, rtol=0, atol=1e-9)


@SETTINGS
@given(shape=st.tuples(st.integers(6, 40), st.integers(6, 40)), land=st.floats(0, 0.9), kind=st.sampled_from(holes.SIMULATED),
       seed=st.integers(0, 2**16))
def test_simulated_holes_never_leave_the_sea(shape, land, kind, seed):
    rng = np.random.default_rng(seed)
    sea = rng.random(shape) >= land
    hole = holes.simulate(sea, kind, rng)
    assert hole.shape == shape and hole.dtype == bool
    assert not (hole & ~sea).any()
    ring = holes.ring(hole[None], 2)[0]
    assert not (ring & hole).any()


@SETTINGS
@given(ny=st.integers(2, 25), nx=st.integers(2, 25), flip_lat=st.booleans(), lon0=st.sampled_from([-20.0, 160.0, 340.0]),
       box=st.tuples(st.floats(-30, 30), st.floats(-30, 30), st.floats(-30, 30), st.floats(-30, 30)))
def test_box_rasterisation_is_exactly_the_cells_whose_centre_is_inside(ny, nx, flip_lat, lon0, box):
    lat = np.linspace(-10, 10, ny)[:: -1 if flip_lat else 1]
    lon = lon0 + np.linspace(0, 15, nx)
    x0, y0, x1, y1 = box
    x0, x1 = x0 + lon0, x1 + lon0
    mask = rasterise_box(x0, y0, x1, y1, lat, lon)
    lon2, lat2 = np.meshgrid(lon, lat)
    inside = (lat2 >= min(y0, y1)) & (lat2 <= max(y0, y1))
    inside &= np.logical_or.reduce([(s >= min(x0, x1)) & (s <= max(x0, x1)) for s in (lon2 - 360, lon2, lon2 + 360)])
    np.testing.assert_array_equal(mask, inside)


@SETTINGS
@given(n=st.integers(3, 8), seed=st.integers(0, 2**16), flip=st.booleans())
def test_polygon_rasterisation_stays_in_its_bounding_box_and_follows_the_axis_order(n, seed, flip):
    rng = np.random.default_rng(seed)
    xs, ys = rng.uniform(-5, 5, n), rng.uniform(-5, 5, n)
    lat, lon = np.linspace(-6, 6, 20), np.linspace(-6, 6, 24)
    mask = rasterise_polygon(xs, ys, lat, lon)
    lon2, lat2 = np.meshgrid(lon, lat)
    assert not (mask & ((lon2 < xs.min()) | (lon2 > xs.max()) | (lat2 < ys.min()) | (lat2 > ys.max()))).any()
    if flip:  # the same shape on the grid stored north to south is the same cells, rows reversed
        np.testing.assert_array_equal(rasterise_polygon(xs, ys, lat[::-1], lon), mask[::-1])


@SETTINGS
@given(nt=st.integers(1, 3), ny=st.integers(40, 70), nx=st.integers(40, 70), patch=st.sampled_from([16, 20]),
       overlap=st.integers(0, 12), seed=st.integers(0, 2**8))
def test_patches_keep_values_and_coordinates_and_stay_in_one_split_block(nt, ny, nx, patch, overlap, seed):
    from geonb import synthetic_sst

    field = synthetic_sst(n_time=nt, ny=ny, nx=nx, seed=seed, land=False)
    split = split_blocks(field, patch, seed, "region")
    patches = cut_patches(field, split, patch, overlap)
    for i in range(patches.sizes["patch"]):
        t = int(patches.time_index[i])
        lat, lon = patches.lat[i].values, patches.lon[i].values
        assert np.all(np.diff(lat) > 0) and np.all(np.diff(lon) > 0)  # contiguous, in order
        cut = field.isel(time=t).sel(lat=lat, lon=lon)
        np.testing.assert_array_equal(patches.field[i].values, cut.values)
        labels = np.unique(split.isel(time=t).sel(lat=lat, lon=lon).values)
        assert len(labels) == 1 and ("train", "val", "test")[int(labels[0])] == patches.split.values[i]


@pytest.fixture(scope="module")
def dincae_file(tmp_path_factory):
    from .test_errors import dincae_model

    return dincae_model(tmp_path_factory.mktemp("m") / "m.pt")


@settings(max_examples=6, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(swaps=st.lists(st.tuples(st.integers(0, 19), st.integers(0, 19)), min_size=1, max_size=4),
       dim=st.sampled_from(["lat", "lon"]))
def test_a_fill_keeps_coordinates_and_does_not_depend_on_their_order(dincae_file, swaps, dim):
    import warnings

    from geonb.cv import synthetic_cloudy_cube
    from geonb.filling import fill

    _, cube = synthetic_cloudy_cube(4, 20, 20, cover=0.3, seed=3)
    cube = cube.assign_coords(lat=np.linspace(36, 37, 20), lon=np.linspace(-5, -4, 20)).rename("SST")
    order = np.arange(20)
    for a, b in swaps:
        order[[a, b]] = order[[b, a]]
    shuffled = cube.isel({dim: order})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "sorted it" (tested in test_errors)
        right, got = fill(cube, model=dincae_file), fill(shuffled, model=dincae_file)
    assert got.SST.dims == shuffled.dims and got.SST_error.shape == shuffled.shape
    np.testing.assert_allclose(got.SST.sel({dim: cube[dim]}).values, right.SST.values, rtol=1e-6)
    observed = np.isfinite(cube.values)
    np.testing.assert_array_equal(right.SST.values[observed], cube.values[observed])  # observations kept
    assert isinstance(right, xr.Dataset)
