import torch

from geonb.training import fit


def _problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(200, 3, generator=g)
    y = x @ torch.tensor([1.5, -2.0, 0.5]) + 0.1 * torch.randn(200, generator=g)
    return x, y


def _train(ckpt_dir, epochs, patience=50):
    torch.manual_seed(123)  # a fresh process: weights re-initialised before any resume
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = _problem()

    def batches(epoch):
        order = torch.randperm(150, generator=torch.Generator().manual_seed(epoch))
        for i in range(0, 150, 10):
            idx = order[i:i + 10]
            yield x[idx], y[idx]

    def step(batch):
        xb, yb = batch
        # dropout-like noise uses the global RNG: resume must restore it to match
        loss = ((model(xb + 0.01 * torch.randn_like(xb)).squeeze(1) - yb) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"loss": loss.item()}

    def validate():
        return {"val_loss": ((model(x[150:]).squeeze(1) - y[150:]) ** 2).mean()}

    history = fit({"m": model}, {"m": opt}, batches, step, validate, ckpt_dir, epochs=epochs, patience=patience)
    return model, history


def test_killed_run_resumes_to_the_same_result(tmp_path):
    straight, h_straight = _train(tmp_path / "a", epochs=6)
    _train(tmp_path / "b", epochs=3)  # "killed" after epoch 3
    resumed, h_resumed = _train(tmp_path / "b", epochs=6)
    assert [h["epoch"] for h in h_resumed] == list(range(1, 7))
    assert h_resumed == h_straight
    assert torch.equal(resumed.weight, straight.weight)


def test_learns_and_keeps_best_checkpoint(tmp_path):
    model, history = _train(tmp_path / "c", epochs=8)
    assert history[-1]["val_loss"] < 0.1 * history[0]["val_loss"]
    assert (tmp_path / "c" / "best.pt").exists() and (tmp_path / "c" / "last.pt").exists()
    saved = torch.load(tmp_path / "c" / "last.pt", weights_only=True)
    assert {"optimizers", "rng", "history", "epoch"} <= set(saved)


def test_early_stopping_stops(tmp_path):
    _, history = _train(tmp_path / "d", epochs=200, patience=2)
    assert len(history) < 200


def test_other_settings_never_resume_an_old_checkpoint():
    from geonb.checkpoints import config_key

    assert config_key({"lr": 1e-3, "data": "a"}) == config_key({"data": "a", "lr": 1e-3})
    assert config_key({"lr": 1e-3, "data": "a"}) != config_key({"lr": 1e-3, "data": "b"})


def test_diverged_training_says_so(tmp_path):
    import pytest

    from geonb import GeonbError

    model = torch.nn.Linear(1, 1)
    with pytest.raises(GeonbError, match="validation loss is nan at epoch 1; the training diverged"):
        fit({"m": model}, {"m": torch.optim.SGD(model.parameters(), lr=0.1)}, lambda e: [], lambda b: {},
            lambda: {"val_loss": float("nan")}, tmp_path, epochs=3)
