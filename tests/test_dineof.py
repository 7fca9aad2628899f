"""DINEOF: reconstructs low-rank fields through gaps; reproduces the published Alboran result."""
import numpy as np
import pytest
import xarray as xr

from geonb.cv import cloud_cv_mask, dineof_cv_count
from geonb.dineof import dineof
from geonb.errors import GeonbError
from geonb import datasets


def low_rank_cube(rank=3, n_time=30, ny=20, nx=25, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:ny, 0:nx] / 10
    modes = [np.sin((k + 1) * x + k) * np.cos((k + 1) * y) for k in range(rank)]
    amps = rng.normal(size=(n_time, rank)) * [3.0, 2.0, 1.0][:rank]
    noise = 0.05 * rng.normal(size=(n_time, ny, nx))  # a little noise: more modes than 3 only fit noise
    return 15 + np.einsum("tk,kyx->tyx", amps, np.stack(modes)) + noise


def test_reconstructs_low_rank_field_with_cloud_gaps():
    truth = low_rank_cube()
    obs = np.ones(truth.shape, bool)
    rng = np.random.default_rng(1)
    for t in range(len(truth)):  # a rectangular cloud per day
        y0, x0 = rng.integers(0, 12), rng.integers(0, 15)
        obs[t, y0:y0 + 8, x0:x0 + 10] = False
    cube = np.where(obs, truth, np.nan)
    result = dineof(cube, progress=False)
    gaps = ~obs
    rms = np.sqrt(np.mean((result.filled[gaps] - truth[gaps]) ** 2))
    assert result.n_modes == 3
    assert rms < 0.1  # noise level 0.05, field std ≈ 2.5
    assert np.array_equal(result.filled[obs], cube[obs].astype("float32"))  # observed values untouched


def test_cv_count_and_cloud_shapes():
    assert dineof_cv_count(22186, 10) == 2258  # the Alboran numbers
    obs = np.isfinite(low_rank_cube(n_time=6))
    obs[:, :8, :8] = False
    with pytest.raises(GeonbError, match="≥ 2 days"):
        cloud_cv_mask(obs[:1], 10)
    hidden = cloud_cv_mask(np.where(np.arange(6)[:, None, None] % 2 == 0, obs, True), 60, seed=0)
    assert hidden.sum() == 60


def test_bad_inputs_and_all_cloud_day():
    cube = low_rank_cube(n_time=8)
    with pytest.raises(GeonbError, match="no missing"):
        dineof(cube, progress=False)
    with pytest.raises(GeonbError, match="at least 3 time steps"):
        dineof(cube[:2], progress=False)
    with pytest.raises(GeonbError, match="unstable"):
        dineof(np.where(cube > 16, np.nan, cube), np.arange(8.0), alpha=5, filter_iter=1, progress=False)
    gappy = cube.copy()
    for t in range(8):
        gappy[t, t:t + 5, 2 * t:2 * t + 6] = np.nan
    gappy[3] = np.nan  # an all-cloud day
    with pytest.warns(UserWarning, match="all cloud"):
        result = dineof(gappy, sea=np.ones(cube.shape[1:], bool), progress=False)
    assert np.isnan(result.filled[3]).all() and np.isfinite(result.filled[[0, 1, 2, 4]]).all()


def test_published_alboran_result():
    """DINEOF's SmallExample: 3 modes, CV RMS 0.4445 °C on 2258 random CV points (alpha 0.01, 3 filter steps)."""
    ds = xr.open_dataset(datasets.path("alboran"))
    result = dineof(ds.SST.values, ds.time.values, sea=ds.mask.values > 0, cv="random", alpha=0.01,
                    filter_iter=3, seed=0, progress=False)
    assert result.n_cv == 2258
    assert 2 <= result.n_modes <= 4
    assert abs(result.cv_rms - 0.4445) <= 0.03
