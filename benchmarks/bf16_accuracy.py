"""Does bf16 autocast on the CPU change a family's held-out scores? float32 against bf16, over seeds.

For one arch (its task's defaults, or the ``-p`` parameters given), train and score every seed twice —
``amp off`` (float32) and ``amp bf16`` — through 04 (``error_maps``), and compare each held-out number
of the task's metrics table: the difference of the means against the pooled seed-to-seed std. A family
whose numbers all move by less than that spread may train in bf16 under ``amp auto`` (``Task.cpu_bf16``).

    python benchmarks/bf16_accuracy.py unet benchmarks/results/bf16_unet.md [--seeds 3] [-p name value]

Writes the markdown table (and the per-seed CSV beside it) and prints it.
"""
from __future__ import annotations

import argparse
import ast
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from geonb import Run


def scores(run: Run) -> pd.Series:
    """Every number of the run's held-out metrics table(s), named ``table · row · column``."""
    out = {}
    for path in sorted(run.metrics_path("x").parent.glob("*.csv")):
        table = pd.read_csv(path)
        numbers = table.select_dtypes("number")
        labels = table.drop(columns=numbers.columns).astype(str).agg(" / ".join, axis=1)  # the index columns
        for row, (_, values) in zip(labels, numbers.iterrows()):
            for column, value in values.items():
                out[f"{path.stem} · {row} · {column}"] = value
    return pd.Series(out, dtype=float)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("arch")
    parser.add_argument("out")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    args = parser.parse_args(argv)
    params = {}
    for name, value in args.p:
        try:
            params[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            params[name] = value
    rows, seconds = [], {"off": [], "bf16": []}
    with tempfile.TemporaryDirectory(prefix="geonb-bf16-") as tmp:
        for seed in range(args.seeds):
            for amp in ("off", "bf16"):
                run = Run(Path(tmp) / f"{amp}{seed}", arch=args.arch, seed=seed, amp=amp, **params)
                t0 = time.perf_counter()
                run.step("train")
                seconds[amp].append(time.perf_counter() - t0)
                run.step("error_maps")
                rows.append(scores(run).rename((amp, seed)))
                print(f"seed {seed} {amp}: train {seconds[amp][-1]:.0f} s", flush=True)
    table = pd.DataFrame(rows)
    table.index = pd.MultiIndex.from_tuples(table.index, names=["amp", "seed"])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out.with_suffix(".csv"))
    # the classical baselines (no training) and empty numbers are the same in both: only what was trained
    same = [c for c in table.columns if table[c].isna().all() or np.allclose(
        table.xs("off", level="amp")[c], table.xs("bf16", level="amp")[c], equal_nan=True)]
    table = table.drop(columns=same)
    mean, std = table.groupby(level="amp").mean(), table.groupby(level="amp").std()
    pooled = np.sqrt((std.loc["off"] ** 2 + std.loc["bf16"] ** 2) / 2)
    diff = mean.loc["bf16"] - mean.loc["off"]
    within = (diff.abs() <= pooled) | (diff.abs() < 1e-12)
    lines = [f"# bf16 autocast on the CPU against float32: `{args.arch}`, {args.seeds} seeds"
             + (f", {params}" if params else ""), "",
             "| number | float32 | bf16 | difference | pooled std | within |", "|---|---|---|---|---|---|"]
    for name in table.columns:
        lines.append(f"| {name} | {mean.loc['off', name]:.4g} ± {std.loc['off', name]:.2g} | "
                     f"{mean.loc['bf16', name]:.4g} ± {std.loc['bf16', name]:.2g} | {diff[name]:+.3g} | "
                     f"{pooled[name]:.2g} | {'yes' if within[name] else '**no**'} |")
    lines += ["", f"{int(within.sum())} of {len(within)} numbers move by less than the pooled seed-to-seed std "
              f"({len(same)} others, of the untrained baselines, are identical).",
              f"Training (03) seconds per seed, float32: {', '.join(f'{s:.0f}' for s in seconds['off'])}; "
              f"bf16: {', '.join(f'{s:.0f}' for s in seconds['bf16'])} (2 CPU cores).", "",
              "Command: `python benchmarks/bf16_accuracy.py " + " ".join(sys.argv[1:] if argv is None else argv) + "`"]
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
