"""Out-of-core downscaling: a grid stored as zarr, super-resolved ×4 by `srcnn` through dask with
`geonb predict`, the output written chunk by chunk; wall time, throughput and peak memory.

    python benchmarks/downscale_out_of_core.py --size 10000        # the issue's case: 40 000² output, 6.4 GB
    python benchmarks/downscale_out_of_core.py --size 1000 --keep  # a quick look

The input is real terrain: matplotlib's Jacksboro DEM (the downscale task's default data),
mirrored and tiled to ``size``² cells as a lazy dask array and written to zarr. The model is
a quick `srcnn` ×4 trained on it (or ``--model``). The prediction runs in a child process
under ``/usr/bin/time -v`` so its peak resident memory is measured; the output is then
scanned chunk by chunk for NaN.
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dask.array as dsa
import numpy as np
import xarray as xr


def make_input(path: Path, size: int, chunk: int) -> None:
    from geonb.data import load_grid

    dem = load_grid("jacksboro")["elevation"].values.astype("float32")
    tile = np.block([[dem, dem[:, ::-1]], [dem[::-1], dem[::-1, ::-1]]])  # mirrored: no jumps at the joins
    reps = (-(-size // tile.shape[0]), -(-size // tile.shape[1]))
    grid = dsa.tile(dsa.from_array(tile, chunks=tile.shape), reps)[:size, :size].rechunk(chunk)
    step = 4000.0
    xr.Dataset({"elevation": (("y", "x"), grid)},
               coords={"y": np.arange(size) * step, "x": np.arange(size) * step}).to_zarr(path, mode="w")


def train_model(run_dir: Path) -> Path:
    from geonb.workflow import Run

    run = Run(run_dir, arch="srcnn", quick=True, factor=4)
    run.step("train")
    return run.trained()["srcnn_x4"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=10_000, help="input cells per side")
    ap.add_argument("--chunk", type=int, default=512, help="input chunk side (cells)")
    ap.add_argument("--tile", type=int, default=128, help="tile side (input cells) inside a chunk")
    ap.add_argument("--model", help="an srcnn ×4 model file (default: train a quick one)")
    ap.add_argument("--work", help="working folder (default: a temporary one, removed)")
    ap.add_argument("--keep", action="store_true", help="keep the working folder")
    args = ap.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="geonb-ooc-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        model = Path(args.model) if args.model else train_model(work / "run")
        source, out = work / "in.zarr", work / "out.zarr"
        t0 = time.perf_counter()
        make_input(source, args.size, args.chunk)
        print(f"input {args.size}² written in {time.perf_counter() - t0:.0f} s", flush=True)
        cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "geonb", "predict", "--model", str(model), "--input",
               str(source), "--var", "elevation", "--out", str(out), "--chunk", str(args.chunk), "--tile", str(args.tile)]
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if done.returncode:
            sys.exit(f"geonb predict failed:\n{done.stderr[-3000:]}")
        peak_gb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1)) / 1024 ** 2
        result = xr.open_zarr(out)["elevation"]
        nan = int(dsa.isnan(result.data).sum().compute())
        lo, hi = (float(v) for v in dsa.compute(result.data.min(), result.data.max()))
        mpx = result.size / 1e6
        print(f"| {args.size}² → {result.shape[0]}×{result.shape[1]} (×4) | {result.size * 4 / 1e9:.1f} GB float32 | "
              f"chunk {args.chunk}, tile {args.tile} | {wall:.0f} s | {mpx / wall:.2f} Mpx/s | peak RSS {peak_gb:.2f} GB | NaN {nan} | "
              f"range {lo:.0f}..{hi:.0f} |")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
