"""The models geonb ships (geonb/data/models, trained by benchmarks/train_models.py): listed with their held-out
scores, loaded by name in a fresh offline process, and a training can start from one (`-p init`)."""
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import torch

from geonb import methods
from geonb.cli import main
from geonb.errors import GeonbError
from geonb.modelfile import SHIPPED_DIR, TrainedModel, resolve, shipped
from geonb.normalise import Normaliser
from geonb.registry import get_arch
from geonb.workflow import Run

REPO = Path(__file__).resolve().parents[1]
# one per family (benchmarks/train_models.py FAMILIES)
FAMILIES = {"clouds": "dincae_alboran", "downscale": "srcnn_antarctica_x4", "generate": "acgan_mnist",
            "segment": "unet_seg_dubai", "translate": "pix2pix_dubai"}


def test_every_family_ships_a_small_model_whose_card_has_held_out_scores_and_licence():
    models = shipped()
    assert set(FAMILIES.values()) <= set(models)
    assert sum(p.stat().st_size for p in models.values()) < 17_000_000
    for name, path in models.items():
        assert path.stat().st_size < 8_000_000, name
        torch.load(path, weights_only=True)  # plain tensors, numbers, strings only
        model = TrainedModel.load(name)
        card = dict(model.card())
        scores = model.info["shipped"]["scores"]
        assert len(scores) >= 2 and all(isinstance(v, float) for v in scores.values()), name  # model + baselines
        assert next(iter(scores)) in card["held-out scores"] and card["data licence"].strip(), name
        assert FAMILIES[model.task] == name


def test_geonb_models_lists_each_shipped_model_with_its_scores(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name, path in shipped().items():
        model = TrainedModel.load(path)
        assert f"{name}  ({model.task} task, {model.arch}" in out
        first, value = next(iter(model.info["shipped"]["scores"].items()))
        assert f"{first} {value:.4g}" in out


def test_a_shipped_name_resolves_in_a_fresh_offline_process(tmp_path):
    """From another folder, with every proxy pointing nowhere: the name is found inside the package."""
    dead = "http://127.0.0.1:9"
    env = {**os.environ, "PYTHONPATH": str(REPO), "HTTP_PROXY": dead, "HTTPS_PROXY": dead, "http_proxy": dead,
           "https_proxy": dead, "NO_PROXY": "", "OMP_NUM_THREADS": "1"}
    out = tmp_path / "digits.nc"
    done = subprocess.run([sys.executable, "-m", "geonb", "generate", "--model", "acgan_mnist", "--per-class", "2",
                           "--out", str(out)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    import xarray as xr

    with xr.open_dataset(out) as ds:
        assert ds.sizes["sample"] == 20 and "acgan_mnist" in ds.attrs["source"]


def test_an_unknown_name_is_one_line_naming_the_shipped_ones(capsys):
    with pytest.raises(GeonbError, match="no such model file, and no shipped model of that name.*unet_seg_dubai"):
        TrainedModel.load("unet_seg_dubia")
    assert main(["info", "unet_seg_dubia"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "acgan_mnist" in err


def test_an_existing_path_wins_over_a_shipped_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "acgan_mnist").write_bytes(b"")
    assert resolve("acgan_mnist") == Path("acgan_mnist")
    monkeypatch.chdir(REPO)
    assert resolve("acgan_mnist") == SHIPPED_DIR / "acgan_mnist.pt"


def _srcnn(path, f1=8, seed=1):
    torch.manual_seed(seed)
    args = {"factor": 4, "cond_res": [], "f1": f1, "f2": 4}
    net = get_arch("srcnn").build("generator", **args)
    TrainedModel("downscale", "srcnn", args, [net.state_dict()], {"target": Normaliser(500.0, 100.0)},
                 inputs={"variable": "elevation", "cond": []}).save(path)
    return net.state_dict()


def test_init_starts_from_the_models_weights_and_refuses_another_shape_or_arch(tmp_path):
    saved = _srcnn(tmp_path / "m.pt")
    arch, args = get_arch("srcnn"), {"factor": 4, "cond_res": (), "f1": 8, "f2": 4}
    started = methods.build(arch, args, lr=1e-3, seed=0, device="cpu", init=str(tmp_path / "m.pt")).generator
    fresh = methods.build(arch, args, lr=1e-3, seed=0, device="cpu").generator
    assert all(torch.equal(started.state_dict()[k], v) for k, v in saved.items())
    assert not all(torch.equal(fresh.state_dict()[k], v) for k, v in saved.items())
    with pytest.raises(GeonbError, match=r"-p init .*f1=8.*this run's f1=16"):
        methods.build(arch, {**args, "f1": 16}, lr=1e-3, seed=0, device="cpu", init=str(tmp_path / "m.pt"))
    with pytest.raises(GeonbError, match=r"it is a downscale model \(srcnn\); this run trains unet_seg"):
        Run(tmp_path / "run", arch="unet_seg", init=str(tmp_path / "m.pt"))  # before any step
    with pytest.raises(GeonbError, match="no shipped model of that name"):
        Run(tmp_path / "run", arch="srcnn", init="srcnn_antarctica")


def test_init_from_a_shipped_model_is_in_the_checkpoint_key(tmp_path):
    model = TrainedModel.load("unet_seg_dubai")
    net = methods.build(get_arch(model.arch), model.arch_args, lr=1e-3, seed=0, device="cpu",
                        init="unet_seg_dubai").generator
    assert all(torch.equal(net.state_dict()[k], v) for k, v in model.weights[-1].items())
    plain, tuned = (Run(tmp_path / "r", arch="unet_seg", **extra) for extra in ({}, {"init": "unet_seg_dubai"}))
    assert plain.checkpoint_dir("unet_seg") != tuned.checkpoint_dir("unet_seg")
    _srcnn(tmp_path / "m.pt")
    run = Run(tmp_path / "r", arch="srcnn", init=str(tmp_path / "m.pt"))
    before = run.checkpoint_dir("srcnn")
    _srcnn(tmp_path / "m.pt", seed=2)  # the same path, other weights: never resumed as the same training
    os.utime(tmp_path / "m.pt", ns=(0, os.stat(tmp_path / "m.pt").st_mtime_ns + 10 ** 9))  # 1 s mtime file systems
    assert run.checkpoint_dir("srcnn") != before


def test_the_wheel_carries_the_shipped_models_and_git_keeps_them():
    globs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["geonb"]
    package = {p for g in globs for p in (REPO / "geonb").glob(g)}
    assert set(shipped().values()) <= package
    ignored = subprocess.run(["git", "check-ignore", *map(str, shipped().values())], cwd=REPO, capture_output=True,
                             text=True).stdout
    assert ignored == ""


def test_init_names_a_users_file_from_their_folder_and_a_shipped_one_as_is(tmp_path, monkeypatch):
    """`geonb run` runs the notebooks in the checkout: a relative model path must be made absolute first."""
    from geonb.frontdoor import from_here

    monkeypatch.chdir(tmp_path)
    assert from_here("init", "mine.pt") == str(tmp_path / "mine.pt")
    assert from_here("init", "unet_seg_dubai") == "unet_seg_dubai"
