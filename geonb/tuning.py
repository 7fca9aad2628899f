"""Hyper-parameter search: optuna TPE sampler + Hyperband pruner, study kept in the run dir.

The objective is any ``objective(params, on_epoch, trial_dir) -> val score`` that calls
``on_epoch(epoch, val_score)`` after each epoch; scores come from the validation region
only (the caller's job: never pass test data). Lower is better.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import optuna
import pandas as pd

from .errors import GeonbError
from .plots import save_figure


def suggest(trial: optuna.Trial, search_blocks: bool) -> dict:
    """The search space: lr, batch size, and for ESRGAN N blocks and residual scaling β."""
    params = {"lr": trial.suggest_float("lr", 1e-4, 3e-3, log=True),
              "batch_size": trial.suggest_categorical("batch_size", [8, 16, 32])}
    if search_blocks:
        params["n_blocks"] = trial.suggest_int("n_blocks", 1, 12)
        params["beta"] = trial.suggest_float("beta", 0.05, 0.5)
    return params


def tune(objective, study_dir, n_trials: int, *, seed: int = 0, max_epochs: int = 6, search_blocks: bool = True):
    """Run (or continue) the study in ``study_dir/study.db``; return (best params, trials table, plot)."""
    if n_trials < 1:
        raise GeonbError(f"tune_trials={n_trials}: give at least 1 trial (0 skips tuning).")
    study_dir = Path(study_dir)
    study_dir.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name="downscale", storage=f"sqlite:///{study_dir / 'study.db'}", load_if_exists=True,
        direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max_epochs, reduction_factor=3))

    def run_trial(trial):
        def on_epoch(epoch, score):
            trial.report(score, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return objective(suggest(trial, search_blocks), on_epoch, study_dir / f"trial{trial.number}")

    done = sum(t.state.is_finished() for t in study.trials)
    if done < n_trials:  # a resumed study only runs the trials still missing
        study.optimize(run_trial, n_trials=n_trials - done, show_progress_bar=True)
    trials = study.trials_dataframe(attrs=("number", "value", "state", "params"))
    trials.columns = [c.replace("params_", "") for c in trials.columns]
    return study.best_params, trials.set_index("number"), summary_plot(study, study_dir / "summary.png")


def summary_plot(study: optuna.Study, path) -> Path:
    """Left: score per trial (pruned ones at their last report) and best so far; right: score vs lr."""
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    rows = []
    for t in study.trials:
        value = t.value if t.value is not None else (list(t.intermediate_values.values())[-1] if t.intermediate_values else np.nan)
        rows.append((t.number, value, t.state.name, t.params.get("lr", np.nan)))
    df = pd.DataFrame(rows, columns=["n", "value", "state", "lr"])
    for state, marker in (("COMPLETE", "o"), ("PRUNED", "x")):
        sel = df[df.state == state]
        ax.plot(sel.n, sel.value, marker, label=state.lower())
        ax2.semilogx(sel.lr, sel.value, marker, label=state.lower())
    done = df[df.state == "COMPLETE"]
    if len(done):
        ax.step(done.n, done.value.cummin(), "k-", where="post", label="best so far")
    ax.set(xlabel="trial", ylabel="val RMSE (normalised)", title="optuna TPE + Hyperband")
    ax2.set(xlabel="learning rate", ylabel="val RMSE (normalised)", title="score vs lr")
    ax.legend(fontsize=8)
    return save_figure(fig, path)
