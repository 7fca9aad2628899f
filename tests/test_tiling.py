import numpy as np
import pytest

from geonb import GeonbError, load_field, synthetic_sst
from geonb.normalise import Normaliser
from geonb.tiling import cut_patches, split_blocks


def _cells(patches, split):
    sel = patches.split.values == split
    return {(int(t), float(a), float(o)) for t, la, lo in zip(patches.time_index.values[sel], patches.lat.values[sel],
                                                              patches.lon.values[sel]) for a in la for o in lo}


def test_region_split_never_puts_a_test_pixel_in_a_training_patch():
    sst = load_field("hadisst")
    split = split_blocks(sst, 64, seed=0)
    assert split.attrs["by"] == "region"
    patches = cut_patches(sst, split, 64, 56)
    counts = {s: int((patches.split == s).sum()) for s in ("train", "val", "test")}
    assert all(counts.values()), counts
    train, test, val = _cells(patches, "train"), _cells(patches, "test"), _cells(patches, "val")
    assert not (train & test) and not (train & val) and not (val & test)


def test_time_split_is_blocked_in_time():
    da = synthetic_sst(n_time=10, ny=64, nx=64)
    split = split_blocks(da, 32)
    assert split.attrs["by"] == "time"
    per_day = split.values[:, 0, 0]
    assert list(per_day) == sorted(per_day)  # contiguous: train days, then val, then test
    assert np.bincount(per_day).tolist() == [6, 2, 2]


def test_corners_cut_gives_four_patches_per_block():
    da = synthetic_sst(n_time=10, ny=92, nx=107, land=False)
    patches = cut_patches(da, split_blocks(da, 64), 64, 0, cut="corners")
    assert patches.sizes["patch"] == 40 and patches.field.shape[1:] == (64, 64)


def test_patch_larger_than_grid_is_refused():
    with pytest.raises(GeonbError, match="patch size 256 is larger than the grid"):
        split_blocks(load_field("hadisst"), 256)


def test_normaliser_uses_training_values_only(tmp_path):
    norm = Normaliser.fit(np.array([1.0, 3.0, np.nan]))
    assert (norm.mean, norm.std) == (2.0, 1.0)
    norm.save(tmp_path / "n.json")
    assert Normaliser.load(tmp_path / "n.json") == norm
    assert norm.inverse(norm(5.0)) == 5.0


def test_span_maps_a_coordinate_axis_onto_minus_one_to_one():
    lat = np.arange(30.0, 45.0, 0.25)  # a regular axis, as grids have
    scaled = Normaliser.span(lat)(lat)
    np.testing.assert_allclose([scaled.min(), scaled.max()], [-1.0, 1.0])
    assert Normaliser.span(np.array([3.0, 3.0])).std == 1.0  # a single value: no division by zero
    assert Normaliser.fit(np.full(4, 7.0)).std == 1.0  # a constant field, likewise
