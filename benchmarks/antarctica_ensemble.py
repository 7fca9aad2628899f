"""A deep ensemble of σ models for Antarctic ×4 downscaling: are its 1σ and 2σ coverages both right? (issue 28)

Does averaging seeds give σ the shape one model lacks (acceptance 1)? The members are ``antarctica_sigma.py``'s
seed runs (srcnn ×4 with its σ head, each member's σ already scaled by its own val fit); the ensemble's
predictive distribution is their equal mixture, summarised by its mean and variance (Lakshminarayanan et al.
2017: mean of the means; variance = mean of the variances + variance of the means), its σ scaled once more by
one number fitted on the val blocks (``fit_sigma_scale``, the rule every σ model uses), everything scored on the
test blocks. Beside it, each seed alone with two other rules fitted on the val blocks: a scale per σ decile (a
binned recalibration: can a function of σ alone fix what one scale cannot?), and the one scale that puts both
val coverages deepest inside issue 28's windows (does the val → test shift alone break it?).

    for s in 0 1 2 3 4; do python benchmarks/antarctica_sigma.py runs/sigma_s$s srcnn --seed $s; done
    python benchmarks/antarctica_ensemble.py 0 1 2 3 4 [--runs runs/sigma_s{}]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import kurtosis

from geonb.metrics.probabilistic import fit_sigma_scale, spread_skill
from geonb.modelfile import TrainedModel
from geonb.predict import Predictor
from geonb.resample import coarsen
from geonb.tasks.downscale.data import _load
from geonb.tasks.downscale.infer import predict_grid
from geonb.workflow import Run

from antarctica_sigma import COMMON, PLAN


def scores(error, sigma) -> dict:
    """Coverage of ±1σ and ±2σ, the shape of z = error / σ (RMS 1 and kurtosis 3 for a Gaussian), spread–skill."""
    z = error / sigma
    ss = spread_skill(error, sigma)
    return {"cells": error.size, "RMSE m": float(np.sqrt(np.mean(error ** 2))), "1σ %": 100 * np.mean(np.abs(z) <= 1),
            "2σ %": 100 * np.mean(np.abs(z) <= 2), "RMS z": float(np.sqrt(np.mean(z ** 2))),
            "kurtosis z": float(kurtosis(z, fisher=False)),
            "RMSE top ÷ bottom σ decile": float(ss["rmse"].iloc[-1] / ss["rmse"].iloc[0])}


def decile_scaled(error, sd, val, bins: int = 10) -> np.ndarray:
    """σ with one ``fit_sigma_scale`` per quantile bin of the val cells' σ (edges from the val cells)."""
    edges = np.quantile(sd[val], np.linspace(0, 1, bins + 1))
    which = np.clip(np.searchsorted(edges, sd, side="right") - 1, 0, bins - 1)
    scales = [fit_sigma_scale(error[val & (which == k)], sd[val & (which == k)]) for k in range(bins)]
    return sd * np.asarray(scales)[which]


def window_scale(error, sd) -> float:
    """The scale that puts the 1σ and 2σ coverages of ``error`` deepest inside issue 28's windows, 68 ± 5 % and
    95 ± 3 % (the larger miss in units of its window, minimised): the target itself, fitted on val cells."""
    z = np.sort(np.abs(error) / sd)
    scales = np.linspace(0.5, 1.5, 1001)
    miss = np.maximum(*(np.abs(np.searchsorted(z, k * scales, side="right") / z.size - p) / w
                        for k, p, w in ((1, 0.68, 0.05), (2, 0.95, 0.03))))
    return float(scales[np.argmin(miss)])


def main(seeds: list[int], runs: str, out: Path) -> None:
    members, ds = [], None
    for seed in seeds:
        run = Run(runs.format(seed), arch="srcnn", seed=seed, **COMMON, **PLAN["srcnn"])
        ds = _load(run) if ds is None else ds
        model = TrainedModel.load(run.model_path("srcnn_x4"), task="downscale")
        members.append(predict_grid(Predictor(model), coarsen(ds["target"].values.astype("float64"), 4), sigma=True))
    truth, valid, split = ds["target"].values, ds["valid"].values.astype(bool), ds["split"].values
    has = valid & np.all([np.isfinite(s) for _, s in members], axis=0)
    val, test = has & (split == 1), has & (split == 2)
    rows, groups = {}, [(f"seed {seed}", [m]) for seed, m in zip(seeds, members)]
    groups += [(f"ensemble of {n}", members[:n]) for n in range(2, len(members) + 1)]
    for label, group in groups:
        means = np.stack([m for m, _ in group])
        mean, sd = means.mean(0), np.sqrt(np.mean([s ** 2 for _, s in group], axis=0) + means.var(0))
        scale = fit_sigma_scale(mean[val] - truth[val], sd[val])  # ≈ 1 for one member: its σ was fitted on the val region
        for where, cells in (("val", val), ("test", test)):
            rows[(label, where)] = {"scale": scale, **scores(mean[cells] - truth[cells], scale * sd[cells])}
        if len(group) == 1:  # two other rules fitted on the val cells: a scale per σ decile, the windows' scale
            window = window_scale(mean[val] - truth[val], sd[val])
            for rule, sd_rule, k in (("a scale per σ decile", decile_scaled(mean - truth, sd, val), np.nan),
                                     ("the scale aimed at the windows", window * sd, window)):
                for where, cells in (("val", val), ("test", test)):
                    rows[(f"{label}, {rule}", where)] = {"scale": k, **scores(mean[cells] - truth[cells], sd_rule[cells])}
    decile = spread_skill(mean[test] - truth[test], scale * sd[test]).round(3)
    table = pd.DataFrame(rows).T.round(3)
    text = (f"# Deep ensemble of σ models, Antarctic ×4, srcnn (issue 28)\n\n`python benchmarks/antarctica_ensemble.py "
            f"{' '.join(map(str, seeds))} --runs {runs}`\n\n```\n{table.to_string()}\n```\n\n"
            f"Spread–skill of the last row's model ({groups[-1][0]}) on the test blocks (σ deciles):\n\n"
            f"```\n{decile.to_string()}\n```\n")
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("seeds", nargs="+", type=int, help="the seeds of antarctica_sigma.py's runs, the members")
    parser.add_argument("--runs", default="runs/sigma_s{}", help="their run folders, {} the seed")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "antarctica_ensemble.md")
    args = parser.parse_args()
    main(args.seeds, args.runs, args.out)
