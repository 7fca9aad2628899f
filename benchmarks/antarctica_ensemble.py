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

from geonb.methods.gaussian_nll import GaussianNLL
from geonb.metrics.probabilistic import fit_sigma_scale, quantile_bins, score, spread_skill
from geonb.modelfile import TrainedModel
from geonb.predict import Predictor
from geonb.resample import coarsen
from geonb.tasks.downscale.data import _load
from geonb.tasks.downscale.infer import predict_grid
from geonb.workflow import Run

from antarctica_sigma import COMMON, PLAN


def scores(truth, mean, sd, cells) -> dict:
    """04's scores (RMSE, coverage of ±1σ and ±2σ), the shape of z = error / σ (RMS 1 and kurtosis 3 for a
    Gaussian) and the spread–skill ratio of the top and bottom σ deciles."""
    s = score(truth, mean, cells, sd)
    error, z = mean[cells] - truth[cells], (mean[cells] - truth[cells]) / sd[cells]
    skill = spread_skill(error, sd[cells])["rmse"]
    return {"cells": s["n"], "RMSE m": s["rmse"], "1σ %": 100 * s["cover_1sigma"], "2σ %": 100 * s["cover_2sigma"],
            "RMS z": float(np.sqrt(np.mean(z ** 2))), "kurtosis z": float(kurtosis(z, fisher=False)),
            "RMSE top ÷ bottom σ decile": float(skill.iloc[-1] / skill.iloc[0])}


def decile_scaled(error, sd, val, bins: int = 10) -> np.ndarray:
    """σ with one ``fit_sigma_scale`` per quantile bin of the val cells' σ (edges from the val cells)."""
    which = quantile_bins(sd, bins, reference=sd[val])
    return sd * np.asarray([fit_sigma_scale(error[val & (which == k)], sd[val & (which == k)]) for k in range(bins)])[which]


def window_miss(cover: dict) -> np.ndarray:
    """The larger miss of issue 28's windows, 68 ± 5 % within 1σ and 95 ± 3 % within 2σ, in units of its window:
    as a ``fit_sigma_scale`` criterion, the scale that puts both coverages deepest inside them."""
    return np.maximum(np.abs(cover[1] - 0.68) / 0.05, np.abs(cover[2] - 0.95) / 0.03)


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
        # the mixture as the predictor combines gaussian_nll's snapshots: (mean, log-variance) per member
        mixture = GaussianNLL.combine([np.stack([m, np.log(s ** 2)])[None] for m, s in group])
        mean, sd = mixture["mean"][0], np.sqrt(mixture["variance"][0])
        scale = fit_sigma_scale(mean[val] - truth[val], sd[val])  # ≈ 1 for one member: its σ was fitted on the val region
        rules = [("", scale, scale * sd)]
        if len(group) == 1:  # two other rules fitted on the val cells: a scale per σ decile, the windows' scale
            window = fit_sigma_scale(mean[val] - truth[val], sd[val], miss=window_miss)
            rules += [(", a scale per σ decile", np.nan, decile_scaled(mean - truth, sd, val)),
                      (", the scale aimed at the windows", window, window * sd)]
        for rule, k, sd_rule in rules:
            for where, cells in (("val", val), ("test", test)):
                rows[(label + rule, where)] = {"scale": k, **scores(truth, mean, sd_rule, cells)}
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
