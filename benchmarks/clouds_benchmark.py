"""The main job's table over seeds: every method on every hole set of the Alboran cube, mean ± std.

For each seed, the clouds task (the main job's defaults, non-quick) lays its hole sets over observed
pixels (real cloud shapes of other days; the seed's square, many and varied squares), trains dincae
and the seed unet on the cube without any of those points, runs DINEOF, biharmonic per day and the
local mean with each set's points hidden, and scores every method on the same points (``rmse_per_set``,
the README's first table). Wall time per seed is the whole run (01→06 steps, no notebooks).

    python benchmarks/clouds_benchmark.py benchmarks/results/clouds_alboran.md [--seeds 3] [--amp off|bf16]

Writes the markdown summary and a CSV of every seed's numbers beside it.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from geonb import Run
from geonb.tasks.clouds.infer import predictions
from geonb.tasks.clouds.steps import rmse_per_set


def run_seed(seed: int, root: Path, amp: str) -> tuple[pd.DataFrame, float]:
    run = Run(root / f"seed{seed}", arch="dincae", seed=seed, amp=amp)
    t0 = time.perf_counter()
    for step in ("data_prep", "simulate", "train", "error_maps"):
        run.step(step)
    seconds = time.perf_counter() - t0
    return rmse_per_set(predictions(run)), seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="markdown summary path (a .csv of every seed is written beside it)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--amp", default="auto", help="bf16 autocast: auto, bf16 or off (the run parameter)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    tables, seconds = {}, {}
    with tempfile.TemporaryDirectory(prefix="geonb-clouds-bench-") as tmp:
        for seed in range(args.seeds):
            tables[seed], seconds[seed] = run_seed(seed, Path(tmp), args.amp)
            print(f"seed {seed}: {seconds[seed]:.0f} s\n{tables[seed].round(4)}", flush=True)
    long = pd.concat(tables, names=["seed", "row"])
    out.parent.mkdir(parents=True, exist_ok=True)
    long.to_csv(out.with_suffix(".csv"))
    rows = long.groupby(level="row", sort=False)
    mean, std = rows.mean(), rows.std()
    sets = list(mean.columns)
    lines = [f"# The main job over {args.seeds} seeds: RMSE (°C) per hole set on the Alboran cube (amp {args.amp})", "",
             "mean ± std over seeds; each set filled with only its own points hidden; `n points` = distinct "
             "observed pixels hidden (mean over seeds)", "",
             "| method | " + " | ".join(sets) + " |", "|---" * (len(sets) + 1) + "|"]
    for name in mean.index:
        if name == "n points":
            cells = [f"{mean.loc[name, c]:,.0f}" for c in sets]
        else:
            cells = [f"{mean.loc[name, c]:.3f} ± {std.loc[name, c]:.3f}" if np.isfinite(mean.loc[name, c]) else "–"
                     for c in sets]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Wall time per seed (steps 01→04, 2 CPU cores): "
              + ", ".join(f"{s:.0f} s" for s in seconds.values()) + ".", "",
              f"Command: `python benchmarks/clouds_benchmark.py {args.out} --seeds {args.seeds} --amp {args.amp}`"]
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
