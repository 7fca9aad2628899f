"""Typed run parameters: each task declares its own, with type, default, quick value and the step it feeds.

A value of the wrong type is refused with the parameter's name and type; a parameter of
another task is refused with the name of its owner (``Run`` does both before any work).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from .errors import GeonbError

NOT_SET = object()
STEPS = ("data_prep", "simulate", "train", "error_maps", "scatter_plots", "transects")


BOOL_WORDS = {"true": True, "false": False}  # what a command line may say for a switch, any case


@dataclass(frozen=True)
class Param:
    """One parameter: ``step`` is the first step whose outputs it changes (later ones go stale too;
    None: it changes no saved output). ``default`` None means "chosen by the task/arch" (see help)."""

    name: str
    type: type
    default: Any
    help: str
    step: str | None = "train"
    quick: Any = NOT_SET
    # Allowed values: numbers (a list's items) at least ``min`` / above ``above`` / at most ``max`` (floats
    # must be finite), one of ``allowed``, or what ``valid(value)`` accepts (it returns the reason a value is
    # refused, or None). ``max`` caps sizes far above any real run, so a typo cannot ask for terabytes.
    min: float | None = None
    above: float | None = None
    max: float | None = None
    allowed: tuple | None = None
    single: bool = False  # a list parameter that also takes one number alone (2 → [2])
    valid: Callable[[Any], str | None] | None = None

    def check(self, value):
        """``value`` as this parameter's type, or a GeonbError naming the parameter, the value and what is allowed."""
        if value is None and self.default is None:
            return None
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if self.type is bool and isinstance(value, str) and value.lower() in BOOL_WORDS:  # papermill -p x true
            value = BOOL_WORDS[value.lower()]
        if self.type is list and isinstance(value, tuple):
            value = list(value)
        if self.single and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, self.type) or (self.type is int and isinstance(value, bool)):
            raise GeonbError(f"parameter {self.name!r} must be {self.type.__name__} ({self.help}); "
                             f"got {value!r} ({type(value).__name__}).")
        problem = self.problem(value)
        if problem:
            raise GeonbError(f"parameter {self.name!r} = {value!r}: {problem} ({self.help}).")
        return value

    def problem(self, value) -> str | None:
        """Why ``value`` (of the right type) is not allowed, or None."""
        if self.allowed is not None and value not in self.allowed:
            return f"use one of {', '.join(map(repr, self.allowed))}"
        for item in value if self.type is list else [value]:
            if self.min is None and self.above is None and self.max is None and self.type is not float:
                break
            if isinstance(item, bool) or not isinstance(item, (int, float)) or not math.isfinite(item):
                return "must be a finite number" + ("" if self.type is not list else " in every item")
            if self.min is not None and item < self.min:
                return f"must be at least {self.min:g}" + ("" if self.type is not list else " in every item")
            if self.above is not None and item <= self.above:
                return f"must be above {self.above:g}" + ("" if self.type is not list else " in every item")
            if self.max is not None and item > self.max:
                return f"must be at most {self.max:g}" + ("" if self.type is not list else " in every item")
        return self.valid(value) if self.valid else None


@dataclass(frozen=True)
class ParamSet:
    """The parameters of one task, by name."""

    params: tuple[Param, ...]
    by_name: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "by_name", {p.name: p for p in self.params})

    def __iter__(self):
        return iter(self.params)

    def __contains__(self, name):
        return name in self.by_name

    def __getitem__(self, name) -> Param:
        return self.by_name[name]

    def override(self, **changes) -> "ParamSet":
        """The same set with other defaults/quick values: ``override(epochs={"default": 60})``."""
        return ParamSet(tuple(replace(p, **changes[p.name]) if p.name in changes else p for p in self.params))

    def __add__(self, more: tuple[Param, ...]) -> "ParamSet":
        return ParamSet(self.params + tuple(more))


def resolved(params: ParamSet, given: dict, arch_lr: float) -> dict:
    """Every parameter's value: the ``given`` (checked) one, else the quick value in a quick run, else the
    default; the learning rate, when not given, is the arch's ``arch_lr``."""
    quick = given.get("quick", params["quick"].default)
    values = {p.name: given[p.name] if p.name in given else p.quick if quick and p.quick is not NOT_SET else p.default
              for p in params}
    if values["lr"] is None:
        values["lr"] = arch_lr
    return values


