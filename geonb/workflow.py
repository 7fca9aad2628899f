"""A run: one directory, one task's typed parameters, the six notebook steps, one folder layout.

Every step writes its outputs under ``<run_dir>/<task>/`` and a marker recording what it
was made from (the parameters that feed it and earlier steps, and input files such as a
drawn mask); ``run.require(step)`` re-runs a step (and the ones before it) only when its
outputs are missing or stale. So each notebook runs standalone: 04 on a fresh clone
builds 01-03 first.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path

from . import distributed, progress
from .errors import GeonbError
from .io import write_text
from .outputs import check_outputs, locked
from .params import COMMON, STEPS, resolved
from .registry import get_arch, list_archs
from .report import Report
from .tasks import Task, get_task
from .checkpoints import config_key

# Steps that leave a marker: later steps rebuild them when they are missing or stale.
MARKED = ("data_prep", "simulate", "train", "error_maps")
# The run dir whose lock this process holds, or a parent (``geonb run``, whose notebook kernels and ddp workers
# run its steps) holds for it.
HELD = "GEONB_RUN_DIR_HELD"
NOTEBOOKS = ("01_data_prep", "02_hole_simulation", "03_train", "04_error_maps", "05_scatter_plots", "06_transects")


def task_names() -> list[str]:
    return sorted({arch.task for arch in list_archs()})


def all_params() -> dict[str, list[str]]:
    """Every parameter name any notebook accepts → the tasks that own it."""
    owners: dict[str, list[str]] = {}
    for name in task_names():
        for p in get_task(name).params:
            owners.setdefault(p.name, []).append(name)
    return owners


def check_params(task: Task, given: dict) -> dict:
    """Refuse names the task does not take (naming their owner) and values of the wrong type."""
    out = {}
    for name, value in given.items():
        if name not in task.params:
            owners = all_params().get(name)
            if owners:
                archs = ", ".join(a.name for a in list_archs() if a.task in owners)
                raise GeonbError(f"parameter {name!r} belongs to task {'/'.join(owners)} (archs {archs}), not to "
                                 f"{task.name}; drop it or pick one of those archs.")
            raise GeonbError(f"unknown parameter {name!r}; {task.name} takes: {', '.join(p.name for p in task.params)}.")
        out[name] = task.params[name].check(value)
    return out


PROSE = Path(__file__).parent / "tasks" / "prose"


def prose(task: str, step: str) -> str:
    """The section ``<!-- step -->`` of the task's prose file."""
    text = (PROSE / f"{task}.md").read_text()
    parts = re.split(r"^<!-- (\w+) -->\n", text, flags=re.M)
    sections = dict(zip(parts[1::2], parts[2::2]))
    if step not in sections:
        raise GeonbError(f"{PROSE / task}.md has no section <!-- {step} -->; steps: {', '.join(sections)}.")
    return sections[step].strip()


