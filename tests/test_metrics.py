"""The scores from torchmetrics agree with the hand-written versions they replaced, on real data: a real
Dubai label map against a per-pixel colour classifier (unlabeled pixels in it), the real 90 m DEM against
its bicubic downscaling. The old versions are written out here as the reference."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from geonb import aerial, classtable
from geonb.baselines import bicubic
from geonb.data import load_grid
from geonb.losses import ssim as ssim_loss
from geonb.metrics.classification import confusion, confusion_scores
from geonb.metrics.superres import masked_scores
from geonb.resample import coarsen
from geonb.tasks.translate import _scores as translate_scores


def old_confusion(truth, pred, n):
    """aerial.confusion before torchmetrics: counts [true, predicted] of the labelled pixels."""
    ok = truth != classtable.IGNORE
    return np.bincount(truth[ok].astype(np.int64) * n + pred[ok], minlength=n * n).reshape(n, n)


@pytest.fixture(scope="module")
def dubai():
    pair = aerial.load_pair(3, 1)
    pred = aerial.nearest_mean_classes(pair.photo, aerial.class_mean_colours(pair.photo, pair.classes))
    return pair, pred


def test_confusion_and_class_scores_equal_the_hand_written_ones(dubai):
    pair, pred = dubai
    truth, n = pair.classes, len(classtable.NAMES)
    assert (truth == classtable.IGNORE).any() and len(np.unique(truth)) == n + 1  # real unlabeled pixels, all classes
    cm = old_confusion(truth, pred, n)
    np.testing.assert_array_equal(confusion(truth, pred, n, ignore_index=classtable.IGNORE), cm)
    s = confusion_scores(truth, pred, n, ignore_index=classtable.IGNORE)
    np.testing.assert_array_equal(s["confusion"], cm)
    tp, rows, cols = np.diag(cm), cm.sum(1), cm.sum(0)
    recall = tp / rows  # the translate task's balanced accuracy was their mean, written by hand
    assert 0.3 < s["accuracy"] < 0.95 and s["accuracy"] == pytest.approx(tp.sum() / cm.sum(), abs=1e-6)
    assert s["balanced accuracy"] == pytest.approx(recall.mean(), abs=1e-6)
    np.testing.assert_allclose(s["recall"], recall, atol=1e-6)
    np.testing.assert_allclose(s["precision"], tp / cols, atol=1e-6)
    np.testing.assert_allclose(s["IoU"], tp / (rows + cols - tp), atol=1e-6)
    assert s["mean IoU"] == pytest.approx((tp / (rows + cols - tp)).mean(), abs=1e-6)
    # the translate task's scores of a colour map: class accuracy, balanced accuracy, colour L1 (0-255)
    maps = aerial.colourise(pred)
    scores, counts = translate_scores(maps[None], pair.map[None], truth[None])
    np.testing.assert_array_equal(counts, cm)
    assert scores["balanced accuracy"] == pytest.approx(recall.mean(), abs=1e-6)
    assert scores["L1 (0-255)"] == pytest.approx(np.abs(maps.astype(np.float64) - pair.map).mean(), rel=1e-9)
    # no ignore index (generated digits: every pixel counts); the old code was the same bincount
    digits_true, digits_judged = truth[truth != classtable.IGNORE] % 5, pred[truth != classtable.IGNORE]
    np.testing.assert_array_equal(confusion(digits_true, digits_judged, n),
                                  np.bincount(digits_true.astype(np.int64) * n + digits_judged, minlength=n * n).reshape(n, n))


def test_an_unpredicted_pixel_counts_as_wrong():
    truth = np.array([0, 1, 2, classtable.IGNORE])
    s = confusion_scores(truth, np.array([0, classtable.IGNORE, 2, 1]), 3, ignore_index=classtable.IGNORE)
    assert s["accuracy"] == pytest.approx(2 / 3) and s["confusion"].sum() == 3


@pytest.fixture(scope="module")
def dem():
    truth = load_grid("jacksboro")["elevation"].values.astype("float64")[:336, :400]  # real 90 m DEM
    return truth, bicubic(coarsen(truth, 4), 4)


def test_psnr_and_ssim_from_torchmetrics_match_their_formulas(dem):
    truth, pred = dem
    mask = np.zeros(truth.shape, bool)
    mask[40:300, 50:350] = True
    s = masked_scores(pred, truth, mask)
    peak = truth[mask].max() - truth[mask].min()
    mse = np.mean((pred[mask] - truth[mask]) ** 2)
    assert s["rmse"] == pytest.approx(np.sqrt(mse), rel=1e-9)
    assert s["psnr"] == pytest.approx(10 * np.log10(peak ** 2 / mse), rel=1e-6)  # torchmetrics: float32 log
    # the SSIM metric geonb had before (the loss's 7-px Gaussian window, valid part) over the same box
    box = (slice(None), slice(None), slice(40, 300), slice(50, 350))
    old = float(ssim_loss(torch.as_tensor(pred)[None, None][box], torch.as_tensor(truth)[None, None][box], float(peak)))
    assert 0.5 < s["ssim"] < 0.99 and abs(s["ssim"] - old) < 0.01  # the window sizes (11 vs 7 px) differ a little


def test_the_ssim_loss_is_differentiable_and_one_for_identical_fields(dem):
    truth, pred = dem
    t = torch.as_tensor(truth[:64, :64])[None, None]
    p = torch.as_tensor(pred[:64, :64])[None, None].requires_grad_(True)
    peak = float(t.max() - t.min())
    assert float(ssim_loss(t, t, peak)) == pytest.approx(1.0)
    value = ssim_loss(p, t, peak)
    value.backward()
    assert value < 1 and p.grad.abs().sum() > 0


def test_the_closed_form_gaussian_crps_matches_torchmetrics_ensemble_crps():
    """geonb keeps the closed-form CRPS of N(mean, σ²) (torchmetrics has only the ensemble CRPS); an ensemble
    of 400 draws from that Gaussian gives the same mean score."""
    from torchmetrics.functional.regression import continuous_ranked_probability_score

    from geonb.metrics.probabilistic import gaussian_crps

    rng = np.random.default_rng(0)
    error, sigma = rng.normal(0, 0.6, 200), rng.uniform(0.2, 1.0, 200)  # mean − truth, and σ, per point
    members = torch.as_tensor(error[:, None] + sigma[:, None] * rng.standard_normal((200, 400)))
    ensemble = float(continuous_ranked_probability_score(members, torch.zeros(200, dtype=torch.float64)))
    assert float(np.mean(gaussian_crps(error, sigma))) == pytest.approx(ensemble, rel=0.02)
