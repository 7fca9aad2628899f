import numpy as np

from geonb import holes


def test_square_hole_is_10x10_on_ocean_only():
    rng = np.random.default_rng(0)
    valid = np.ones((64, 64), bool)
    valid[:, :20] = False  # land strip
    hole = holes.simulate(valid, "square", rng)
    assert hole.sum() <= 100 and not (hole & ~valid).any()
    ys, xs = np.nonzero(hole)
    assert ys.max() - ys.min() == 9 and xs.max() - xs.min() == 9


def test_placements_differ_and_many_has_many():
    rng = np.random.default_rng(1)
    valid = np.ones((64, 64), bool)
    a, b = holes.simulate(valid, "many", rng), holes.simulate(valid, "many", rng)
    assert not np.array_equal(a, b)
    assert a.sum() > 4 * 36  # several 6×6 squares (some may overlap)


def test_ring_surrounds_holes_without_overlapping_them():
    hole = np.zeros((1, 1, 20, 20), bool)
    hole[..., 8:12, 8:12] = True
    band = holes.ring(hole, 2)
    assert not (band & hole).any()
    assert band.sum() == 8 * 8 - 16


def test_cloud_library_crops_real_cloud_shapes(alboran_path):
    from geonb import load_field

    cube = load_field("alboran")
    sea = np.isfinite(cube.values).any(0)
    crops = holes.cloud_library(cube, sea, 64, 20, np.random.default_rng(0))
    assert crops.shape == (20, 64, 64)
    cover = crops.mean((1, 2))
    assert (cover > 0.05).all() and (cover < 0.55).all()
