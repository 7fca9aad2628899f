"""Command-line doors generated from each task's Params: ``geonb train --arch A`` and ``geonb params A``.

Every parameter of the arch's task is a flag (``batch_size`` → ``--batch-size``) with the Param's
type, bounds, default and quick value, so the command line, ``geonb run -p NAME VALUE`` and a
notebook's parameters accept the same values and no default is written twice.

``geonb train`` runs the task's own steps in a run dir (data → training → held-out scores) and
copies the model file to ``--model``; a task that trains on the user's own file instead (downscaling
a grid: ``Task.train_command``) gets the same generated flags for the parameters it reads.
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from . import commands
from .errors import GeonbError
from .params import NOT_SET, Param, cli_type

# What the training commands never take: the arch is the command's own flag; the run dir, where the
# held-out scores are kept, too; the transect only draws 06.
NOT_FLAGS = ("arch", "run_dir", "transect_start", "transect_end")


DATA_SUFFIXES = (".nc", ".nc4", ".zarr", ".tif", ".tiff", ".png", ".jpg", ".jpeg", ".pt")


# The parameters that may name a file (or an embedded dataset, or a shipped model).
PATH_PARAMS = ("data", "labels", "cloud_source", "init")


def from_here(name: str, value):
    """A path parameter naming a file relative to the user's folder, made absolute: the notebooks run in the
    checkout, where it would name another file or none. Other parameters (a variable, a device) as given."""
    if name not in PATH_PARAMS or not isinstance(value, str) or not value or Path(value).is_absolute():
        return value
    path = Path(value).expanduser()
    looks_like_a_path = path.exists() or "/" in value or path.suffix.lower() in DATA_SUFFIXES
    return str(path.resolve()) if looks_like_a_path else value


def peek_arch(argv) -> str | None:
    """The value of ``--arch`` in ``argv`` (``--arch A`` or ``--arch=A``; the last one, as argparse takes it),
    before the parser exists."""
    argv, found = list(argv), None
    for k, word in enumerate(argv):
        if word == "--arch" and k + 1 < len(argv):
            found = argv[k + 1]
        elif word.startswith("--arch="):
            found = word.split("=", 1)[1]
    return found


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def describe(p: Param) -> str:
    """The Param's help with its default and quick value, as flags and ``geonb params`` show them."""
    default = "chosen by the task/arch" if p.default is None else repr(p.default)
    quick = "" if p.quick is NOT_SET else f"; --quick: {p.quick!r}"
    return f"{p.help} (default {default}{quick})"


def add_param_flags(parser, params) -> None:
    """A flag per parameter in ``params``, default None: not given, so the task's default (or quick value)
    applies as in a run."""
    for p in params:
        if p.type is bool:
            parser.add_argument(flag(p.name), dest=p.name, action=argparse.BooleanOptionalAction, default=None,
                                help=describe(p))
        else:
            parser.add_argument(flag(p.name), dest=p.name, type=cli_type(p), default=None, help=describe(p),
                                metavar=p.type.__name__.upper())


def given(args, params) -> dict:
    """The parameters set on the command line, by name."""
    return {p.name: getattr(args, p.name) for p in params if getattr(args, p.name, None) is not None}


def train_command(args) -> int:
    from .outputs import atomic_path, check_outputs
    from .registry import get_arch
    from .tasks import get_task
    from .workflow import Run

    task = get_task(get_arch(args.arch).task)
    flags = [p for p in task.params if is_flag(task, p.name)]
    values = {name: from_here(name, value) for name, value in given(args, flags).items()}
    if task.train_command is not None:  # trains on the user's own file, no run dir
        return task.train_command(args, values)
    out = Path(args.model).expanduser()
    run_dir = Path(args.run_dir).expanduser() if args.run_dir else out.with_name(out.stem + "_run")
    paths = check_outputs({"--model": out, "--run-dir": run_dir}, [values.get("data")], overwrite=args.overwrite,
                          folders=("--run-dir",))
    run = Run(paths["--run-dir"], arch=args.arch, **values)  # every value checked before any work
    with run.hold():
        run.step("train")
        source = run.model_path(args.arch)
        with atomic_path(paths["--model"], size=source.stat().st_size) as tmp:
            shutil.copyfile(source, tmp)
        print(f"wrote {paths['--model']} (the run, its figures and checkpoints: {run.dir / run.task})")
        scores = run.step("error_maps")  # the skill on held-out data, beside the task's baselines
    name, table = next(iter(scores.tables.items()))  # each task's 04 opens with its scores beside its baselines
    print(f"[geonb train] held-out skill, {scores.title}: {name}\n{table.round(3).to_string()}")
    return 0


def params_command(args) -> int:
    from .progress import print_rows
    from .registry import get_arch
    from .tasks import get_task

    arch = get_arch(args.arch)
    task = get_task(arch.task)
    print(f"{arch.name}: {task.name} task ({task.description}). `geonb run -p arch {arch.name} -p NAME VALUE` "
          f"takes them all; `geonb train --arch {arch.name}` takes those marked --flag:")
    print_rows([(p.name, f"{p.type.__name__}: {describe(p)}"
                 + (f" [{flag(p.name)}]" if is_flag(task, p.name) or (p.name == "run_dir" and not task.train_command)
                    else " [-p only]"))
                for p in task.params if p.name != "arch"])
    return 0


def is_flag(task, name: str) -> bool:
    """Whether ``geonb train`` takes the parameter as a flag (a task with its own train command: only its
    ``train_params``)."""
    return name not in NOT_FLAGS and (task.train_command is None or name in task.train_params)


def add_cli(subparsers, argv=()) -> None:
    from .registry import get_arch, list_archs
    from .tasks import get_task

    archs = ", ".join(a.name for a in list_archs())
    t = commands.add(subparsers, "train", description="Train ARCH; the flags after --arch are its task's parameters "
                              "(`geonb params ARCH`).", allow_abbrev=False)
    t.add_argument("--arch", required=True, help=f"one of {archs}")
    t.add_argument("--model", required=True, help="output model file (.pt)")
    t.add_argument("--overwrite", action="store_true", help="replace --model if it exists")
    t.set_defaults(func=train_command)
    p = commands.add(subparsers, "params")
    p.add_argument("arch", help=f"one of {archs}")
    p.set_defaults(func=params_command)
    arch = peek_arch(argv)
    if arch is None:
        return
    try:
        task = get_task(get_arch(arch).task)
    except GeonbError:  # an unknown arch: the command says so with the valid names
        return
    if task.train_command is None:
        t.add_argument("--run-dir", help="where the data, figures, checkpoints and held-out scores go "
                       "(default: <model>_run beside --model)")
    else:
        task.train_flags(t)
    add_param_flags(t, [p for p in task.params if is_flag(task, p.name)])
