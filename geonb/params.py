"""Typed run parameters: each task declares its own, with type, default, quick value and the step it feeds.

A value of the wrong type is refused with the parameter's name and type; a parameter of
another task is refused with the name of its owner (``Run`` does both before any work).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from .errors import GeonbError

NOT_SET = object()
STEPS = ("data_prep", "simulate", "train", "error_maps", "scatter_plots", "transects")


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

    def check(self, value):
        """``value`` as this parameter's type, or a GeonbError naming the parameter and its type."""
        if value is None and self.default is None:
            return None
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if self.type is list and isinstance(value, tuple):
            return list(value)
        if not isinstance(value, self.type) or (self.type is int and isinstance(value, bool)):
            raise GeonbError(f"parameter {self.name!r} must be {self.type.__name__} ({self.help}); "
                             f"got {value!r} ({type(value).__name__}).")
        return value


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


# What every task takes; a task overrides defaults (``COMMON.override``) and adds its own.
COMMON = ParamSet((
    Param("arch", str, "unet", "architecture name (`geonb archs`); it picks the task"),
    Param("run_dir", str, "runs/default", "outputs go to <run_dir>/<task>/", None),
    Param("quick", bool, False, "tiny data and few epochs: seconds on a CPU", "data_prep"),
    Param("data", str, "", "embedded dataset name or NetCDF/zarr path", "data_prep"),
    Param("var", str, "", "variable in `data`; '' = the only/default one", "data_prep"),
    Param("seed", int, 0, "random seed of splits, holes and weights", "data_prep"),
    Param("epochs", int, 100, "maximum training epochs"),
    Param("patience", int, 5, "stop after this many epochs without a better validation score"),
    Param("batch_size", int, 10, "samples per optimisation step"),
    Param("lr", float, None, "learning rate; None: the arch default (1e-3; srgan 1.7e-4 as DeepBedMap; acgan, pix2pix 2e-4)"),
    Param("device", str, "auto", "auto = cuda if present, else cpu; cuda without a GPU is an error", None),
    Param("amp", str, "auto", "bf16 autocast: auto (on GPUs that support bf16), bf16 or off"),
    Param("compile", bool, False, "torch.compile the networks (faster steps after a compile pause)", None),
    Param("workers", int, 0, "DataLoader processes making batches (0: the training process)", None),
    Param("ddp", int, 0, "data-parallel processes (torchrun + DDP; one per GPU); 0: one process", None),
    Param("transect_start", list, None, "[lat, lon] start of the 06 line; None: set by the task", None),
    Param("transect_end", list, None, "[lat, lon] end of the 06 line; None: set by the task", None),
))
