"""The one predictor: padding, tiling with a halo, batches and weight snapshots.

The downscaling seam test (tiled = one-shot with the default halo) is in test_downscale.py.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from geonb.errors import GeonbError
from geonb.methods.base import average_weights
from geonb.methods.gaussian_nll import GaussianNLL
from geonb.methods.masked import Masked
from geonb.modelfile import TrainedModel
from geonb.normalise import Normaliser
from geonb.predict import Predictor, pad_to_multiple
from geonb.registry import get_arch

torch.set_num_threads(1)
# same-resolution U-Nets: (arch, task, network arguments)
UNETS = [("unet", "inpaint", {"in_channels": 2}),
         ("dincae", "clouds", {"in_channels": 10, "widths": [8, 12, 16, 24]})]


def _model(arch, task, args, n_weights=1, seed=0) -> TrainedModel:
    torch.manual_seed(seed)
    weights = [get_arch(arch).build("generator", **args).state_dict() for _ in range(n_weights)]
    return TrainedModel(task, arch, args, weights, {"field": Normaliser(0.0, 1.0)})


def test_pad_to_multiple_pads_bottom_right_and_returns_the_size():
    x = torch.arange(15.0).reshape(1, 1, 3, 5)
    padded, size = pad_to_multiple(x, 4)
    assert padded.shape == (1, 1, 4, 8) and size == (3, 5)
    assert torch.equal(padded[..., :3, :5], x) and padded[..., 3:, :].abs().sum() == 0 and padded[..., 5:].abs().sum() == 0
    assert pad_to_multiple(torch.zeros(1, 1, 8, 16), 8)[0].shape == (1, 1, 8, 16)  # already a multiple: unchanged


@pytest.mark.parametrize("arch,task,args", UNETS)
def test_unet_tiles_with_a_sufficient_halo_equal_one_shot(arch, task, args):
    """A U-Net pools by ``multiple``: tiles whose offsets are multiples of it see the same pooling grid as
    one pass, so with a halo wider than the receptive field the tiles agree with one pass exactly."""
    predictor = Predictor(_model(arch, task, args), float64=True)
    m = predictor.multiple
    assert m == {"unet": 8, "dincae": 16}[arch]
    x = torch.randn(2, args["in_channels"], 53, 70, dtype=torch.float64)  # ragged: not a multiple of m
    halo = 4 * m
    one = predictor(x, halo=halo)["mean"]
    assert one.shape == (2, 53, 70)
    for tile in (m, 2 * m, 3 * m):
        assert np.abs(predictor(x, tile=tile, halo=halo)["mean"] - one).max() < 1e-12, tile
    # the default halo (the network's receptive-field radius) is enough: tiled = one-shot with that halo
    default = predictor(x, halo=predictor.halo)["mean"]
    assert np.abs(predictor(x, tile=2 * m)["mean"] - default).max() < 1e-12
    # a halo narrower than the receptive field leaves seams
    assert np.abs(predictor(x, tile=2 * m, halo=m)["mean"] - predictor(x, halo=m)["mean"]).max() > 1e-7


def test_batches_do_not_change_the_result():
    predictor = Predictor(_model(*UNETS[0]))
    x = torch.randn(5, 2, 24, 40)
    np.testing.assert_allclose(predictor(x, batch=2)["mean"], predictor(x, batch=32)["mean"], rtol=1e-5, atol=1e-6)


def test_gaussian_snapshots_combine_means_and_variances():
    # two snapshots: means 1 and 3, variances 0.5 and 1.5 → mean 2, variance (0.5+1.5)/2 + var(1, 3) = 1 + 1
    outputs = [np.stack([np.full((1, 2, 2), mu), np.full((1, 2, 2), np.log(v))], 1) for mu, v in ((1.0, 0.5), (3.0, 1.5))]
    combined = GaussianNLL.combine(outputs)
    np.testing.assert_allclose(combined["mean"], 2.0)
    np.testing.assert_allclose(combined["variance"], 2.0)


def test_snapshots_last_and_weight_averaging():
    args = {"in_channels": 10, "widths": [8, 12, 16, 24]}
    model = _model("dincae", "clouds", args, n_weights=3)
    x = torch.randn(2, 10, 32, 32)
    every = Predictor(model)(x)
    assert set(every) == {"mean", "variance"} and (every["variance"] > 0).all()
    last = Predictor(model)(x, last=1)
    alone = Predictor(TrainedModel("clouds", "dincae", args, model.weights[-1:], model.norms))(x)
    np.testing.assert_allclose(last["mean"], alone["mean"], rtol=1e-6, atol=1e-7)
    assert not np.allclose(every["mean"], last["mean"])  # the other snapshots count
    averaged = Predictor(model, average="weights")(x)
    one_pass = Predictor(TrainedModel("clouds", "dincae", args, [average_weights(model.weights)], model.norms))(x)
    np.testing.assert_allclose(averaged["mean"], one_pass["mean"], rtol=1e-6, atol=1e-7)
    with pytest.raises(GeonbError, match="average='median'"):
        Predictor(model, average="median")


def test_the_predictor_runs_the_methods_forward_pass():
    """``Method.infer`` is the one forward pass: a recipe that predicts differently (here test-time
    augmentation by a horizontal flip) overrides it and the predictor, tiles and all, follows."""
    class Flipped(Masked):
        def infer(self, net, x):
            return (super().infer(net, x) + super().infer(net, x.flip(-1)).flip(-1)) / 2

    predictor = Predictor(_model(*UNETS[0]), float64=True)
    x = torch.randn(1, 2, 24, 40, dtype=torch.float64)
    plain, flipped = predictor(x)["mean"], predictor(x.flip(-1))["mean"][..., ::-1]
    predictor.method = Flipped.for_prediction({})
    np.testing.assert_allclose(predictor(x)["mean"], (plain + flipped) / 2, rtol=0, atol=1e-12)
