"""Prediction throughput (output megapixels/s) and peak memory of the one predictor, in memory and
dask-tiled, for `unet` (gap filling), `srgan` ×4 (DeepBedMap's generator at its default size) and
`unet_seg` (the best segmentation arch). Networks at their task defaults with seeded random weights
(the cost does not depend on the values).

    python benchmarks/predict_throughput.py            # every case, each in its own process
    python benchmarks/predict_throughput.py --device cuda

Each case runs in a child process under ``/usr/bin/time -v`` (peak resident memory of that case
alone); on CUDA the peak GPU memory is torch's. With ``--flops`` the FLOPs of one forward pass
(``torch.utils.flop_counter``) give the achieved FLOP/s, and the srgan line projects the time of an
18 000 × 22 000 output (DeepBedMap's Antarctic grid).
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time

import numpy as np
import torch

# case → (arch, generator arguments, input shape (C, H, W) of the whole raster, tile in input cells)
CASES = {
    "unet": ("unet", {"in_channels": 2}, (2, 2048, 2048), 256),
    "srgan_x4": ("srgan", {"factor": 4, "cond_res": ()}, (1, 128, 128), 64),
    "unet_seg": ("unet_seg", {"in_channels": 3, "n_classes": 5, "width": 16, "depth": 4}, (3, 1024, 1024), 512),
}


def _predictor(arch, args, device):
    from geonb.modelfile import TrainedModel
    from geonb.predict import Predictor
    from geonb.registry import get_arch

    torch.manual_seed(0)
    task = get_arch(arch).task
    model = TrainedModel(task, arch, args, [get_arch(arch).build("generator", **args).state_dict()], {})
    return Predictor(model, device=device)


def run_case(name: str, mode: str, device: str, flops: bool) -> dict:
    import dask.array as dsa

    from geonb.predict import lazy_map

    arch, args, shape, tile = CASES[name]
    pred = _predictor(arch, args, device)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    out_px = shape[1] * shape[2] * pred.factor ** 2
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    if mode == "memory":
        result = pred(torch.from_numpy(x)[None], tile=tile)["mean"]
    else:
        data = dsa.from_array(np.moveaxis(x, 0, -1), chunks=(tile, tile, -1))
        torch.set_num_threads(1)  # one torch thread per dask thread

        def block(b):
            out = pred(torch.from_numpy(np.ascontiguousarray(np.moveaxis(b, -1, 0)))[None], tile=None, halo=0)
            return out.get("classes", out["mean"])[0]  # a class map, or the one-channel field

        result = lazy_map(block, data, halo=pred.halo, factor=pred.factor, multiple=pred.multiple).compute()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    row = {"case": name, "mode": mode, "output": f"{result.shape[-2]}×{result.shape[-1]}", "seconds": seconds,
           "mpx_s": out_px / seconds / 1e6}
    if device.startswith("cuda"):
        row["gpu_peak_gb"] = torch.cuda.max_memory_allocated() / 1024 ** 3
    if flops:
        from torch.utils.flop_counter import FlopCounterMode

        probe = torch.zeros(1, shape[0], tile, tile, device=pred.device)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            pred.net(probe)
        per_px = counter.get_total_flops() / (tile * tile * pred.factor ** 2)
        row["flop_s"] = per_px * out_px / seconds
    if name == "srgan_x4":
        row["projected_18000x22000_s"] = 18_000 * 22_000 / (out_px / seconds)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="*", default=list(CASES))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--flops", action="store_true", help="count FLOPs (torch.utils.flop_counter)")
    ap.add_argument("--child", nargs=2, metavar=("CASE", "MODE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print("RESULT " + json.dumps(run_case(*args.child, args.device, args.flops)))
        return
    print(f"torch {torch.__version__}, device {args.device}"
          + (f" ({torch.cuda.get_device_name()})" if args.device.startswith("cuda") else f", {torch.get_num_threads()} threads"))
    print("| case | mode | output | seconds | Mpx/s | peak RSS GB | extra |\n| --- | --- | --- | --- | --- | --- | --- |")
    for case in args.cases:
        for mode in ("memory", "dask"):
            cmd = ["/usr/bin/time", "-v", sys.executable, __file__, "--child", case, mode, "--device", args.device]
            done = subprocess.run(cmd + (["--flops"] if args.flops else []), capture_output=True, text=True)
            if done.returncode:
                print(f"| {case} | {mode} | failed: {done.stderr.strip().splitlines()[-1]} |")
                continue
            row = json.loads(done.stdout.split("RESULT ", 1)[1])
            rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1)) / 1024 ** 2
            extra = ", ".join(f"{k} {v:.3g}" for k, v in row.items() if k not in ("case", "mode", "output", "seconds", "mpx_s"))
            print(f"| {case} | {mode} | {row['output']} | {row['seconds']:.1f} | {row['mpx_s']:.3f} | {rss:.2f} | {extra} |",
                  flush=True)


if __name__ == "__main__":
    main()
