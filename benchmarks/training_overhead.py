"""Training-loop overhead: geonb's `method.fit` (DataLoader path, autocast context, logging, tqdm,
progress lines, a checkpoint with optimiser and RNG state every epoch) against a bare PyTorch loop
with the same network, data, batch, optimiser and loss. Target: ratio ≤ 1.10 on CPU for `unet`
and `srcnn`.

    python benchmarks/training_overhead.py                    # unet srcnn srgan unet_seg dincae
    python benchmarks/training_overhead.py --archs unet --repeats 5

After one untimed warm-up of each, both loops run alternately ``repeats`` times (so a busy
machine slows both alike); the table gives samples/s of each (median) and the ratio of the
medians of their times.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from geonb import methods
from geonb.losses import DEEPBEDMAP_WEIGHTS
from geonb.registry import get_arch

# arch → (network arguments, batch maker(batch size, generator) → (x, y, w), batch size); realistic task shapes
CASES = {
    "unet": ({"in_channels": 2}, lambda n, g: (torch.randn(n, 2, 64, 64, generator=g), torch.randn(n, 1, 64, 64, generator=g),
                                                   torch.rand(n, 1, 64, 64, generator=g)), 10),
    "srcnn": ({"factor": 4, "cond_res": ()}, lambda n, g: ((torch.randn(n, 1, 16, 16, generator=g), []),
                                                            torch.randn(n, 1, 64, 64, generator=g), None), 16),
    "srgan": ({"factor": 4, "cond_res": (), "n_blocks": 4, "nf": 32},
              lambda n, g: ((torch.randn(n, 1, 16, 16, generator=g), []), torch.randn(n, 1, 64, 64, generator=g), None), 8),
    "unet_seg": ({"in_channels": 3, "n_classes": 5, "width": 16, "depth": 4},
                 lambda n, g: (torch.randn(n, 3, 128, 128, generator=g), torch.randint(0, 5, (n, 128, 128), generator=g),
                               None), 4),
    "dincae": ({"in_channels": 10, "widths": [16, 24, 32, 48]},
               lambda n, g: (torch.randn(n, 10, 96, 96, generator=g), torch.randn(n, 1, 96, 96, generator=g),
                             torch.ones(n, 1, 96, 96)), 4),
}


def _method(arch: str, args: dict):
    return methods.build(get_arch(arch), args, lr=1e-4, seed=0, device="cpu", adv_weight=1e-3,
                         content_args={"factor": 4, "units": 1.0,
                                       **{k: v for k, v in DEEPBEDMAP_WEIGHTS.items() if k != "w_adversarial"}})


def geonb_loop(arch, args, data, epochs) -> float:
    method = _method(arch, args)
    with tempfile.TemporaryDirectory() as ckpt:
        t0 = time.perf_counter()
        method.fit(lambda epoch: iter(data), lambda: {"val_loss": 0.0}, Path(ckpt), epochs=epochs,
                   patience=epochs + 1, seed=0, desc=arch)
        return time.perf_counter() - t0


def bare_loop(arch, args, data, epochs) -> float:
    """The textbook loop around the same method's ``train_step`` (its forward, loss, backward, step)."""
    method = _method(arch, args)
    for net in method.nets.values():
        net.train()
    t0 = time.perf_counter()
    for _ in range(epochs):
        for batch in data:
            method.train_step(batch)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archs", nargs="*", default=list(CASES))
    ap.add_argument("--steps", type=int, default=30, help="batches per epoch")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    print("| arch | batch | bare loop samples/s | geonb fit samples/s | overhead ratio |\n| --- | --- | --- | --- | --- |")
    for arch in args.archs:
        net_args, make, batch = CASES[arch]
        g = torch.Generator().manual_seed(0)
        data = [make(batch, g) for _ in range(args.steps)]
        times = {"bare": [], "geonb": []}
        bare_loop(arch, net_args, data[:3], 1)  # warm-up (allocator, oneDNN kernels): not timed
        geonb_loop(arch, net_args, data[:3], 1)
        for _ in range(args.repeats):
            times["bare"].append(bare_loop(arch, net_args, data, args.epochs))
            times["geonb"].append(geonb_loop(arch, net_args, data, args.epochs))
        samples = args.steps * args.epochs * batch
        bare, ours = statistics.median(times["bare"]), statistics.median(times["geonb"])
        print(f"| {arch} | {batch} | {samples / bare:.1f} | {samples / ours:.1f} | {ours / bare:.3f} |", flush=True)


if __name__ == "__main__":
    main()
