"""A run: one directory, one set of parameters, six steps dispatched to the arch's task.

Every step writes its outputs under ``<run_dir>/<task>/`` and a marker recording the
parameters it used; ``run.require(step)`` re-runs a step (and the ones before it) only
when its outputs are missing or were made with other parameters. So each notebook runs
standalone: 04 on a fresh clone builds 01-03 first.
"""
from __future__ import annotations

import importlib
import json
from pathlib import Path

from .errors import GeonbError
from .registry import get_arch, list_archs
from .report import Report

STEPS = ("data_prep", "simulate", "train", "error_maps", "scatter_plots", "transects")
NOTEBOOKS = ("01_data_prep", "02_hole_simulation", "03_train", "04_error_maps", "05_scatter_plots", "06_transects")

# Parameters every task understands; a task's PARAMS adds its own (and may override defaults).
COMMON_PARAMS = {
    "arch": "unet",        # architecture name (`geonb archs`); its task picks data and steps
    "data": "",            # embedded dataset name or NetCDF/zarr path; "" = the task's default
    "var": "",             # variable in `data`; "" = the dataset's default
    "run_dir": "runs/default",
    "quick": False,        # tiny data and few epochs: seconds on a CPU
    "seed": 0,
    "epochs": 100,
    "patience": 5,
    "batch_size": 10,
    "lr": 1e-3,
    "device": "auto",      # auto = cuda if present, else cpu
}


def task_module(task: str):
    return importlib.import_module(f"geonb.tasks.{task}")


def task_names() -> list[str]:
    return sorted({arch.task for arch in list_archs()})


def all_params() -> dict:
    """Every parameter name any notebook accepts, with its default (None = task default)."""
    names = dict(COMMON_PARAMS)
    for task in task_names():
        for key in task_module(task).PARAMS:
            names.setdefault(key, None)
    return names


class Run:
    """A run directory and its parameters. ``Run(run_dir, arch="unet", quick=True)``."""

    def __init__(self, run_dir=None, **params):
        params = {k: v for k, v in params.items() if v is not None}
        arch = get_arch(params.get("arch", COMMON_PARAMS["arch"]))
        self.task = arch.task
        self.tasks = task_module(self.task)
        defaults = {**COMMON_PARAMS, **self.tasks.PARAMS}
        unknown = sorted(set(params) - set(all_params()))
        if unknown:
            raise GeonbError(f"unknown parameter(s) {unknown}; valid: {', '.join(sorted(all_params()))}")
        self.params = {**defaults, **{k: v for k, v in params.items() if k in defaults}}
        if run_dir is not None:
            self.params["run_dir"] = str(run_dir)
        self.dir = Path(self.params["run_dir"])

    @classmethod
    def from_namespace(cls, namespace: dict) -> "Run":
        """Build a run from a notebook's globals (its parameters cell plus papermill's)."""
        return cls(**{k: namespace[k] for k in all_params() if k in namespace})

    def __getitem__(self, key):
        return self.params[key]

    def __repr__(self):
        return f"Run({str(self.dir)!r}, task={self.task!r}, arch={self['arch']!r}, quick={self['quick']})"

    def path(self, *parts) -> Path:
        """``<run_dir>/<task>/<parts>``, parent folders created."""
        path = self.dir.joinpath(self.task, *map(str, parts))
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def _marker(self, step: str) -> Path:
        name = f"{step}-{self['arch']}" if step == "train" else step
        return self.path(".steps", f"{name}.json")

    def stamp(self, step: str) -> dict:
        """The parameters (and input files, e.g. a drawn mask) that this step's outputs depend on."""
        keys, files = set(), set()
        for earlier in STEPS[: STEPS.index(step) + 1]:
            keys |= set(self.tasks.STEP_KEYS.get(earlier, ()))
            files |= set(getattr(self.tasks, "STEP_FILES", {}).get(earlier, ()))
        stamp = {k: self.params[k] for k in sorted(keys)}
        for name in sorted(files):
            path = self.dir / self.task / name
            stamp[f"file {name}"] = [path.stat().st_mtime_ns, path.stat().st_size] if path.exists() else None
        return stamp

    def is_current(self, step: str) -> bool:
        marker = self._marker(step)
        return marker.exists() and json.loads(marker.read_text()) == json.loads(json.dumps(self.stamp(step)))

    def require(self, step: str) -> None:
        """Make sure ``step``'s outputs exist and match the current parameters."""
        if not self.is_current(step):
            print(f"[geonb] building step {step!r} for {self}", flush=True)
            self.step(step)

    def step(self, step: str) -> Report:
        """Run one step (earlier ones first if needed) and return its report."""
        if step not in STEPS:
            raise GeonbError(f"unknown step {step!r}; steps: {', '.join(STEPS)}")
        for earlier in STEPS[: STEPS.index(step)]:
            if earlier in self.tasks.STEP_KEYS:
                self.require(earlier)
        report = getattr(self.tasks, step)(self)
        if step in self.tasks.STEP_KEYS:
            self._marker(step).write_text(json.dumps(self.stamp(step), indent=1))
        return report
