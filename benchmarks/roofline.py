"""Roofline of every arch's training step on this CPU: achieved FLOP/s ÷ measured matmul peak, float32 and bf16.

In one process: this machine's matmul peak (``torch.mm`` of 2048² matrices, float32 and bf16, best of
several, before and after the archs and beside each timed round), then for every arch of ``geonb archs``
the training step of its method (``methods.build`` with the task's default network arguments, batch size
and crop; the method's ``train_step`` under bf16 autocast or not, as ``training.fit`` runs it), float32 and
bf16 alternating (A B A B, after an untimed warm-up of each) so a shared machine slows both alike; each
round's steps follow a matmul of the same precision, whose best is that row's peak (the same load). The
batches are synthetic tensors of the task's shapes, made by the tasks' own batch functions where they
have one: **data loading is excluded** (the step is timed alone). FLOPs:
``torch.utils.flop_counter.FlopCounterMode`` over one step (forward and backward of every network the step
runs: a GAN step runs the discriminator on real and fake, then the generator through the frozen
discriminator; matmul and convolution FLOPs only, as a roofline counts them).

    python benchmarks/roofline.py                              # every arch → benchmarks/results/roofline.md
    python benchmarks/roofline.py --archs srgan unet --steps 2 --out /tmp/r.md
    python benchmarks/roofline.py --profile segnet fcn acgan --profile-only
                                  # top ops, channels-last and thread checks → benchmarks/results/roofline_profile.md
    OMP_WAIT_POLICY=PASSIVE python benchmarks/roofline.py --out benchmarks/results/roofline_passive.md

On a CPU shared with other busy processes, libgomp's waiting threads spin and take the core from the thread
that has work (steps 2–10× slower and erratic with 2 threads); ``OMP_WAIT_POLICY=PASSIVE`` (set before
torch starts) or ``--threads 1`` avoids that. The header records both settings.

``rsrcnn`` (stagewise) is timed on its last ×2 stage, which runs the earlier stages without gradients,
as its training does in the last stage.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from geonb import methods
from geonb.params import resolved
from geonb.registry import get_arch, list_archs
from geonb.tasks import get_task
from geonb.training import Accelerator, cpu_has_bf16

RESULTS = Path(__file__).parent / "results"
CPU = torch.device("cpu")
DTYPES = {False: torch.float32, True: torch.bfloat16}


# ---------------------------------------------------------------- each task's step at its defaults
# name → (arch_args, build settings, batch(generator) → batch, batch size, crop text), from the task's defaults

def _downscale(arch, p):
    from geonb.tasks.downscale.data import HPARAMS, LOSS_WEIGHTS
    from geonb.tasks.downscale.sampling import split_tensor

    f, n, size = p["factor"], p["batch_size"], p["patch_lr"] * p["factor"]
    weights = {k: p[k] for k in LOSS_WEIGHTS}
    settings = dict(adv_weight=weights.pop("w_adversarial"), content_args={"factor": f, "units": 1.0, **weights})
    args = {"factor": f, "cond_res": (), **arch.accepts("generator", {k: p[k] for k in HPARAMS})}

    def batch(g):  # a (B, target + valid, H, W) scene stack, split as patch_sampler splits it
        hr = torch.randn(n, 1, size, size, generator=g)
        return split_tensor(torch.cat([hr, torch.ones_like(hr)], 1), f, ())

    return args, settings, batch, n, f"{p['patch_lr']}² → {size}²"


def _inpaint(arch, p):
    from geonb.methods.masked import loss_weights
    from geonb.tasks.inpaint.infer import PREFILLS, network_inputs

    n, size = p["batch_size"], p["patch"]
    settings = dict(residual=PREFILLS[p["prefill"]] is not None, adv_weight=p["adv_weight"])

    def batch(g):
        field = torch.randn(n, size, size, generator=g).numpy()
        hidden = torch.rand(n, size, size, generator=g).numpy() < 0.2
        y, h = torch.from_numpy(field)[:, None], torch.from_numpy(hidden)[:, None]
        return (torch.from_numpy(network_inputs(field, hidden, "zero")), y,
                loss_weights(h, y, p["hole_weight"], p["ring_weight"], p["ring_width"]))

    return {"in_channels": 2}, settings, batch, n, f"{size}²"


def _clouds(arch, p):
    from geonb.cloudinputs import CloudInputs
    from geonb.cloudmodel import _batch

    n, crop = p["batch_size"], p["crop"]
    channels = CloudInputs.channels(p["window"])

    def batch(g):  # (input channels, target: NaN except on the hidden pixels) per sample, as train_on_cube
        samples = []
        for _ in range(n):
            x = torch.randn(channels, crop, crop, generator=g).numpy()
            target = torch.randn(crop, crop, generator=g).numpy()
            target[torch.rand(crop, crop, generator=g).numpy() < 0.7] = np.nan
            samples.append((x, target))
        return _batch(samples)

    return {"in_channels": channels, "widths": list(p["widths"])}, {"n_average": p["n_average"]}, batch, n, f"{crop}²"


def _segment(arch, p):
    from geonb import aerial
    from geonb.tasks.segment.steps import _batch

    n, size, k = p["batch_size"], p["patch"], len(aerial.scheme_names(p["scheme"]))
    settings = dict(class_weights=list(np.linspace(0.5, 2.0, k)), ignore_index=aerial.IGNORE)

    def batch(g):
        photos = torch.randint(0, 256, (n, size, size, 3), generator=g, dtype=torch.uint8).numpy()
        classes = torch.randint(0, k, (n, size, size), generator=g, dtype=torch.uint8).numpy()
        classes[torch.rand(n, size, size, generator=g).numpy() < 0.1] = aerial.IGNORE
        return (*_batch(photos, classes), None)

    return {"in_channels": 3, "n_classes": k, "width": p["width"], "depth": p["depth"]}, settings, batch, n, f"{size}²"


def _translate(arch, p):
    from geonb.tasks.translate import _tiles_tensor

    n, size = p["batch_size"], p["patch"]
    settings = dict(role_args={"discriminator": {"in_channels": 6, "ndf": p["ndf"]}}, adv_weight=1.0,
                    content_args={"weight": p["l1_weight"]}, ema=p["ema"])

    def batch(g):
        photos, maps = (torch.randint(0, 256, (n, size, size, 3), generator=g, dtype=torch.uint8).numpy() for _ in "pm")
        return (*_tiles_tensor(photos, maps), None)

    return ({"in_channels": 3, "out_channels": 3, "ngf": p["ngf"], "depth": p["depth"]}, settings, batch, n,
            f"{size}²")


def _generate(arch, p):
    from geonb.tasks.generate import N_CLASSES, _to_unit

    n = p["batch_size"]

    def batch(g):
        digits = torch.randint(0, 256, (n, 28, 28), generator=g, dtype=torch.uint8).numpy()
        return _to_unit(digits), torch.randint(0, N_CLASSES, (n,), generator=g), None

    return {"latent": p["latent"], "n_classes": N_CLASSES, "nf": p["nf"]}, {"ema": p["ema"]}, batch, n, "28²"


TASKS = {"downscale": _downscale, "inpaint": _inpaint, "clouds": _clouds, "segment": _segment,
         "translate": _translate, "generate": _generate}


class Case:
    """One arch's training step at its task's defaults: the method, a batch, the default precision."""

    def __init__(self, name: str, channels_last: bool = False):
        arch = get_arch(name)
        task = get_task(arch.task)
        p = resolved(task.params, {"arch": name}, arch.lr)
        args, settings, make, self.batch_size, self.crop = TASKS[arch.task](arch, p)
        self.name, self.task, self.cpu_bf16 = name, arch.task, task.bf16_on_cpu(name)
        self.acc = Accelerator(CPU, channels_last=channels_last)
        self.method = methods.build(arch, args, lr=p["lr"], seed=0, device=self.acc, **settings)
        if arch.method == "stagewise":  # its last stage, as Stagewise.fit trains it
            self.method.stage = len(self.method.generator.stages) - 1
            stage = self.method.generator.stages[self.method.stage]
            self.method.optimizers = {"stage": torch.optim.Adam(stage.parameters(), lr=p["lr"])}
        for net in self.method.nets.values():
            net.train()
        self.batch = self.acc.to_device(make(torch.Generator().manual_seed(0)))

    @property
    def default_amp(self) -> bool:
        """What ``-p amp auto`` gives on this CPU (``training.accelerator``)."""
        return self.cpu_bf16 and cpu_has_bf16()

    def step(self, amp: bool) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):  # Accelerator.autocast
            self.method.train_step(self.batch)

    def seconds(self, amp: bool, steps: int) -> float:
        """Seconds per step over ``steps`` steps."""
        t0 = time.perf_counter()
        for _ in range(steps):
            self.step(amp)
        return (time.perf_counter() - t0) / steps

    def flops(self) -> int:
        with FlopCounterMode(display=False) as counter:
            self.step(False)
        return counter.get_total_flops()


# ---------------------------------------------------------------- machine
def matmul_peak(dtype, n: int = 2048, repeats: int = 6) -> float:
    """FLOP/s of the best of ``repeats`` n×n ``torch.mm`` (after one warm-up)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.mm(a, b)
    best = min(_timed(lambda: torch.mm(a, b)) for _ in range(repeats))
    return 2 * n ** 3 / best


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def cpu_model() -> str:
    try:
        info = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        return platform.processor()
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    flags = fields.get("Flags", "")
    return (f"{fields.get('Model name', '?').strip()} (family {fields.get('CPU family', '?').strip()}, model "
            f"{fields.get('Model', '?').strip()}), {fields.get('CPU(s)', '?').strip()} CPUs; "
            f"avx512f {'avx512f' in flags}, avx512_bf16 {'avx512_bf16' in flags}, amx {'amx_tile' in flags}")


