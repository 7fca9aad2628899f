"""The deeplabv3plus row of the README's segmentation table, made as the other rows were.

The segment task's defaults (width 16, depth 4, 10 epochs × 25 steps × 4 random 256² crops, Adam 1e-3,
median-frequency class weights, patience 5; train tile_1, 4, 5, 6, 7, val tile_2, test tile_3):
``geonb.Run(run_dir, arch="deeplabv3plus").step("train")`` then ``.step("error_maps")``, which scores
every model of the run dir beside the per-pixel baselines on the same held-out pixels. Writes the
04 tables as markdown and the wall times of 03 and 04.

    PYTHONPATH=. OMP_NUM_THREADS=2 python benchmarks/deeplab_segment.py runs/seg_deeplab benchmarks/results/segment_deeplab.md
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

import geonb


def markdown(table) -> str:
    """A DataFrame as a markdown table (index first; no tabulate in geonb's environment)."""
    table = table.round(4)
    head = [str(table.index.name or "")] + [str(c) for c in table.columns]
    rows = [[str(i)] + [str(v) for v in row] for i, row in zip(table.index, table.itertuples(index=False))]
    return "\n".join("| " + " | ".join(r) + " |" for r in [head, ["---"] * len(head), *rows])


def main(run_dir: str, out: str) -> None:
    print(f"geonb from {geonb.__file__}", flush=True)
    run = geonb.Run(run_dir, arch="deeplabv3plus")
    t0 = time.perf_counter()
    train = run.step("train")
    t_train = time.perf_counter() - t0
    t0 = time.perf_counter()
    maps = run.step("error_maps")
    t_maps = time.perf_counter() - t0
    lines = ["# deeplabv3plus, Dubai aerial, held-out tile_3 (segment defaults)", "",
             f"`geonb.Run({run_dir!r}, arch='deeplabv3plus').step('train')` then `.step('error_maps')`; "
             f"torch threads {torch.get_num_threads()}. 03 (with 01, 02 built first) {t_train:.0f} s, 04 {t_maps:.0f} s.", "",
             f"## {train.title}", "", train.text, ""]
    for name, table in train.tables.items():
        lines += [f"### {name}", "", markdown(table), ""]
    lines += [f"## {maps.title}", "", maps.text, ""]
    for name, table in maps.tables.items():
        lines += [f"### {name}", "", markdown(table), ""]
    Path(out).write_text("\n".join(lines) + "\n")
    print(f"03 {t_train:.0f} s, 04 {t_maps:.0f} s; wrote {out}", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:3])
