"""Command line: ``geonb run`` (the main job), ``geonb archs``, ``geonb --version`` and the batch commands."""
from __future__ import annotations

import argparse
import ast
import importlib
import signal
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

from .errors import GeonbError
from .frontdoor import from_here
from .outputs import no_room
from .paths import REPO_ROOT
from .version import __version__

# The rest (progress bars, runs, torch) is imported by the commands that need it: `geonb --version`
# answers at once.

# Modules that add their own subcommands through ``add_cli(subparsers)``.
COMMAND_MODULES = ("geonb.filling", "geonb.predict", "geonb.generate", "geonb.doctor", "geonb.datasets", "geonb.modelfile")


def parse_value(text: str):
    """'3' → 3, '[1, 2]' → [1, 2], 'True' → True, anything else stays a string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def run_notebooks(run_dir, quick: bool = False, params: dict | None = None, notebooks=None,
                  notebook_dir=None) -> list[Path]:
    """Execute the numbered notebooks (default all six) with papermill into ``<run_dir>/notebooks/``."""
    from .workflow import NOTEBOOKS, Run

    notebooks = NOTEBOOKS if notebooks is None else notebooks
    params = {name: from_here(value) for name, value in (params or {}).items()}
    quick = bool(quick or params.pop("quick", False))  # --quick or -p quick True
    run_dir = Path(run_dir).resolve()
    run = Run(run_dir, quick=quick, **params)  # names, owners and types checked before any notebook runs
    with run.hold():  # one run at a time in a run dir, for all six notebooks
        return _run_notebooks(run_dir, quick, params, notebooks, Path(notebook_dir or REPO_ROOT / "notebooks"))


def _run_notebooks(run_dir: Path, quick: bool, params: dict, notebooks, notebook_dir: Path) -> list[Path]:
    import logging

    import papermill

    from . import progress

    # a task's parameters are not all in the short parameters cell; Run checks every one of them
    logging.getLogger("papermill").addFilter(lambda record: "unknown parameter" not in record.getMessage())

    out_dir = run_dir / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    written, seconds, start = [], [], time.perf_counter()
    for k, name in enumerate(notebooks, 1):
        source = notebook_dir / f"{name}.ipynb"
        if not source.exists():
            raise GeonbError(f"notebook {source} not found; run from a geonb checkout (notebooks/ beside geonb/).")
        target = out_dir / f"{name}.ipynb"
        progress.say(f"[geonb run] {k}/{len(notebooks)} {name} → {target}")
        t0 = time.perf_counter()
        try:
            papermill.execute_notebook(str(source), str(target), cwd=str(REPO_ROOT), progress_bar=False,
                                       parameters={**params, "run_dir": str(run_dir), "quick": quick})
        except papermill.PapermillExecutionError as exc:  # the cell's error in one line; the notebook shows the rest
            error = " ".join(str(exc.evalue).split())
            raise GeonbError(f"{name} failed in cell [{exc.exec_count}]: {exc.ename}: {error} — the executed notebook "
                             f"with the full error: {target}") from None
        seconds.append(time.perf_counter() - t0)
        left = len(notebooks) - k
        # the training notebook dominates; the others take about as long as each other
        pace = statistics.median([s for n, s in zip(notebooks, seconds) if "train" not in n] or seconds)
        progress.say(f"[geonb run] {k}/{len(notebooks)} {name} done in {progress.duration(seconds[-1])} · elapsed "
                     f"{progress.duration(time.perf_counter() - start)}"
                     + (f" · about {progress.duration(pace * left)} left" if left else ""))
        written.append(target)
    return written


def _cmd_run(args) -> int:
    params = {name: parse_value(value) for name, value in args.param}
    written = run_notebooks(args.run_dir, args.quick, params)
    print(f"[geonb run] done: {len(written)} notebooks and their figures under {Path(args.run_dir).resolve()}")
    return 0


def _cmd_archs(args) -> int:
    from .registry import list_archs

    archs = list_archs()
    width, task_width, method_width = (max(len(getattr(a, k)) for a in archs) for k in ("name", "task", "method"))
    for arch in archs:
        print(f"{arch.name:<{width}} {arch.task:<{task_width}} {arch.method:<{method_width}} {arch.description}")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line, like geonb's own: the usage is one ``--help`` away."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (`{self.prog} --help` lists the options)\n")


def build_parser(argv=()) -> argparse.ArgumentParser:
    """The parser; ``geonb train``'s flags are those of the task of the ``--arch`` in ``argv``."""
    from . import frontdoor

    parser = _Parser(prog="geonb", description="Deep learning on gridded earth data.")
    parser.add_argument("--version", action="version", version=f"geonb {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="the main job: execute notebooks 01→06 with papermill")
    run.add_argument("--quick", action="store_true", help="tiny data and few epochs (seconds on a CPU)")
    run.add_argument("--run-dir", default="runs/default", help="where executed notebooks and figures go")
    run.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                     help="a notebook parameter, e.g. -p arch ctxgan -p epochs 20")
    run.set_defaults(func=_cmd_run)
    archs = sub.add_parser("archs", help="list the architectures with their task")
    archs.set_defaults(func=_cmd_archs)
    frontdoor.add_cli(sub, argv)
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_cli(sub)
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    for command in sub.choices.values():  # also after the command; SUPPRESS keeps a --debug given before it
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="show the full traceback of an error")
    return parser


def parse(argv) -> argparse.Namespace:
    """``argv`` parsed by the parser built for it (``geonb train``'s flags follow its ``--arch``)."""
    argv = [str(a) for a in argv]
    return build_parser(argv).parse_args(argv)


def _terminated(signum, frame):
    raise SystemExit(128 + signum)  # unwinds like an exception: temp files and locks are released


def main(argv=None) -> int:
    """Run a command: a ``GeonbError`` is one line (exit 2), any other error one line and the file with
    its traceback (exit 1); ``--debug`` shows the traceback instead."""
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    if argv == ["--version"]:  # before the parser, which imports every command (and torch)
        print(f"geonb {__version__}")
        return 0
    try:
        args = parse(argv)
    except SystemExit as exc:  # argparse has printed its one-line error (or --help): return its status
        return exc.code
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _terminated)
    try:
        return args.func(args)
    except GeonbError as exc:
        if args.debug:
            raise
        print(f"geonb: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # its reader stopped early (`geonb params A | head`): nothing more to say
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("geonb: interrupted; outputs are written atomically, so none is half-written.", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        why = no_room(exc)
        if why:  # a write outside outputs.atomic_path, which says more
            print(f"geonb: error: {why} ({exc}); free some space, raise the limit or give paths on another disk.",
                  file=sys.stderr)
            return 2
        log = Path(tempfile.gettempdir()) / f"geonb-traceback-{time.strftime('%Y%m%d-%H%M%S')}-{id(exc):x}.txt"
        log.write_text(traceback.format_exc())
        first = str(exc).splitlines()[0] if str(exc) else ""
        print(f"geonb: unexpected error: {type(exc).__name__}: {first} (a bug in geonb or an input it does not "
              f"check; full traceback in {log}; rerun with --debug to see it)", file=sys.stderr)
        return 1