def machine_lines(peaks: dict) -> list[str]:
    return [f"- CPU: {cpu_model()}",
            f"- torch {torch.__version__}, {torch.get_num_threads()} threads, {torch.get_num_interop_threads()} "
            f"interop threads, OMP_WAIT_POLICY {os.environ.get('OMP_WAIT_POLICY', 'unset (libgomp spins)')}; "
            f"native bf16 (`cpu_has_bf16`): {cpu_has_bf16()}",
            f"- matmul peak (`torch.mm` 2048², best of every measurement: 6 before and after the archs, 2 "
            f"beside each timed round): float32 "
            f"{peaks['fp32'] / 1e9:.1f} GFLOP/s, bf16 {peaks['bf16'] / 1e9:.1f} GFLOP/s"]


# ---------------------------------------------------------------- the table
def measure(name: str, steps: int, rounds: int, channels_last: bool = False) -> dict:
    """Best and median seconds per step of ``rounds`` alternating float32/bf16 rounds of ``steps`` steps
    (1 step for an arch whose warm-up step took over 5 s), each beside a matmul peak of its precision."""
    case = Case(name, channels_last)
    warm = _timed(lambda: case.step(False))  # warm-up: allocator, oneDNN primitives of both precisions
    case.step(True)
    steps = 1 if warm > 5 else steps
    times, peaks = {False: [], True: []}, {False: [], True: []}
    for _ in range(rounds):  # A B A B, each beside a matmul of its precision (the peak under the same load)
        for amp in (False, True):
            peaks[amp].append(matmul_peak(DTYPES[amp], repeats=2))
            times[amp].append(case.seconds(amp, steps))
    return {"arch": name, "task": case.task, "batch": case.batch_size, "crop": case.crop, "flops": case.flops(),
            "fp32": min(times[False]), "bf16": min(times[True]), "median_fp32": statistics.median(times[False]),
            "median_bf16": statistics.median(times[True]), "peak_fp32": max(peaks[False]),
            "peak_bf16": max(peaks[True]), "default_amp": case.default_amp, "cpu_bf16": case.cpu_bf16}


