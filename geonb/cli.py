"""Command line: ``geonb run`` (the main job), ``geonb archs``, ``geonb --version`` and the batch commands."""
from __future__ import annotations

import argparse
import ast
import importlib
import logging
import signal
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

from . import commands
from .errors import GeonbError
from .frontdoor import from_here
from .outputs import no_room
from .params import BOOL_WORDS
from .paths import REPO_ROOT
from .version import __version__

# The rest (progress bars, runs, torch) is imported by the commands that need it: `geonb --version`
# answers at once.

# Modules that add their own subcommands through ``add_cli(subparsers)``.
COMMAND_MODULES = ("geonb.filling", "geonb.doctor", "geonb.datasets", "geonb.modelfile", "geonb.pretrained")


def parse_value(text: str):
    """'3' → 3, '[1, 2]' → [1, 2], 'True' or 'true' → True, anything else stays a string."""
    if text.lower() in BOOL_WORDS:
        return BOOL_WORDS[text.lower()]
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def run_notebooks(run_dir, quick: bool = False, params: dict | None = None, notebooks=None,
                  notebook_dir=None) -> list[Path]:
    """Execute the numbered notebooks (default all six) with papermill into ``<run_dir>/notebooks/``."""
    from .workflow import NOTEBOOKS, Run

    notebooks = NOTEBOOKS if notebooks is None else notebooks
    params = {name: from_here(name, value) for name, value in (params or {}).items()}
    quick = bool(quick or params.pop("quick", False))  # --quick or -p quick True
    run_dir = Path(run_dir).resolve()
    run = Run(run_dir, quick=quick, **params)  # names, owners and types checked before any notebook runs
    with run.hold():  # one run at a time in a run dir, for all six notebooks
        return _run_notebooks(run_dir, quick, params, notebooks, Path(notebook_dir or REPO_ROOT / "notebooks"))


def _known_elsewhere(record: logging.LogRecord) -> bool:
    """papermill's "Passed unknown parameter" warning, dropped: a task's parameters are not all in the short
    parameters cell, and Run checks every one of them."""
    return "unknown parameter" not in record.getMessage()


def _local_kernels(folder: Path):
    """A kernel manager whose kernels listen on IPC sockets in ``folder`` (a private temporary folder):
    reachable only on this machine, and ipykernel then has no unencrypted TCP port to warn about on
    every notebook."""
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    class LocalKernelManager(AsyncKernelManager):
        @default("transport")
        def _transport(self):
            return "ipc"

        @default("ip")
        def _ip(self):
            return str(folder / "kernel")

    return LocalKernelManager


def _run_notebooks(run_dir: Path, quick: bool, params: dict, notebooks, notebook_dir: Path) -> list[Path]:
    with tempfile.TemporaryDirectory(prefix="geonb-kernels-") as sockets:
        return _run_each(run_dir, quick, params, notebooks, notebook_dir, _local_kernels(Path(sockets)))


def _run_each(run_dir: Path, quick: bool, params: dict, notebooks, notebook_dir: Path, kernels) -> list[Path]:
    import papermill

    from . import progress

    logger = logging.getLogger("papermill")
    if _known_elsewhere not in logger.filters:
        logger.addFilter(_known_elsewhere)

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
                                       parameters={**params, "run_dir": str(run_dir), "quick": quick},
                                       kernel_manager_class=kernels)
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
                     + (f" · about {progress.duration(pace * left)} left" if left else "")
                     # the training is not known before it starts: 03 estimates it from its first epoch
                     + (" besides the training, which 03 estimates from its first epoch"
                        if any("train" in n for n in notebooks[k:]) else ""))
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


# ``geonb predict``'s options by the name a task's ``predict_options`` uses: a task refuses the others
OPTIONS = {"cond": "--cond", "tile": "--tile", "chunk": "--chunk", "mask_var": "--mask-var",
           "allow_outliers": "--allow-outliers", "probabilities": "--probabilities", "tta": "--tta"}


def predict_command(args) -> int:
    """``geonb predict``: apply any model file to a NetCDF/zarr file; what it does is the model's task's."""
    from .io import write_output
    from .modelfile import TrainedModel
    from .outputs import check_outputs
    from .predict import dask_scheduler
    from .tasks import get_task

    out = check_outputs({"--out": args.out},
                        [args.input, args.model, *(c.rpartition(":")[0] for c in args.cond or [])],
                        overwrite=args.overwrite)["--out"]
    model = TrainedModel.load(args.model)
    task = get_task(model.task)
    if task.predict_file is None:
        raise GeonbError(f"{args.model} is a {model.task} model; `geonb predict` does not apply it to files.")
    ignored = [flag for name, flag in OPTIONS.items() if getattr(args, name) and name not in task.predict_options]
    if ignored:
        raise GeonbError(f"{', '.join(ignored)} {'does' if len(ignored) == 1 else 'do'} not apply to a {model.task} "
                         f"model ({model.arch}); drop {'it' if len(ignored) == 1 else 'them'} "
                         f"({model.task} takes {', '.join(OPTIONS[o] for o in task.predict_options) or 'none of them'}).")
    with dask_scheduler(args.scheduler):
        ds = task.predict_file(model, args)
        write_output(ds, out, f"geonb predict --model {args.model} --input {args.input} --var {args.var}")
    print(f"wrote {out} ({model.task} model {model.arch})")
    return 0


