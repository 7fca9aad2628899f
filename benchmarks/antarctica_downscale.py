"""The Antarctic ice-thickness downscaling table (README, issue "Downscaling on the seed's own ground").

Trains every arch/factor with and without the ``beta`` conditioning layer in one run directory
(the 03 step of the downscale task, checkpoints resume after a kill), then runs 04–06, which
score every model in it on the valid cells of the test blocks beside bicubic and the cubic
spline. CPU budget: about 75 min on 2 shared cores.

    python benchmarks/antarctica_downscale.py runs/antarctica [name ...]

``name`` (e.g. ``srgan_x4_beta,x,y``) limits training to those runs.
"""
from __future__ import annotations

import json
import sys
import time

from geonb.workflow import Run

COMMON = dict(data="antarctica", steps_per_epoch=40, patience=5, seed=0)
SRGAN = dict(epochs=6, n_blocks=4, nf=32, batch_size=8)  # DeepBedMap's 12×64 does not fit a CPU budget
PLAN = [
    ("srcnn", 4, "", dict(epochs=20)),
    ("srcnn", 4, "beta", dict(epochs=20)),
    ("rsrcnn", 8, "", dict(epochs=6)),
    ("rsrcnn", 16, "", dict(epochs=6, patch_lr=8)),  # ×16 patches of 16 low-res cells leave no room off the test blocks
    ("srgan", 4, "beta,x,y", SRGAN),
    ("rsrcnn", 8, "beta", dict(epochs=6)),
    ("srgan", 4, "", SRGAN),
    ("rsrcnn", 16, "beta", dict(epochs=6, patch_lr=8)),
]


def main(run_dir: str, only: list[str]) -> None:
    for arch, factor, cond, extra in PLAN:
        key = f"{arch}_x{factor}_{cond}".rstrip("_")
        if only and key not in only:
            continue
        start = time.time()
        Run(run_dir, arch=arch, factor=factor, cond=cond, **COMMON, **extra).step("train")
        print(json.dumps({"run": key, "seconds": round(time.time() - start)}), flush=True)
    run = Run(run_dir, arch="srcnn", factor=4, cond="beta", **COMMON, epochs=20)  # the last srcnn trained: not stale
    for step in ("error_maps", "scatter_plots", "transects"):
        print(run.step(step).table_text())


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
