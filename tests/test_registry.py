"""Registries and the one model file: explicit network arguments, every arch complete, old and
foreign model files refused with a message that says what they are."""
from __future__ import annotations

import inspect

import pytest
import torch

from geonb import losses
from geonb.errors import GeonbError
from geonb.methods.base import Method
from geonb.models.base import EDGES, GeonbNet
from geonb.modelfile import FORMAT, TrainedModel
from geonb.normalise import Normaliser
from geonb.registry import ARCHS, LOSSES, METHODS, NETWORKS, get_arch, list_archs
from geonb.tasks import get_task


def test_unknown_network_argument_names_the_valid_ones():
    with pytest.raises(GeonbError, match=r"network 'unet' takes no argument\(s\) \['in_chanels'\]; "
                                         r"it takes: in_channels, out_channels, widths"):
        NETWORKS.build("unet", in_chanels=2)
    # the same through an arch: dincae's network takes in_channels (not geonb 0.1's window)
    with pytest.raises(GeonbError, match=r"\['window'\].*in_channels, widths"):
        get_arch("dincae").build("generator", window=3)
    assert NETWORKS.build("unet", in_channels=3, out_channels=2)(torch.zeros(1, 3, 16, 16)).shape == (1, 2, 16, 16)


def test_unknown_names_list_the_registered_ones():
    with pytest.raises(GeonbError, match=r"unknown network 'vgg'; valid names: .*esrgan.*unet"):
        NETWORKS.get("vgg")
    with pytest.raises(GeonbError, match=r"unknown method 'l2'; valid names: .*gaussian_nll.*regression"):
        METHODS.get("l2")


@pytest.mark.parametrize("name", NETWORKS.names())
def test_every_network_is_a_geonb_net_with_consistent_tiling(name):
    """What the predictor reads (``models.base.GeonbNet``), declared by every network and consistent:
    whole numbers of cells, a halo on the pooling grid, a known edge."""
    cls = NETWORKS.get(name)
    assert isinstance(cls, type) and issubclass(cls, GeonbNet), name
    needed = {p: 3 for p, v in inspect.signature(cls).parameters.items() if v.default is v.empty}
    with torch.device("meta"):
        net = cls(**needed)
    for attr, least in (("factor", 1), ("halo", 0), ("multiple", 1)):
        value = getattr(net, attr)
        assert isinstance(value, int) and not isinstance(value, bool) and value >= least, (attr, value)
    assert net.halo % net.multiple == 0, (net.halo, net.multiple)
    assert net.edge in EDGES


def test_every_method_says_whether_it_trains_data_parallel():
    assert {n for n in METHODS.names() if not METHODS.get(n).data_parallel} == {"stagewise"}
    assert not get_arch("rsrcnn").data_parallel and get_arch("srcnn").data_parallel


def test_losses_are_one_registry_and_a_wrong_kind_lists_the_valid_names():
    assert set(LOSSES.names()) == {"mse", "l1", "masked", "deepbedmap", "pair_bce", "ragan", "patch_bce"}
    with pytest.raises(GeonbError, match=r"no pixel loss 'ragan'; valid names: l1, mse\."):
        METHODS.get("regression")({"generator": torch.nn.Linear(1, 1)}, lr=1e-3, loss="ragan")
    with pytest.raises(GeonbError, match=r"no adversarial loss 'l1'; valid names: pair_bce, patch_bce, ragan"):
        losses.adversarial_loss("l1", torch.nn.Identity())
    with pytest.raises(GeonbError, match=r"loss 'l1' takes no argument\(s\) \['wieght'\]"):
        losses.content_loss("l1", wieght=100.0)
    pred, y = torch.randn(2, 1, 4, 4), torch.randn(2, 1, 4, 4)
    loss, logs = losses.content_loss("l1", weight=100.0)(pred, None, y, None)  # pix2pix's λ·L1
    assert torch.equal(loss, 100.0 * torch.nn.functional.l1_loss(pred, y)) and logs == {"l1": pytest.approx(loss.item() / 100)}


@pytest.mark.parametrize("name", ARCHS.names())
def test_every_arch_has_its_method_networks_and_task(name):
    arch = get_arch(name)
    method = METHODS.get(arch.method)  # GeonbError if the method is not registered
    assert issubclass(method, Method)
    assert "generator" in arch.networks
    assert set(method.roles) <= set(arch.networks), (arch.networks, method.roles)
    for role, network in arch.networks.items():
        assert callable(NETWORKS.get(network)), (role, network)
    assert get_task(arch.task).name == arch.task
    assert arch.lr > 0


