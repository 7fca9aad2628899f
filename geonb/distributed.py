"""Data-parallel training on several GPUs (or CPU processes) with torchrun + DistributedDataParallel.

``-p ddp N`` (N ≥ 2) makes a run's train step start N processes with ``torchrun --standalone``
(``launch``; each runs ``geonb.ddp_worker``): every process builds the same run, ``methods.build``
wraps each trained network in DDP (gradients averaged over processes by PyTorch), and
``training.fit`` gives each process an equal slice of every global batch, so a step
equals one single-process step on the whole batch. Process 0 writes the checkpoints;
when the processes finish, the notebook's own train step resumes from them (the
finished run) and writes the model file and figures. Backend: NCCL on GPUs, gloo on CPUs.
"""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from .errors import GeonbError


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", 0))


def broadcast_buffers(net: torch.nn.Module) -> None:
    """Every process takes process 0's buffers of ``net`` (the BatchNorm statistics a network outside DDP
    gathers from its own slice), so each process's copy validates and stops alike."""
    if active():
        for buffer in net.buffers():
            dist.broadcast(buffer.data, 0)


def barrier() -> None:
    if active():
        dist.barrier()


def mean(values: dict[str, float]) -> dict[str, float]:
    """The per-process sums of logged values averaged over the processes (the global batch's value)."""
    if not active() or not values:
        return values
    t = torch.tensor(list(values.values()), dtype=torch.float64)
    dist.all_reduce(t)
    return dict(zip(values, (t / world_size()).tolist()))


class DataParallel(DistributedDataParallel):
    """DDP that keeps the wrapped network's face: its attributes (``halo``, ``factor``) and its
    state-dict keys (no ``module.`` prefix), so model files and checkpoints do not change."""

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)

    def state_dict(self, *args, **kwargs):
        return self.module.state_dict(*args, **kwargs)

    def load_state_dict(self, *args, **kwargs):
        return self.module.load_state_dict(*args, **kwargs)


def wrap(net: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``net`` in DDP when this is a data-parallel run (its weights broadcast from process 0), else as is."""
    if not active() or not any(p.requires_grad for p in net.parameters()):
        return net
    return DataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)


@contextlib.contextmanager
def frozen(net: torch.nn.Module):
    """``net``'s weights fixed while another network learns through it (a GAN's generator step):
    no gradients for it, and DDP told not to wait for them."""
    net.requires_grad_(False)
    sync = net.no_sync() if isinstance(net, DistributedDataParallel) else contextlib.nullcontext()
    try:
        with sync:
            yield net
    finally:
        net.requires_grad_(True)


def launch(params: dict, processes: int) -> None:
    """Run the train step of the run ``params`` in ``processes`` torchrun processes; a failure is a GeonbError."""
    if processes > 1 and torch.cuda.is_available() and processes > torch.cuda.device_count():
        raise GeonbError(f"ddp {processes}: this machine has {torch.cuda.device_count()} GPU(s); use -p ddp "
                         f"{torch.cuda.device_count()} or fewer (or -p device cpu for CPU processes).")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
           "--no-python", sys.executable, "-c", "import sys, json, geonb.ddp_worker as w; w.worker(json.loads(sys.argv[1]))",
           json.dumps(params)]
    print(f"[geonb] data-parallel training in {processes} processes: {' '.join(cmd[:5])} …", flush=True)
    threads = os.environ.get("OMP_NUM_THREADS") or str(max(1, (os.cpu_count() or 1) // processes))
    done = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": threads})
    if done.returncode:
        raise GeonbError(f"data-parallel training failed (exit {done.returncode}); its processes' errors are "
                         "printed above. Run with -p ddp 0 to train in one process.")
