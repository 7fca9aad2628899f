"""Task families: each module declares one ``TASK`` — its data, typed parameters, steps and outputs.

A task's steps are functions of a ``Run`` returning a ``Report``; a notebook step that does
not apply to a task is a sentence saying why instead of a function.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable

from ..params import ParamSet


@dataclass(frozen=True)
class Task:
    name: str
    description: str
    params: ParamSet
    steps: dict[str, Callable | str]
    step_files: dict[str, tuple[str, ...]] = field(default_factory=dict)  # inputs that make a step stale
    predict_file: Callable | None = None  # ``geonb predict`` with a model of this task: (model, args) → Dataset
    predict_options: tuple[str, ...] = ()  # the ``geonb predict`` options its predict_file reads (others are refused)
    # amp auto turns bf16 autocast on for a CPU with native bf16 only where it was measured to keep this
    # family's held-out scores within float32's seed-to-seed spread (benchmarks/results/): True for every
    # arch of the task, or the names of the archs it holds for
    cpu_bf16: bool | tuple[str, ...] = False
    # ``geonb train`` of a task that trains on the user's own file rather than in a run dir (downscaling a grid):
    # (args, parameters given) → exit status; ``train_flags(parser)`` adds its own flags, and only the
    # ``train_params`` among its Params become flags.
    train_command: Callable | None = None
    train_flags: Callable | None = None
    train_params: tuple[str, ...] = ()

    def bf16_on_cpu(self, arch: str) -> bool:
        """Whether amp auto may train ``arch`` in bf16 on a CPU with native bf16 (``cpu_bf16``)."""
        return self.cpu_bf16 is True or arch in (self.cpu_bf16 or ())


def get_task(name: str) -> Task:
    return importlib.import_module(f"geonb.tasks.{name}").TASK