class Run:
    """A run directory and its parameters. ``Run(run_dir, arch="dincae", quick=True)``."""

    def __init__(self, run_dir=None, **params):
        params = {k: v for k, v in params.items() if v is not None}
        arch = get_arch(params.get("arch", COMMON["arch"].default))
        self.arch = arch
        self.task = arch.task
        self.spec = get_task(arch.task)
        if run_dir is not None:
            params["run_dir"] = str(run_dir)
        self.given = check_params(self.spec, params)
        self.params = resolved(self.spec.params, self.given, arch.lr)
        self.dir = check_outputs({"run_dir": self.params["run_dir"]}, folders=("run_dir",))["run_dir"]
        if self.params["init"]:  # a model of another arch is refused before any step runs (its shape: methods.build)
            from .pretrained import init_model

            init_model(self.params["init"], arch)
        if self.params["ddp"] > 1:  # what data-parallel training cannot do, refused with the other parameters
            if not arch.data_parallel:  # the method says (stagewise: its stages train outside DDP's forward pass)
                raise GeonbError(f"{arch.name}'s training method ({arch.method}) does not train in data-parallel "
                                 "processes; use -p ddp 0, or an arch whose method does.")
            if self.params["batch_size"] < self.params["ddp"]:
                raise GeonbError(f"batch_size {self['batch_size']} cannot be shared by ddp {self['ddp']} processes; use a "
                                 f"batch_size of at least {self['ddp']} (a multiple of it for steps equal to one process's).")

    @classmethod
    def from_namespace(cls, namespace: dict) -> "Run":
        """Build a run from a notebook's globals (its parameters cell plus papermill's)."""
        return cls(**{k: namespace[k] for k in all_params() if namespace.get(k) is not None})

    def __getitem__(self, key):
        return self.params[key]

    def __repr__(self):
        return f"Run({str(self.dir)!r}, task={self.task!r}, arch={self['arch']!r}, quick={self['quick']})"

    def explain(self, step: str):
        """What ``step`` does in this run's task and why, with its maths (``geonb/tasks/prose/<task>.md``): the
        narrative a notebook shows, for this task only."""
        from IPython.display import Markdown

        return Markdown(f"*{self.arch.name}: {self.arch.description}. Task `{self.task}`"
                        f"{', quick run' if self['quick'] else ''}; outputs in `{self.dir / self.task}`.*\n\n"
                        + prose(self.task, step))

    # ------------------------------------------------------------ the folder layout, defined once
    def path(self, *parts) -> Path:
        """``<run_dir>/<task>/<parts>``, parent folders created."""
        path = self.dir.joinpath(self.task, *map(str, parts))
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def folder(self, *parts) -> Path:
        """``<run_dir>/<task>/<parts>/``, created."""
        path = self.dir.joinpath(self.task, *map(str, parts))
        path.mkdir(parents=True, exist_ok=True)
        return path

    def model_path(self, name: str) -> Path:
        """The model file of ``name`` (an arch, or arch + factor for downscaling)."""
        return self.path("models", name, "model.pt")

    def checkpoint_dir(self, name: str) -> Path:
        """Checkpoints of ``name`` keyed by everything training depends on: a changed run starts afresh."""
        return self.folder("checkpoints", name, config_key(self.stamp("train")))

    def trained(self) -> dict[str, Path]:
        """Every model file in this run's task folder, by name."""
        return {p.parent.name: p for p in sorted(self.folder("models").glob("*/model.pt"))}

    def prediction_path(self, name: str) -> Path:
        return self.path("predictions", f"{name}.nc")

    def predictions(self) -> dict[str, Path]:
        """04's prediction files by name (inpaint: one per hole set; downscale, clouds: one)."""
        return {p.stem: p for p in sorted(self.folder("predictions").glob("*.nc"))}

    def metrics_path(self, name: str) -> Path:
        return self.path("metrics", f"{name}.csv")

    def figure(self, name: str) -> Path:
        return self.path("figures", f"{name}.png")

    # ------------------------------------------------------------ steps and staleness
    def _marker(self, step: str) -> Path:
        name = f"{step}-{self['arch']}" if step == "train" else step
        return self.path(".steps", f"{name}.json")

    def stamp(self, step: str) -> dict:
        """The parameters (and input files, e.g. a drawn mask) that this step's outputs depend on."""
        upto = set(STEPS[: STEPS.index(step) + 1])
        stamp = {p.name: self.params[p.name] for p in self.spec.params if p.step in upto}
        for earlier in sorted(upto):
            for name in self.spec.step_files.get(earlier, ()):
                path = self.dir / self.task / name
                stamp[f"file {name}"] = [path.stat().st_mtime_ns, path.stat().st_size] if path.exists() else None
        if stamp.get("init"):  # a model file rewritten under the same name is another start
            from .modelfile import resolve

            path = resolve(stamp["init"])
            stamp["file init"] = [path.stat().st_mtime_ns, path.stat().st_size]
        return dict(sorted(stamp.items()))

    def is_current(self, step: str) -> bool:
        marker = self._marker(step)
        return marker.exists() and json.loads(marker.read_text()) == json.loads(json.dumps(self.stamp(step)))

    def require(self, step: str) -> None:
        """Make sure ``step``'s outputs exist and match the current parameters."""
        if not self.is_current(step):
            progress.say(f"[geonb] building step {step!r} for {self}")
            self.step(step)

    @contextlib.contextmanager
    def hold(self):
        """Hold the run dir's lock (``outputs.locked``) while the block runs: a second process running steps in the
        same folder is refused, so two runs never mix their outputs. Nested steps, and the processes started
        while it is held (they inherit ``HELD``), share the hold."""
        mine = str(self.dir.resolve())
        if os.environ.get(HELD) == mine:
            yield
            return
        with locked(self.dir, "run dir"):
            before, os.environ[HELD] = os.environ.get(HELD), mine
            try:
                yield
            finally:  # back to the hold of an enclosing run in another folder, if any
                os.environ.pop(HELD) if before is None else os.environ.update({HELD: before})

    def step(self, step: str) -> Report:
        """Run one step (earlier ones first if needed) and return its report; the run dir is locked meanwhile."""
        if step not in STEPS:
            raise GeonbError(f"unknown step {step!r}; steps: {', '.join(STEPS)}")
        with self.hold():
            return self._step(step)

    def _step(self, step: str) -> Report:
        what = self.spec.steps.get(step, f"the {self.task} task has no {step} step.")
        if isinstance(what, str):
            return Report(f"{step}: not part of the {self.task} task", what)
        for earlier in STEPS[: STEPS.index(step)]:
            if earlier in MARKED and not isinstance(self.spec.steps.get(earlier, ""), str):
                self.require(earlier)
        if step == "train" and self["ddp"] > 1 and not distributed.active():
            distributed.launch(self.given, self["ddp"])  # then the step below resumes the finished run
        report = what(self)
        if step in MARKED:
            write_text(self._marker(step), json.dumps(self.stamp(step), indent=1))
        return report
