"""The program each data-parallel training process runs: ``distributed.launch`` starts it with torchrun.

It joins the process group (``geonb.distributed``) and runs the run's train step (``geonb.workflow``);
standing above both, it lets the workflow start data-parallel training without ``distributed`` importing
the workflow back.
"""
from __future__ import annotations

import torch
import torch.distributed as dist

from .distributed import local_rank
from .workflow import Run


def worker(params: dict) -> None:
    """One torchrun process: join the process group, then run the run's train step."""
    cuda = torch.cuda.is_available() and params.get("device", "auto") != "cpu"
    if cuda:
        torch.cuda.set_device(local_rank())
    dist.init_process_group("nccl" if cuda else "gloo")
    try:
        run = Run(**params)
        run.spec.steps["train"](run)
    finally:
        dist.destroy_process_group()