AMP = ("auto", "bf16", "off")  # bf16 autocast settings (training.Accelerator)


def device_problem(name: str) -> str | None:
    """Why torch cannot train on ``name`` here (unknown device, or no such GPU on this machine), or None."""
    import torch

    if name == "auto":
        return None
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        return "unknown device; use auto, cpu, cuda or cuda:N"
    if device.type == "cpu":
        return None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if not count:
            return "this machine has no CUDA GPU that torch can use; use auto or cpu"
        if (device.index or 0) >= count:
            return f"this machine has {count} CUDA GPU(s): use cuda:0 … cuda:{count - 1}"
        return None
    return f"geonb trains on cpu or cuda, not {device.type!r}; use auto, cpu or cuda"  # as training.pick_device


# Tasks that read gridded fields take it: values that are not data (no-data numbers, spikes) are refused unless set.
ALLOW_OUTLIERS = Param("allow_outliers", bool, False, "keep no-data numbers and values far outside the field's "
                       "robust range (else refused)", "data_prep")

# What every task takes; a task overrides defaults (``COMMON.override``) and adds its own.
COMMON = ParamSet((
    Param("arch", str, "dincae", "architecture name (`geonb archs`); it picks the task (default: the main job, "
          "cloud filling of the Alboran cube)"),
    Param("run_dir", str, "runs/default", "outputs go to <run_dir>/<task>/", None),
    Param("quick", bool, False, "tiny data and few epochs: seconds on a CPU", "data_prep"),
    Param("data", str, "", "embedded dataset name or NetCDF/zarr path", "data_prep"),
    Param("var", str, "", "variable in `data`; '' = the only/default one", "data_prep"),
    Param("seed", int, 0, "random seed of splits, holes and weights", "data_prep", min=0, max=2 ** 32 - 1),
    Param("epochs", int, 100, "maximum training epochs", min=1, max=100_000),
    Param("patience", int, 5, "stop after this many epochs without a better validation score", min=1, max=100_000),
    Param("batch_size", int, 10, "samples per optimisation step", min=1, max=4096),
    Param("init", str, "", "start from this model's weights (fine-tuning): a shipped name (`geonb models`) or a model "
          "file of the same arch and network shape; '' = random weights"),
    Param("lr", float, None, "learning rate; None: the arch default (1e-3; srgan 1.7e-4 as DeepBedMap; acgan, pix2pix 2e-4)",
          above=0),
    Param("device", str, "auto", "auto = cuda if present, else cpu", None, valid=device_problem),
    Param("amp", str, "auto", "bf16 autocast: auto (on GPUs with bf16, and on CPUs with native bf16 for the tasks "
          "it keeps accurate), bf16 or off", allowed=AMP),
    Param("compile", bool, False, "torch.compile the networks (faster steps after a compile pause)", None),
    Param("workers", int, 0, "DataLoader processes making batches (0: the training process)", None, min=0, max=64),
    Param("ddp", int, 0, "data-parallel processes (torchrun + DDP; one per GPU); 0: one process", None, min=0, max=64),
    Param("transect_start", list, None, "[lat, lon] start of the 06 line; None: set by the task", None),
    Param("transect_end", list, None, "[lat, lon] end of the 06 line; None: set by the task", None),
))


# A GAN generator's moving average (``methods.base.Method``'s ``ema``), taken by the generate and translate tasks.
EMA = Param("ema", float, 0.99, "decay of the generator's moving average, the generator validated, kept and sampled "
            "(0: the trained generator itself; 0.99: an average over about 100 steps)", min=0.0, max=0.9999)


def cli_type(param: Param, name: str | None = None):
    """An argparse ``type`` that converts and checks a command-line value as ``param`` (bounds included),
    so a flag and the run parameter it stands for accept the same values."""
    import argparse
    import ast

    def convert(text: str):
        try:
            value = ast.literal_eval(text) if param.type is list else param.type(text)
        except (ValueError, SyntaxError):
            raise argparse.ArgumentTypeError(f"{text!r} is not a {param.type.__name__}") from None
        try:
            return param.check(value)
        except GeonbError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = name or param.name  # argparse names the type in its messages
    return convert