def test_the_expected_archs_are_registered():
    assert {(a.name, a.task) for a in list_archs()} >= {
        ("unet", "inpaint"), ("ctxgan", "inpaint"), ("srcnn", "downscale"), ("rsrcnn", "downscale"),
        ("srgan", "downscale"), ("dincae", "clouds")}
    assert get_arch("srgan").lr == pytest.approx(1.7e-4)


def _model(**changes) -> TrainedModel:
    torch.manual_seed(0)
    net = get_arch("srcnn").build("generator", factor=4, cond_res=[], f1=8, f2=4)
    fields = dict(task="downscale", arch="srcnn", arch_args={"factor": 4, "cond_res": [], "f1": 8, "f2": 4},
                  weights=[net.state_dict()], norms={"target": Normaliser(500.0, 100.0)},
                  inputs={"variable": "elevation", "cond": []}, info={"trained_on": "test"})
    return TrainedModel(**{**fields, **changes})


def test_model_file_round_trip(tmp_path):
    model = _model()
    path = model.save(tmp_path / "m.pt")
    raw = torch.load(path, weights_only=True)  # plain tensors, numbers, strings, lists and dicts only
    assert raw["format"] == FORMAT and raw["norms"] == {"target": [500.0, 100.0]}
    loaded = TrainedModel.load(path, task="downscale")
    assert (loaded.task, loaded.arch, loaded.arch_args, loaded.norms, loaded.inputs, loaded.info) == \
           (model.task, model.arch, model.arch_args, model.norms, model.inputs, model.info)
    assert loaded.method == "regression"
    net, again = model.network(), loaded.network()
    x = torch.randn(1, 1, 6, 7)
    assert not net.training and not again.training
    assert torch.equal(net(x), again(x))


@pytest.mark.parametrize("saved,what", [
    ({"arch": "unet", "in_channels": 2, "weights": {}, "norm_mean": 0.0, "prefill": "zero"},
     "a geonb 0.1 inpainting model"),
    ({"format": "geonb-downscale/1", "factor": 4, "cond_res": [], "state": {}},
     "a geonb 0.1 downscaling model"),
    ({"arch": "dincae", "params": {"window": 3}, "norm": [0.0, 1.0], "states": []},
     "a geonb 0.1 cloud-filling model"),
    ({"weights": torch.zeros(1)}, "not a geonb model file"),
])
def test_old_and_foreign_files_say_what_they_are(tmp_path, saved, what):
    torch.save(saved, tmp_path / "old.pt")
    with pytest.raises(GeonbError, match=f"is {what} .*retrain it"):
        TrainedModel.load(tmp_path / "old.pt")


def test_a_model_of_another_task_is_refused(tmp_path):
    path = _model().save(tmp_path / "sr.pt")
    with pytest.raises(GeonbError, match=r"is a downscale model \(srcnn\); this needs an? inpaint model"):
        TrainedModel.load(path, task="inpaint")
    assert TrainedModel.load(path, task="downscale").task == "downscale"


def test_unknown_network_argument_in_a_model_file_is_refused_at_load(tmp_path):
    # Weights that would load into nothing: the error must come from the argument check, before any build.
    bad = _model(arch_args={"factor": 4, "cond_res": [], "depth": 3}, weights=[{}])
    path = bad.save(tmp_path / "bad.pt")
    with pytest.raises(GeonbError, match=r"takes no argument\(s\) \['depth'\]; it takes: factor, cond_res, f1, f2"):
        TrainedModel.load(path)


def test_damaged_or_empty_model_files(tmp_path):
    path = _model().save(tmp_path / "m.pt")
    raw = torch.load(path, weights_only=True)
    torch.save({k: v for k, v in raw.items() if k != "norms"}, tmp_path / "damaged.pt")
    with pytest.raises(GeonbError, match=r"not a geonb model file: no \['norms'\]"):
        TrainedModel.load(tmp_path / "damaged.pt")
    torch.save({**raw, "weights": []}, tmp_path / "empty.pt")
    with pytest.raises(GeonbError, match="weights must be 1 to 100 state dicts"):
        TrainedModel.load(tmp_path / "empty.pt")
    with pytest.raises(GeonbError, match="no such model"):
        TrainedModel.load(tmp_path / "missing.pt")


def test_the_readme_arch_table_lists_every_arch_with_its_task():
    """README's table under "Architectures" is what `geonb archs` lists: a new arch without its row (or a row
    left behind) fails here."""
    import re

    from .conftest import REPO

    text = (REPO / "README.md").read_text()
    table = text[text.index("## Architectures"):].split("\n## ")[0]
    rows = dict(re.findall(r"^\| `(\w+)` \| (\w+) \|", table, re.M))
    assert rows == {a.name: a.task for a in list_archs()}
