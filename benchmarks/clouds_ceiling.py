"""Is what biharmonic misses on the Alboran cube predictable from the neighbouring days?

For each hole set of the main job (the clouds task's own sets, per seed), biharmonic per day fills day t.
The same hole mask laid on days t−1 and t+1, where they are observed, gives biharmonic's residual there
(observed − biharmonic). If the fine structure biharmonic misses persisted from day to day, today's
residual would follow the neighbours' mean residual: the least-squares weight α of that transfer and the
correlation of the two residuals say how much of it does. α is fitted on the points themselves (an upper
bound on what a method could get from that information); the RMSE of biharmonic + α·residual is beside
biharmonic's, and the pixel-noise floor (std of a pixel minus the mean of its 4 neighbours, / √1.25).

    python benchmarks/clouds_ceiling.py benchmarks/results/clouds_ceiling.md [--seeds 3]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from geonb import Run, baselines, metrics
from geonb.tasks.clouds.data import _field, _points


def neighbour_residual(values: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Mean over days t±1 of biharmonic's residual under day t's hole mask, where that day is observed."""
    nt = len(values)
    parts = []
    for shift in (-1, 1):
        residual = np.full(values.shape, np.nan)
        for t in range(max(0, -shift), min(nt, nt - shift)):
            hidden = points[t] & np.isfinite(values[t + shift])
            filled = baselines.biharmonic(np.where(hidden, np.nan, values[t + shift])[None], hidden[None])[0]
            residual[t] = np.where(hidden, values[t + shift] - filled, np.nan)
        parts.append(residual)
    stack = np.stack(parts)
    count = np.isfinite(stack).sum(0)
    return np.where(count > 0, np.nansum(stack, 0) / np.maximum(count, 1), np.nan)


def noise_floor(values: np.ndarray) -> float:
    centre = values[:, 1:-1, 1:-1]
    around = (values[:, :-2, 1:-1] + values[:, 2:, 1:-1] + values[:, 1:-1, :-2] + values[:, 1:-1, 2:]) / 4
    diff = (centre - around)[np.isfinite(centre - around)]
    return float(diff.std() / np.sqrt(1.25))  # white noise: var(x − mean of 4) = 1.25 σ²


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="geonb-clouds-ceiling-") as tmp:
        for seed in range(args.seeds):
            run = Run(Path(tmp) / f"seed{seed}", arch="dincae", seed=seed)
            run.step("simulate")
            field, _ = _field(run)
            values = field.values.astype("float64")
            for name, points in _points(run)[2].items():
                bh = baselines.biharmonic(np.where(points, np.nan, values), points)
                near = neighbour_residual(values, points)
                both = points & np.isfinite(near)
                today = (values - bh)[both]
                alpha = float(np.sum(today * near[both]) / np.sum(near[both] ** 2))
                corrected = np.where(both, bh + alpha * np.nan_to_num(near), bh)
                rows.append({"seed": seed, "hole set": name, "biharmonic": metrics.rmse(bh, values, points),
                             "biharmonic + α·neighbour residual": metrics.rmse(corrected, values, points),
                             "α": alpha, "correlation": float(np.corrcoef(today, near[both])[0, 1]),
                             "points with a neighbour": float(both.sum() / points.sum())})
                print(rows[-1], flush=True)
            floor = noise_floor(values)
    table = pd.DataFrame(rows)
    summary = table.drop(columns="seed").groupby("hole set", sort=False).agg(["mean", "std"])
    lines = [f"# What biharmonic misses on the Alboran cube, and the neighbouring days ({args.seeds} seeds)", "",
             "| hole set | " + " | ".join(c for c, _ in summary.columns[::2]) + " |",
             "|---" * (len(summary.columns) // 2 + 1) + "|"]
    for name, row in summary.iterrows():
        cells = [f"{row[(c, 'mean')]:.3f} ± {row[(c, 'std')]:.3f}" for c, _ in summary.columns[::2]]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", f"Pixel-noise floor (std of a pixel minus its 4 neighbours' mean, / √1.25): {floor:.3f} °C.",
              "RMSE in °C on each set's points; α fitted on those same points (an upper bound).", "",
              f"Command: `python benchmarks/clouds_ceiling.py {args.out} --seeds {args.seeds}`"]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