def ratio(row: dict, amp: bool) -> float:
    """Achieved FLOP/s ÷ the matmul peak of the same precision measured beside it."""
    key = "bf16" if amp else "fp32"
    return row["flops"] / row[key] / row[f"peak_{key}"]


def table(rows: list[dict]) -> list[str]:
    lines = ["| arch | task | batch × crop | GFLOP/step | samples/s fp32 | samples/s bf16 | bf16 speed-up | "
             "GFLOP/s fp32 | GFLOP/s bf16 | peak beside it fp32 / bf16 | fp32 ÷ fp32 peak | bf16 ÷ bf16 peak | "
             "default amp | default ÷ `--amp off` | median s/step fp32 / bf16 |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        speedup = r["fp32"] / r["bf16"]
        default = f"**{speedup:.2f}**" if r["default_amp"] else f"1.00 (bf16 would give {speedup:.2f})"
        lines.append(
            f"| {r['arch']} | {r['task']} | {r['batch']} × {r['crop']} | {r['flops'] / 1e9:.2f} | "
            f"{r['batch'] / r['fp32']:.2f} | {r['batch'] / r['bf16']:.2f} | {speedup:.2f} | "
            f"{r['flops'] / r['fp32'] / 1e9:.1f} | {r['flops'] / r['bf16'] / 1e9:.1f} | "
            f"{r['peak_fp32'] / 1e9:.0f} / {r['peak_bf16'] / 1e9:.0f} | {ratio(r, False):.3f} | {ratio(r, True):.3f} | "
            f"{'bf16' if r['default_amp'] else 'float32'} | {default} | "
            f"{r['median_fp32']:.3f} / {r['median_bf16']:.3f} |")
    return lines


# ---------------------------------------------------------------- profiles of the slowest
COMPUTE = ("conv", "mm", "addmm", "bmm", "matmul", "linear")  # ops that do the counted FLOPs


def is_compute(op: str) -> bool:
    return any(k in op.split("::")[-1] for k in COMPUTE)


def profile_table(case: Case, amp: bool, steps: int, top: int = 12) -> tuple[list[str], float, float]:
    """Top ops by self CPU time per step (over ``steps`` steps), the share of the time spent in
    convolution/matmul ops, and the profiled seconds per step."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        seconds = case.seconds(amp, steps)
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    events.sort(key=lambda e: -e.self_cpu_time_total)
    lines = ["| op | self CPU ms per step | share | calls per step |", "| --- | --- | --- | --- |"]
    lines += [f"| `{e.key}` | {e.self_cpu_time_total / 1e3 / steps:.1f} | {e.self_cpu_time_total / total:.1%} | "
              f"{e.count // steps} |" for e in events[:top]]
    compute = sum(e.self_cpu_time_total for e in events if is_compute(e.key)) / total
    return lines, compute, seconds


def variants(name: str, steps: int, rounds: int) -> list[str]:
    """Per-step seconds of contiguous vs channels-last networks and batches, and of the other thread count
    (1 ↔ all cores), alternated."""
    cases = {"contiguous": Case(name), "channels-last": Case(name, channels_last=True)}
    threads = torch.get_num_threads()
    other = os.cpu_count() if threads == 1 else 1
    runs = [(label, amp, threads) for amp in (False, True) for label in cases]
    runs += [("contiguous", amp, other) for amp in (False, True)]
    for label, amp, n in runs:  # warm-up
        cases[label].step(amp)
    times = {run: [] for run in runs}
    for _ in range(rounds):
        for run in runs:
            torch.set_num_threads(run[2])
            times[run].append(cases[run[0]].seconds(run[1], steps))
    torch.set_num_threads(threads)
    lines = ["| layout | precision | threads | s/step (best of rounds) |", "| --- | --- | --- | --- |"]
    lines += [f"| {label} | {'bf16' if amp else 'float32'} | {n} | {min(times[(label, amp, n)]):.3f} |"
              for label, amp, n in runs]
    return lines


def profile_report(names: list[str], steps: int, rounds: int, command: str, peaks: dict) -> str:
    out = ["# Profiles of the slowest archs' training steps (`benchmarks/roofline.py --profile`)", "",
           f"Command: `{command}`; load average at start {loadavg()}.", *machine_lines(peaks), "",
           "Top ops by self CPU time in one training step (synthetic batch at the task defaults, after warm-up); "
           "*compute share*: self time in convolution/matmul ops (those whose FLOPs the roofline counts) — the "
           "rest is memory-bound elementwise, normalisation, pooling, resampling, optimiser and Python overhead.", ""]
    for name in names:
        case = Case(name)
        case.step(False), case.step(True)
        out += [f"## {name}", ""]
        for amp in (False, True):
            lines, compute, seconds = profile_table(case, amp, steps)
            out += [f"### {'bf16 autocast' if amp else 'float32'}: {seconds:.3f} s/step under the profiler, "
                    f"compute share {compute:.0%}", "", *lines, ""]
        out += ["### channels-last and threads (alternating rounds)", "", *variants(name, steps, rounds), ""]
        print(f"profiled {name}", flush=True)
    out.append(f"Load average at end: {loadavg()}.")
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archs", nargs="*", default=None, help="default: every arch of `geonb archs`")
    ap.add_argument("--steps", type=int, default=2, help="timed steps per round")
    ap.add_argument("--rounds", type=int, default=2, help="alternating float32/bf16 rounds (best kept)")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--channels-last", action="store_true", help="networks and batches channels-last")
    ap.add_argument("--out", type=Path, default=RESULTS / "roofline.md")
    ap.add_argument("--profile", nargs="*", default=None,
                    help="profile these archs (no name: the three lowest ratios) → roofline_profile.md")
    ap.add_argument("--profile-only", action="store_true", help="skip the table (peaks still measured)")
    args = ap.parse_args()
    if args.profile_only and not args.profile:
        ap.error("--profile-only needs the archs to profile: --profile NAME ...")
    command = "python " + " ".join([sys.argv[0].split("/wt-roofline/")[-1], *sys.argv[1:]])
    names = args.archs or [a.name for a in list_archs()]
    if args.threads:
        torch.set_num_threads(args.threads)
    start_load = loadavg()
    peaks = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    rows = []
    if not args.profile_only:
        for name in names:
            rows.append(measure(name, args.steps, args.rounds, args.channels_last))
            r = rows[-1]
            print(f"{name}: fp32 {r['fp32']:.3f} s/step, bf16 {r['bf16']:.3f} s/step, {r['flops'] / 1e9:.2f} GFLOP "
                  f"(load {loadavg()})", flush=True)
    for key, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):  # the best of every measurement
        peaks[key] = max([peaks[key], matmul_peak(dtype), *(r[f"peak_{key}"] for r in rows)])
    if rows:
        lowest = sorted(rows, key=lambda r: ratio(r, r["default_amp"]))
        text = ["# Roofline: every arch's training step on this CPU (`benchmarks/roofline.py`)", "",
                f"Command: `{command}` ({args.steps} steps — 1 where a step takes over 5 s — × {args.rounds} "
                "alternating rounds per precision, best round kept, median beside it); synthetic batches at each task's default network size, batch and crop "
                f"(data loading excluded); {'channels-last' if args.channels_last else 'contiguous (NCHW)'} "
                "networks and batches.", *machine_lines(peaks),
                f"- load average (1, 5, 15 min) at start {start_load}, at end {loadavg()}", "",
                *table(rows), "",
                "Ratios: achieved FLOP/s (FlopCounterMode's matmul/convolution FLOPs of one step ÷ its time) ÷ the "
                "matmul peak of the same precision measured beside it (before each timed round, so under the same "
                "load; the best of the arch's rounds). *default ÷ `--amp off`*: the speed-up of `-p amp auto` on this "
                "CPU (bf16 only for tasks with `Task.cpu_bf16`). Lowest ratio in the default precision: "
                + ", ".join(f"{r['arch']} ({ratio(r, r['default_amp']):.3f})" for r in lowest[:3]) + "."]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(text) + "\n")
        print("\n".join(text))
    if args.profile is not None:
        chosen = args.profile or [r["arch"] for r in lowest[:3]]
        report = profile_report(chosen, args.steps, args.rounds, command, peaks)
        (RESULTS / "roofline_profile.md").write_text(report)
        print(report)


if __name__ == "__main__":
    main()
