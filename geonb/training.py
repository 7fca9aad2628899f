"""One epoch loop for every architecture: progress, early stopping, checkpoints, resume.

A model family supplies ``train_step(batch) -> {name: float}`` (one optimisation step,
a GAN updates both networks there) and ``validate() -> {"val_loss": float, ...}``.
Each epoch ends with ``last.pt`` (weights, optimisers, RNG state, history) so a killed
run resumes where it stopped; ``best.pt`` holds the weights with the lowest val_loss.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import torch

from . import distributed, progress
from .checkpoints import load_checkpoint, save_checkpoint
from .errors import GeonbError
from .params import AMP


def resumed_epoch(ckpt_dir) -> int:
    """The last finished epoch of the run checkpointed in ``ckpt_dir`` (0 for a fresh run)."""
    last = Path(ckpt_dir) / "last.pt"
    return int(load_checkpoint(last)["epoch"]) if last.exists() else 0


def pick_device(prefer: str = "auto") -> torch.device:
    """cuda when present (or asked for), else cpu; printed loudly so users notice. Asking for a
    device torch cannot use is an error, never a silent fall-back to the CPU."""
    if prefer == "auto":
        prefer = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(prefer)
    except RuntimeError:
        raise GeonbError(f"device {prefer!r} is not a device torch knows; use auto, cpu, cuda or cuda:N.") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise GeonbError(f"device {prefer!r} asked for, but this torch {torch.__version__} sees no CUDA GPU; "
                             "use -p device auto (or cpu), or install a CUDA build of torch on a GPU machine.")
        if device.index is None and distributed.active():
            device = torch.device("cuda", distributed.local_rank())
        if (device.index or 0) >= torch.cuda.device_count():
            raise GeonbError(f"device {prefer!r}: this machine has {torch.cuda.device_count()} GPU(s); "
                             f"use cuda:0 … cuda:{torch.cuda.device_count() - 1}.")
    elif device.type != "cpu":
        raise GeonbError(f"device {prefer!r}: geonb trains on cpu or cuda; use -p device auto, cpu or cuda.")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    if distributed.rank() == 0:
        progress.say(f"=== geonb: training on {device} ({name}) ===")
    return device




@dataclass(frozen=True)
class Accelerator:
    """How training uses the hardware: device, bf16 autocast, ``torch.compile``, channels-last
    memory format and DataLoader worker processes (``accelerator`` makes one)."""

    device: torch.device
    amp: bool = False
    compile: bool = False
    channels_last: bool = False
    workers: int = 0

    def autocast(self):
        """bf16 autocast of the forward passes (no loss scaling needed: bf16 has float32's range)."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp)

    def to_device(self, batch):
        """A batch (tensors in tuples/lists, or None) on the device; asynchronous from pinned memory."""
        if isinstance(batch, torch.Tensor):
            batch = batch.to(self.device, non_blocking=True)
            return batch.contiguous(memory_format=torch.channels_last) if self.channels_last and batch.ndim == 4 else batch
        if isinstance(batch, (tuple, list)):
            return type(batch)(self.to_device(b) for b in batch)
        return batch


def cpu_has_bf16() -> bool:
    """This CPU multiplies bf16 natively (AVX-512 BF16 or AMX tiles): autocast then runs conv stacks ~3× faster
    than float32 (13 → 40 GFLOP/s on this project's 2-core EPYC); without them bf16 is emulated and slower."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # torch's own CPU feature probes
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def accelerator(device: str | torch.device = "auto", amp: str = "auto", compile: bool = False,
                workers: int = 0, cpu_bf16: bool = False) -> Accelerator:
    """The device (``pick_device``) with its fast settings: ``amp`` "auto" = bf16 autocast where the
    hardware computes bf16 natively — a GPU that supports it, or a CPU with ``cpu_has_bf16`` for a family
    whose scores bf16 was measured not to change (``cpu_bf16``: its ``Task.cpu_bf16``) — "bf16" = always,
    "off"; weights and optimiser state stay float32 (autocast covers the forward passes); channels-last and
    ``cudnn.benchmark`` (fastest convolution algorithms for fixed shapes) and TF32 matmuls on CUDA."""
    if amp not in AMP:
        raise GeonbError(f"parameter 'amp' is {amp!r}; use one of {', '.join(AMP)}.")
    if int(workers) < 0:
        raise GeonbError(f"parameter 'workers' is {workers}; use 0 (batches made in the training process) or more.")
    device = device if isinstance(device, torch.device) else pick_device(device)
    cuda = device.type == "cuda"
    native = torch.cuda.is_bf16_supported() if cuda else device.type == "cpu" and cpu_bf16 and cpu_has_bf16()
    use_amp = amp == "bf16" or (amp == "auto" and native)
    if cuda:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    return Accelerator(device, use_amp, bool(compile), cuda, int(workers))


def run_accelerator(run) -> Accelerator:
    """The accelerator a run's parameters ask for."""
    return accelerator(run["device"], run["amp"], run["compile"], run["workers"], run.spec.bf16_on_cpu(run.arch.name))


class _EpochBatches(torch.utils.data.IterableDataset):
    """One epoch of ``batches(epoch)`` for a DataLoader: worker k of n makes batches k, k+n, …
    (a batch may be a function that makes it, so each worker builds only its own share)."""

    def __init__(self, batches, epoch: int):
        self.batches, self.epoch = batches, epoch

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        k, n = (info.id, info.num_workers) if info else (0, 1)
        for i, batch in enumerate(self.batches(self.epoch)):
            if i % n == k:
                yield batch() if callable(batch) else batch


def _as_made(batch):
    """The batch as the task made it (the default collate would turn tuples into lists)."""
    return batch


def epoch_batches(batches, epoch: int, acc: Accelerator):
    """The epoch's batches on the device: made in ``acc.workers`` DataLoader processes (in order),
    in pinned memory when the device is a GPU."""
    if acc.workers == 0 and acc.device.type == "cpu":
        return map(acc.to_device, _EpochBatches(batches, epoch))
    loader = torch.utils.data.DataLoader(_EpochBatches(batches, epoch), batch_size=None, num_workers=acc.workers,
                                         pin_memory=acc.device.type == "cuda", collate_fn=_as_made)
    return map(acc.to_device, loader)


def _shard(batch, rank: int, world: int):
    """This process's share of a global batch (data-parallel training): a slice of every tensor, equal
    when the batch size is a multiple of the processes (then a step equals the one-process step)."""
    if isinstance(batch, torch.Tensor):
        if len(batch) < world:
            raise GeonbError(f"a batch of {len(batch)} cannot be shared by {world} processes; use a batch_size of "
                             f"at least {world} (a multiple of it, for steps equal to one process's).")
        return batch.tensor_split(world)[rank]
    if isinstance(batch, (tuple, list)):
        return type(batch)(_shard(b, rank, world) for b in batch)
    return batch


def _estimate(desc: str, seconds: float, batches: int, epochs: int, acc: Accelerator) -> None:
    """Say how long training will take, from its first epoch: its batches, validation and checkpoint (the
    batches alone leave validation out, half of a small model's epoch), and how to make it faster."""
    text = (f"[geonb] {desc}: the first epoch took {progress.duration(seconds)} on {acc.device}"
            f"{', bf16 autocast' if acc.amp else ', float32'} ({batches} batches, validation and checkpoint "
            f"included); up to {progress.duration(seconds * epochs)} for {epochs} epoch(s) in all, less if early "
            "stopping ends it.")
    if acc.device.type == "cpu" and seconds * epochs > 300:
        text += (" Faster: a GPU (-p device cuda; bf16 autocast is on there by default), -p quick True for a "
                 "seconds-long check, or fewer epochs (-p epochs N).")
    progress.say(text)


def fit(
    modules: dict[str, torch.nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    batches: Callable[[int], Iterable],
    train_step: Callable[[object], dict],
    validate: Callable[[], dict],
    ckpt_dir,
    *,
    epochs: int,
    patience: int = 5,
    seed: int = 0,
    desc: str = "train",
    acc: Accelerator | None = None,
) -> list[dict]:
    """Train until ``epochs`` or ``patience`` epochs without a better val_loss.

    ``batches(epoch)`` yields the epoch's batches on the CPU, or functions that make them
    (shuffle with a generator seeded by the epoch so a resumed run sees the same order);
    ``acc`` puts them on its device and runs ``train_step`` under its autocast; the first epoch
    estimates the run's duration. In a
    data-parallel run (``geonb.distributed``) each process takes its slice of every
    batch, the logged values are averaged over processes and process 0 writes the
    checkpoints. Returns the history: one dict per epoch with the mean of each
    train_step value and the validate() values.
    """
    acc = acc or Accelerator(torch.device("cpu"))
    rank, world = distributed.rank(), distributed.world_size()
    ckpt_dir = Path(ckpt_dir)
    last, best = ckpt_dir / "last.pt", ckpt_dir / "best.pt"
    state = {"epoch": 0, "history": [], "best": math.inf, "bad_epochs": 0, "stopped": False}
    if last.exists():
        saved = load_checkpoint(last)
        for name, module in modules.items():
            module.load_state_dict(saved["modules"][name])
        for name, opt in optimizers.items():
            opt.load_state_dict(saved["optimizers"][name])
        torch.set_rng_state(saved["rng"])
        if "cuda_rng" in saved and torch.cuda.is_available():  # GAN noise and dropout drawn on the GPU
            torch.cuda.set_rng_state_all(saved["cuda_rng"])
        state = {k: saved[k] for k in state}
        if rank == 0:
            progress.say(f"resuming {desc} from epoch {state['epoch']} ({last})")
    else:
        torch.manual_seed(seed)
    first, started = state["epoch"], time.perf_counter()
    epoch_bar = progress.progress_bar(range(first, epochs), desc=desc, unit="epoch", initial=first, total=epochs, disable=rank > 0)
    for epoch in epoch_bar:
        if state["stopped"]:
            break
        for module in modules.values():
            module.train()
        sums: dict[str, float] = {}
        count = 0
        t0 = time.perf_counter()
        for batch in epoch_batches(batches, epoch, acc):
            with acc.autocast():
                values = train_step(_shard(batch, rank, world) if world > 1 else batch)
            for key, value in values.items():
                sums[key] = sums.get(key, 0.0) + float(value)
            count += 1
        sums = distributed.mean(sums)
        for module in modules.values():
            module.eval()
        with torch.no_grad():
            val = {k: float(v) for k, v in validate().items()}
        if not math.isfinite(val["val_loss"]):
            raise GeonbError(f"{desc}: validation loss is {val['val_loss']} at epoch {epoch + 1}; the training "
                             "diverged. Lower lr, or check the inputs for NaN/inf values.")
        record = {"epoch": epoch + 1, **{k: v / max(count, 1) for k, v in sums.items()}, **val}
        state["history"].append(record)
        state["epoch"] = epoch + 1
        improved = val["val_loss"] < state["best"]
        if improved:
            state["best"], state["bad_epochs"] = val["val_loss"], 0
        else:
            state["bad_epochs"] += 1
            state["stopped"] = state["bad_epochs"] >= patience
        if rank == 0:
            if improved:
                save_checkpoint(best, {"modules": {n: m.state_dict() for n, m in modules.items()}, "epoch": epoch + 1})
            save_checkpoint(last, {
                **state,
                "modules": {n: m.state_dict() for n, m in modules.items()},
                "optimizers": {n: o.state_dict() for n, o in optimizers.items()},
                "rng": torch.get_rng_state(),
                **({"cuda_rng": torch.cuda.get_rng_state_all()} if torch.cuda.is_available() else {}),
            })
            if epoch == first:
                _estimate(desc, time.perf_counter() - t0, count, epochs - first, acc)
            progress.epoch_line(desc, epoch + 1, epochs, record, (time.perf_counter() - started) / (epoch + 1 - first))
        distributed.barrier()  # the other processes read these checkpoints only after they exist
        epoch_bar.set_postfix({k: f"{v:.4g}" for k, v in record.items() if k != "epoch"})
    saved_best = load_checkpoint(best)
    for name, module in modules.items():
        module.load_state_dict(saved_best["modules"][name])
        module.eval()
    return state["history"]
