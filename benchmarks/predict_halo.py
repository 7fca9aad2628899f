"""`geonb predict` of a 256² low-res grid with an srgan ×4 model (DeepBedMap's size: 12 RRDBs, 64 maps):
tiles sized from the free memory with the measured halo (the default) against one tile covering the grid
(`--tile 256`), and against an older checkout's code (its halo: the 187-cell receptive field, tiles of 64).

    python benchmarks/predict_halo.py prepare /tmp/halo_bench          # model file (halo measured) + grid
    python benchmarks/predict_halo.py time /tmp/halo_bench --repeats 3 [--baseline /work/main]

``prepare`` saves an untrained generator (seeded; the time does not depend on the weights, the measured halo
does: see benchmarks/RESULTS.md) through the downscale task's ``save_model``, which measures and stores its
effective halo, and writes a 256² fractal-terrain grid (metres, 5 km cells). ``time`` runs
``python -m geonb predict`` in fresh processes from this checkout, default tiles (A) and ``--tile 256`` (B)
interleaved A, B, A, B…, and reports the medians and their ratio (target ≤ 1.3) with the load average.
``--baseline CHECKOUT``: the older code needs ~100 tiles of 438² cells for this grid (its dask chunk is
padded by 187 cells and then tiled in 64s, each with 187 cells of context), hours on 2 cores; it is
timed on one such tile (that checkout's ``Predictor``, interleaved with A and B) and projected to all of
them by their cell counts.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
SIZE, FACTOR, ARGS = 256, 4, {"n_blocks": 12, "nf": 64}

# one tile of the older code: 64 cells with its 187-cell halo, through its own Predictor
BASELINE = """
import json, sys, time, numpy as np, torch
from geonb.modelfile import TrainedModel
from geonb.predict import Predictor
p = Predictor(TrainedModel.load(sys.argv[1]))
x = torch.from_numpy(np.random.default_rng(0).standard_normal((1, 1, 64, 64)).astype(np.float32))
t = time.perf_counter(); p((x, []), tile=64, batch=1); s = time.perf_counter() - t
print("RESULT " + json.dumps({"halo": p.halo, "seconds": s}))
"""


def prepare(work: Path) -> None:
    import types

    import numpy as np
    import torch
    import xarray as xr

    from geonb import terrain
    from geonb.normalise import Normaliser
    from geonb.registry import get_arch
    from geonb.tasks.downscale.train import save_model

    work.mkdir(parents=True, exist_ok=True)
    z = terrain.fractal_terrain(SIZE, SIZE, seed=5)
    xr.Dataset({"elevation": (("y", "x"), z, {"units": "m"})},
               coords={"y": np.arange(SIZE) * 5000.0, "x": np.arange(SIZE) * 5000.0}).to_netcdf(work / "lr.nc")
    torch.manual_seed(0)
    net = get_arch("srgan").build("generator", factor=FACTOR, cond_res=(), **ARGS)
    method = types.SimpleNamespace(generator=net, weights=lambda: [net.state_dict()])
    t0 = time.perf_counter()
    path = save_model(work / "srgan_x4.pt", method, "srgan", ARGS, "elevation", [], Normaliser.fit(z), [],
                      "untrained (benchmark)", [], units="m")
    info = torch.load(path, weights_only=True)["info"]
    print(f"wrote {path}: effective halo {info['effective_halo']} of {net.halo} low-res cells "
          f"(tolerance {info['halo_tol']}), measured in {time.perf_counter() - t0:.0f} s")


def predict(work: Path, tile: int | None) -> float:
    out = work / f"out_{tile or 'auto'}.nc"
    out.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "geonb", "predict", "--model", str(work / "srgan_x4.pt"), "--input",
           str(work / "lr.nc"), "--out", str(out)] + (["--tile", str(tile)] if tile else [])
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=HERE, check=True, capture_output=True)
    return time.perf_counter() - t0


def baseline(work: Path, checkout: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", BASELINE, str(work / "srgan_x4.pt")], cwd=checkout, check=True,
                          capture_output=True, text=True)
    return json.loads(done.stdout.split("RESULT ", 1)[1])


def old_cells(halo: int, tile: int = 64) -> int:
    """Low-res cells the older code runs through the network for the 256² grid: one dask chunk padded by the
    halo, tiled in ``tile``s over the padded chunk, each tile with the halo on every side."""
    block = SIZE + 2 * halo
    sides = [min(tile, block - i) + 2 * halo for i in range(0, block, tile)]
    return sum(sides) ** 2


def time_all(work: Path, repeats: int, checkout: Path | None) -> None:
    import torch

    from geonb.modelfile import TrainedModel

    model = TrainedModel.load(work / "srgan_x4.pt")
    halo = model.info["effective_halo"]
    load = [open("/proc/loadavg").read().split()[:3]]
    runs = {"default": [], "tile 256": [], "baseline tile": []}
    for k in range(repeats):
        runs["default"].append(predict(work, None))
        runs["tile 256"].append(predict(work, SIZE))
        if checkout:
            runs["baseline tile"].append(baseline(work, checkout))
        last = {n: v[-1]["seconds"] if n == "baseline tile" else v[-1] for n, v in runs.items() if v}
        print(f"round {k + 1}: " + ", ".join(f"{n} {s:.1f} s" for n, s in last.items()), flush=True)
        load.append(open("/proc/loadavg").read().split()[:3])
    mpx = (SIZE * FACTOR) ** 2 / 1e6
    a, b = statistics.median(runs["default"]), statistics.median(runs["tile 256"])
    print(f"\ntorch {torch.__version__}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, srgan ×{FACTOR} {ARGS}, "
          f"untrained; effective halo {halo} low-res cells; load averages (1/5/15 min) {load}")
    print("| run | median s (of %d) | all | Mpx/s |\n| --- | --- | --- | --- |" % repeats)
    print(f"| default tiles (halo {halo}) | {a:.1f} | {', '.join(f'{v:.1f}' for v in runs['default'])} | {mpx / a:.4f} |")
    print(f"| `--tile {SIZE}` (one tile) | {b:.1f} | {', '.join(f'{v:.1f}' for v in runs['tile 256'])} | {mpx / b:.4f} |")
    print(f"ratio default / one tile: **{a / b:.3f}**")
    if checkout:
        old = runs["baseline tile"]
        per = statistics.median(r["seconds"] for r in old)
        cells = old_cells(old[0]["halo"])
        projected = per * cells / (64 + 2 * old[0]["halo"]) ** 2
        each = ", ".join(f"{r['seconds']:.1f}" for r in old)
        print(f"older code ({checkout}, halo {old[0]['halo']}): one 64-cell tile {per:.1f} s (median; all "
              f"{each}); its `geonb predict` runs {cells:,} low-res cells "
              f"through the network ({cells / SIZE ** 2:.0f} × the grid) → projected {projected:,.0f} s, "
              f"{mpx / projected:.5f} Mpx/s; new default {projected / a:.0f} × faster")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=("prepare", "time"))
    ap.add_argument("work", type=Path)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--baseline", type=Path, help="an older geonb checkout to time one of its tiles")
    args = ap.parse_args()
    if args.what == "prepare":
        prepare(args.work)
    else:
        time_all(args.work, args.repeats, args.baseline)


if __name__ == "__main__":
    main()
