"""Cloud filling on the Alboran cube: dineof vs dincae vs unet on the same cloud-shaped CV points.

For each seed: hide ~10 % of the observed pixels under real cloud shapes of other days
(the score points) and ~5 % more (validation: early stopping and the dincae σ scale);
fill with every method; score RMSE, bias, correlation and, for dincae, 1σ/2σ coverage
and CRPS on exactly the score points. Wall times: training (dineof: choosing the
number of modes) and filling (dineof: the final reconstruction) separately.

    python benchmarks/clouds_benchmark.py results/clouds.csv [--seeds 3] [--epochs 60]

Writes the per-seed table (CSV) and a markdown summary beside it (.md).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr

from geonb.cv import cloud_cv_mask
from geonb.dineof import dineof
from geonb.fill import fill_cube, train_on_cube
from geonb.metrics.probabilistic import score
from geonb import datasets


def run_seed(seed: int, truth, sea, lat, lon, times, methods, options) -> list[dict]:
    obs = np.isfinite(truth)
    cv = cloud_cv_mask(obs, int(0.10 * obs.sum()), seed=1000 + seed, sea=sea)
    inp = np.where(cv, np.nan, truth)
    val = cloud_cv_mask(np.isfinite(inp), int(0.05 * np.isfinite(inp).sum()), seed=2000 + seed, sea=sea)
    rows = []
    if "dineof" in methods:
        days = (times - times[0]) / np.timedelta64(1, "D")
        result = dineof(inp, days, sea=sea, seed=seed, progress=False)
        rows.append({"method": "dineof", "seed": seed, "modes": result.n_modes, "internal_cv_rms": result.cv_rms,
                     "train_s": result.seconds["modes"], "fill_s": result.seconds["final"],
                     **score(truth, result.filled, cv)})
        print(rows[-1], flush=True)
    for arch in [m for m in methods if m in ("dincae", "unet")]:
        with tempfile.TemporaryDirectory() as tmp:
            model = train_on_cube(inp, lat, lon, times, arch=arch, val_points=val, ckpt_dir=tmp, seed=seed, **options)
        gaussian = bool(model.inputs["window"])  # a σ, and snapshots worth comparing with the last epoch alone
        variants = {arch: None, f"{arch}_last_epoch": 1} if gaussian else {arch: None}
        for name, last in variants.items():
            t0 = time.perf_counter()
            mean, sigma = fill_cube(model, inp, lat, lon, times, last=last)
            rows.append({"method": name, "seed": seed, "epochs": len(model.info["history"]),
                         "sigma_scale": model.method_args["sigma_scale"], "train_s": model.info["train_seconds"],
                         "fill_s": time.perf_counter() - t0, **score(truth, mean, cv, sigma)})
            print(rows[-1], flush=True)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="results CSV path (a .md summary is written beside it)")
    parser.add_argument("--data", default=str(datasets.path("alboran")))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0, help="run seeds first-seed … first-seed+seeds−1")
    parser.add_argument("--append", action="store_true", help="add to the rows already in OUT (other seeds)")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--methods", default="dineof,dincae,unet")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    ds = xr.open_dataset(args.data)
    sea = ds.mask.values > 0
    truth = np.where(sea, ds.SST.values, np.nan).astype("float32")
    methods = [m.strip() for m in args.methods.split(",")]
    out = Path(args.out)
    rows = pd.read_csv(out).to_dict("records") if args.append and out.exists() else []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        rows += run_seed(seed, truth, sea, ds.lat.values, ds.lon.values, ds.time.values, methods,
                         {"epochs": args.epochs})
        table = pd.DataFrame(rows)
        out.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(out, index=False)
    cols = [c for c in ("rmse", "bias", "correlation", "cover_1sigma", "cover_2sigma", "crps", "train_s", "fill_s")
            if c in table]
    mean, std = table.groupby("method")[cols].mean(), table.groupby("method")[cols].std()
    lines = [f"# Cloud filling on {Path(args.data).name}: seeds {sorted(int(s) for s in table.seed.unique())}, {args.epochs} epochs", "",
             "mean ± std over seeds, on the same cloud-shaped CV points", "",
             "| method | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for method in mean.index:
        cells = [f"{mean.loc[method, c]:.4f} ± {std.loc[method, c]:.4f}" if np.isfinite(mean.loc[method, c]) else "–"
                 for c in cols]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines.append("")
    means = table.groupby("method").rmse.mean()
    if {"dincae", "dineof"} <= set(means.index):
        lines.append(f"dincae / dineof RMSE (mean of seeds): {means['dincae'] / means['dineof']:.3f}")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