def add_predict(subparsers) -> None:
    from .params import Param, cli_type
    from .predict import TILE

    p = commands.add(subparsers, "predict")
    p.add_argument("--model", required=True, help="a geonb model file (.pt) or a shipped model's name (`geonb models`)")
    p.add_argument("--input", required=True,
                   help="NetCDF/zarr file or embedded dataset name (image models: also JPEG/PNG/(Geo)TIFF)")
    p.add_argument("--var", default="", help="the variable to predict from")
    p.add_argument("--out", required=True, help="output file, written atomically, in the format of its extension: .nc, "
                   ".zarr, .tif (a COG GeoTIFF with the CRS, for a 2-D result that has one), or for image models .png/.jpg")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument("--cond", nargs="*", metavar="FILE:VAR[@r]", help="downscaling: the model's conditioning grids")
    p.add_argument("--tile", type=cli_type(TILE),
                   help="tile size in input cells (downscaling: low-res cells, default: as large as the free memory allows; "
                   "image models: a multiple of the network's pooling, default one pass); the halo is added and cropped")
    p.add_argument("--mask-var", help="gap filling: land/sea mask variable (1 = sea)")
    p.add_argument("--chunk", type=cli_type(Param("chunk", int, None, "chunk side in input cells", min=1, max=65_536)),
                   help="input cells per dask chunk side (downscaling: default 512; segmentation of NetCDF/zarr/GeoTIFF "
                   "inputs: px, a multiple of the network's pooling, default ~1024); memory is bounded by the chunk, "
                   "not the grid")
    p.add_argument("--scheduler", metavar="ADDRESS", help="a dask.distributed scheduler address (tcp://host:8786) to "
                   "predict on; default: this machine's threads")
    p.add_argument("--allow-outliers", action="store_true",
                   help="gridded inputs: keep values far outside the field's robust range (else refused)")
    p.add_argument("--probabilities", action="store_true",
                   help="segmentation, translation: also a band per class (its calibrated probability) and the uncertainty "
                   "(1 - max probability); .nc, .zarr, or .tif for a georeferenced input")
    p.add_argument("--tta", action="store_true",
                   help="segmentation: average the class probabilities over the 8 flips and 90° turns of the image "
                   "(8× the time; always on for a model trained with -p tta true)")
    p.set_defaults(func=predict_command)


def generate_command(args) -> int:
    """``geonb generate``: digits from a trained generate-task model (acgan) to NetCDF (``digit`` (sample, y, x),
    grey 0–255, and ``label``, the class asked for); the same model and seed give the same digits."""
    from .io import write_output
    from .modelfile import TrainedModel
    from .outputs import check_outputs
    from .tasks.generate import digits_dataset, generate_digits

    out = check_outputs({"--out": args.out}, [args.model], overwrite=args.overwrite)["--out"]
    model = TrainedModel.load(args.model, task="generate")
    images, labels = generate_digits(model.network(), args.per_class, args.seed)
    ds = digits_dataset(images, labels, {
        "title": f"digits generated by geonb {model.arch}",
        "source": f"geonb model {args.model} ({model.arch}, trained on {model.info.get('trained_on', '?')})"})
    write_output(ds, out, f"geonb generate --model {args.model} --per-class {args.per_class} --seed {args.seed}")
    print(f"wrote {out} ({len(labels)} digits, {args.per_class} per class, seed {args.seed})")
    return 0


def add_generate(subparsers) -> None:
    from .params import cli_type
    from .tasks.generate import PARAMS

    p = commands.add(subparsers, "generate")
    p.add_argument("--model", required=True, help="a geonb generate-task model file (.pt) or a shipped name "
                   "(`geonb models`: acgan_mnist)")
    p.add_argument("--per-class", type=cli_type(PARAMS["per_class"]), default=100,
                   help="digits per class")
    p.add_argument("--seed", type=cli_type(PARAMS["seed"]), default=0,
                   help="noise seed: the same seed gives the same digits")
    p.add_argument("--out", required=True, help="output NetCDF (written atomically)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.set_defaults(func=generate_command)


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line, like geonb's own: the usage is one ``--help`` away."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (`{self.prog} --help` lists the options)\n")


def _top_parser():
    parser = _Parser(prog="geonb", description="Deep learning on gridded earth data.")
    parser.add_argument("--version", action="version", version=f"geonb {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    return parser, parser.add_subparsers(dest="command", required=True)


def build_parser(argv=()) -> argparse.ArgumentParser:
    """The parser; ``geonb train``'s flags are those of the task of the ``--arch`` in ``argv``."""
    from . import frontdoor

    parser, sub = _top_parser()
    run = commands.add(sub, "run")
    run.add_argument("--quick", action="store_true", help="tiny data and few epochs (seconds on a CPU)")
    run.add_argument("--run-dir", default="runs/default", help="where executed notebooks and figures go")
    run.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                     help="a notebook parameter, e.g. -p arch ctxgan -p epochs 20")
    run.set_defaults(func=_cmd_run)
    archs = commands.add(sub, "archs")
    archs.set_defaults(func=_cmd_archs)
    frontdoor.add_cli(sub, argv)
    add_predict(sub)
    add_generate(sub)
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_cli(sub)
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
    if argv in (["-h"], ["--help"]):  # the command list needs none of the commands' modules
        parser, sub = _top_parser()
        for name in commands.COMMANDS:
            commands.add(sub, name)
        parser.print_help()
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
