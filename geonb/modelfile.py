"""One model file for every task: what was trained, how to rebuild it, how to normalise, the weights.

Written with plain tensors, numbers, strings, lists and dicts only, so it loads with
``torch.load(weights_only=True)``; everything is checked before a network is built.

=============  ==============================================================
``format``     ``geonb-model/2``
``task``       inpaint, downscale, clouds, generate, translate, segment
``arch``       the registered arch (``geonb archs``); its networks and method
``arch_args``  the generator's build arguments, exactly (checked against the builder)
``method_args``  what the method needs to predict (``residual``, ``average``…)
``inputs``     what the task needs to make the network's input (variable, prefill,
               conditioning grids, window…)
``norms``      name → [mean, std] (``geonb.normalise.Normaliser``)
``weights``    list of generator state dicts: one, or the snapshots to average
``info``       history, what it was trained on, seconds, σ scale…; ``effective_halo`` and
               ``halo_tol`` where measured (``predict.Predictor.effective_halo``)
=============  ==============================================================

``inputs["units"]`` (name → units string, optional) and ``norms`` say what data the model knows:
``TrainedModel.check_input`` refuses an input in other units, or one whose values lie far outside
the training data's (kelvin for a degC model, km for metres, a field ×1e27), before any prediction.
"""
from __future__ import annotations

import datetime
import math
import re
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import commands, progress
from .checkpoints import load_checkpoint, save_checkpoint
from .cloudinputs import CloudInputs
from .errors import GeonbError
from .methods.base import AVERAGING
from .normalise import Normaliser
from .registry import check_arguments, get_arch, METHODS, NETWORKS
from .units import canonical_units
from .version import __version__

FORMAT = "geonb-model/2"
# The models geonb ships (``benchmarks/train_models.py``), by name: ``<name>.pt`` (``geonb models``).
SHIPPED_DIR = Path(__file__).parent / "data" / "models"
KEYS = ("format", "task", "arch", "arch_args", "method_args", "inputs", "norms", "weights", "info")
# Files of geonb 0.1 (before one format), recognised by their keys, so the error can say what they are.
OLD_FORMATS = {
    "a geonb 0.1 inpainting model": {"arch", "in_channels", "weights", "norm_mean", "prefill"},
    "a geonb 0.1 cloud-filling model": {"arch", "params", "norm", "states"},
    "a geonb 0.1 downscaling model": {"format", "factor", "cond_res", "state"},
}
# What each task reads from a model file besides the weights: normalisers, and ``inputs`` entries with their type.
NEEDS = {
    "inpaint": ({"field"}, {"variable": str, "prefill": str}),
    "downscale": ({"target"}, {"variable": str, "cond": list}),
    "clouds": ({"field", "lat", "lon"}, {"window": int}),
    "generate": ({"image"}, {"latent": int}),
    "translate": ({"photo", "map"}, {}),
    "segment": ({"photo"}, {}),
}
MAX_SNAPSHOTS = 100
MAX_FACTOR = 16  # the largest scale factor geonb trains (`-p factor`); a crafted 4096 asks for terabytes of output
# A normaliser's std and mean: float32 keeps 7 digits, so a std below |mean|·1e-6 leaves the
# normalised field as noise, and one near 0 or 1e300 turns every output into inf or 0.
NORM_RANGE, NORM_DIGITS = 1e15, 1e-6
# An input whose median lies this many training stds from the training mean (or whose spread is this many
# times wider) is other units or another variable, not another region: kelvin for a degC model is
# 25 stds away on global SST, 100 on one sea; a new region of the same variable is a few.
FAR = 20.0
# Spellings of the units geonb's data comes in (CF and UDUNITS), so "degree Celsius" matches "degC".
def _number(value, lo: float, hi: float) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and lo <= value <= hi


def _count(most: int):
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= most


# The numbers and names a task reads from ``method_args`` / ``inputs`` (beyond ``NEEDS``'s types),
# with the range each must lie in: a crafted value passes a type check and then divides by ~0
# (σ scale 0), flips σ's sign, or asks for terabytes.
RANGES = {
    ("method_args", "sigma_scale"): (lambda v: _number(v, 1e-6, 1e6), "a finite number from 1e-6 to 1e6"),
    ("method_args", "temperature"): (lambda v: _number(v, 0.01, 100.0), "a finite number from 0.01 to 100"),
    ("method_args", "prior_alpha"): (lambda v: _number(v, 0.0, 1.0), "a finite number from 0 to 1"),
    ("method_args", "class_weights"): (lambda v: isinstance(v, list) and 1 <= len(v) <= 256 and all(
        _number(w, 0.0, 1e6) for w in v), "a list of 1 to 256 finite numbers from 0 to 1e6"),
    ("method_args", "tta"): (lambda v: isinstance(v, bool), "true or false"),
    ("method_args", "average"): (lambda v: v in AVERAGING, " or ".join(map(repr, AVERAGING))),
    ("method_args", "residual"): (lambda v: isinstance(v, bool), "true or false"),
    ("inputs", "window"): (lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 31,
                           "an int from 0 to 31 days"),
    ("inputs", "latent"): (_count(4096), "an int from 1 to 4096"),
    ("inputs", "patch"): (_count(8192), "an int from 1 to 8192 px"),
    ("inputs", "valid_above"): (lambda v: v is None or _number(v, -1e30, 1e30), "none or a finite number"),
    ("inputs", "classes"): (lambda v: isinstance(v, (list, dict)) and 1 <= len(v) <= 256,
                            "a list (or name → colour dict) of 1 to 256 classes"),
    ("inputs", "units"): (lambda v: isinstance(v, dict) and len(v) <= 64 and all(
        isinstance(k, str) and isinstance(u, str) and len(u) <= 256 for k, u in v.items()),
        "a dict of normaliser name → units string"),
    # the predictor's halo, measured when the model was saved: at most the network's receptive field (checked
    # against the network below), and the tolerance it was measured for (a fraction of the output's scale)
    ("info", "effective_halo"): (lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 65_536,
                                 "an int from 0 to the network's receptive-field radius"),
    ("info", "halo_tol"): (lambda v: _number(v, 1e-9, 1.0), "a finite number from 1e-9 to 1"),
}


def _argument_problem(builder, args: dict) -> str | None:
    """A network argument of the wrong type for the builder's annotation (a string where an int belongs
    builds fine and fails deep in a prediction): ints and tuple items ≥ 1, floats finite."""
    count = _count(math.inf)
    hints = typing.get_type_hints(builder.__init__ if isinstance(builder, type) else builder)
    for name, value in args.items():
        kind = hints.get(name)
        ok = {int: count, float: lambda v: _number(v, -math.inf, math.inf),
              tuple: lambda v: isinstance(v, (list, tuple)) and all(map(count, v))}.get(kind, lambda v: True)(value)
        if not ok:
            return f"network argument {name}={value!r} is not a {'positive int' if kind is int else kind.__name__}" + (
                " of positive ints" if kind is tuple else "")
    return None


def _check_consistent(saved: dict, refuse) -> None:
    """What ``inputs`` says must agree with the network: as many class names as class outputs (else a map
    is written with the wrong names), as many class weights as classes when the calibration divides them out,
    and a clouds window whose channels the network takes."""
    classes, n = saved["inputs"].get("classes"), saved["arch_args"].get("n_classes")
    if classes is not None and n is not None and len(classes) != n:
        refuse(f"inputs['classes'] names {len(classes)} classes, its network predicts {n}")
    weights = saved["method_args"].get("class_weights")
    if saved["method_args"].get("prior_alpha") and (weights is None or (n is not None and len(weights) != n)):
        refuse(f"method_args['prior_alpha'] divides out class weights, but the file has "
               f"{'none' if weights is None else len(weights)} for its network's {n} classes")
    if saved["task"] == "clouds" and "in_channels" in saved["arch_args"]:
        window = saved["inputs"]["window"]
        even = window > 0 and window % 2 == 0  # 0: the single-day unet; else t−k … t+k
        if even or CloudInputs.channels(window) != saved["arch_args"]["in_channels"]:
            refuse(f"inputs['window'] = {window} days does not fit its network's {saved['arch_args']['in_channels']} "
                   "input channels (an odd window, t−k … t+k)")


def _check_halo(info: dict, net, refuse) -> None:
    """A stored effective halo lies within the network's receptive field, on its pooling grid, with its tolerance:
    a larger one asks for needless work (or, crafted, for terabytes), one off the grid breaks the tiles."""
    halo, tol = info.get("effective_halo"), info.get("halo_tol")
    if (halo is None) != (tol is None):
        refuse("info holds one of 'effective_halo' and 'halo_tol' without the other")
    if halo is not None and (halo > int(net.halo) or halo % int(net.multiple)):
        refuse(f"info['effective_halo'] is {halo}; it must be an int from 0 to {int(net.halo)} (the network's "
               f"receptive-field radius), a multiple of {int(net.multiple)}")


def shipped() -> dict[str, Path]:
    """The shipped model files by name."""
    return {p.stem: p for p in sorted(SHIPPED_DIR.glob("*.pt"))}


def resolve(name_or_path) -> Path:
    """A model file: an existing path as given (it wins over a shipped name), else the shipped model of that name."""
    path = Path(name_or_path).expanduser()
    if path.exists():
        return path
    names = shipped()
    if str(name_or_path) in names:
        return names[str(name_or_path)]
    raise GeonbError(f"{name_or_path}: no such model file, and no shipped model of that name; give a model file (.pt) "
                     f"or a shipped name: {', '.join(names) or 'none installed'} (`geonb models`).")


@dataclass
class TrainedModel:
    task: str
    arch: str
    arch_args: dict
    weights: list
    norms: dict[str, Normaliser]
    method_args: dict = field(default_factory=dict)
    inputs: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    @property
    def method(self) -> str:
        return get_arch(self.arch).method

    def network(self, state: dict | None = None):
        """The generator built from ``arch_args`` with ``state`` (default: the last weights), in eval mode."""
        net = get_arch(self.arch).build("generator", **self.arch_args)
        net.load_state_dict(self.weights[-1] if state is None else state)
        return net.eval()

    def check_input(self, name: str, values, units=None, what: str = "the input") -> None:
        """Refuse ``values`` (numpy or dask) for normaliser ``name`` in units other than the training data's
        (when both are known), or lying ``FAR`` beyond its values (the median and the 16–84 % spread against the
        training mean and std): a model answers such data with confident nonsense (a degC model fills a kelvin
        cube with 15 °C)."""
        known = self.inputs.get("units", {}).get(name)
        if units and known and canonical_units(units) != canonical_units(known):
            raise GeonbError(f"{what} is in {units!r}; this {self.arch} model was trained on data in {known!r}. "
                             f"Convert it to {known!r} first, or train a model on data in {units!r}.")
        import dask

        # robust statistics of up to ~500×500 cells per step: a few allowed outliers (1e30) do not move them
        step = tuple(slice(None, None, max(1, n // 500)) for n in values.shape[-2:])
        sample = np.asarray(dask.compute(values[(..., *step)])[0], "float64")
        finite = sample[np.isfinite(sample)]
        if not finite.size:
            return
        norm = self.norms[name]
        median, low, high = np.percentile(finite, [50, 16, 84])
        spread = (high - low) / 2  # a normal distribution's std
        if abs(median - norm.mean) > FAR * norm.std or spread > FAR * norm.std:
            trained = f" {known}" if known else ""
            raise GeonbError(f"the values of {what} (median {median:.4g}, spread {spread:.4g}) lie far outside what "
                             f"this {self.arch} model was trained on (mean {norm.mean:.4g}, std {norm.std:.4g}{trained}): "
                             "other units or another variable. Convert them to the model's units, or train a model on them.")

    def save(self, path) -> Path:
        """Write the model file; ``info`` gets the geonb and torch versions and the date (the model card)."""
        self.info.update({"geonb": __version__, "torch": str(torch.__version__),  # TorchVersion is not weights_only
                          "saved": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")})
        record = {**asdict(self), "format": FORMAT, "norms": {k: [n.mean, n.std] for k, n in self.norms.items()}}
        return save_checkpoint(path, {k: record[k] for k in KEYS})

    def card(self) -> list[tuple[str, str]]:
        """What a user needs to judge a model file without Python: task, arch, network size, training data,
        units, the validation scores of its training (best epoch), versions and date (``geonb info``)."""
        from .tasks import get_task

        arch = get_arch(self.arch)
        size = sum(t.numel() for t in self.weights[-1].values() if t.is_floating_point())
        history = [h for h in self.info.get("history", []) if isinstance(h, dict)]
        rows = [("task", f"{self.task}: {get_task(self.task).description}"),
                ("arch", f"{self.arch}: {arch.description}"),
                ("network", f"{size:,} parameters; {self.arch_args}"
                            + (f"; {len(self.weights)} weight snapshots averaged" if len(self.weights) > 1 else "")),
                ("trained on", str(self.info.get("trained_on", "not recorded")))]
        units = {k: u for k, u in self.inputs.get("units", {}).items() if u}
        if units:
            rows.append(("units", ", ".join(f"{k} in {u}" for k, u in units.items())))
        scored = [h for h in history if isinstance(h.get("val_loss"), (int, float))]
        if scored:
            best = min(scored, key=lambda h: h["val_loss"])
            values = ", ".join(f"{k} {v:.4g}" for k, v in best.items() if k.startswith("val") and isinstance(v, float))
            rows.append(("validation", f"best at epoch {best.get('epoch', '?')} of {len(history)}: {values} "
                                       f"({METHODS.get(arch.method).loss_name}, normalised units)"))
        held = self.info.get("held_out")
        if isinstance(held, dict) and {"rmse", "rmse_biharmonic", "points"} <= set(held):
            unit = self.inputs.get("units", {}).get("field", "")
            rows.append(("held-out", f"RMSE {held['rmse']:.3g} {unit} on {held['points']} observed pixels never trained "
                                     f"on; biharmonic per day on them {held['rmse_biharmonic']:.3g} {unit}"))
        rows += self._shipped_rows()
        if "effective_halo" in self.info:
            with torch.device("meta"):  # the receptive field: nothing allocated
                field_radius = int(arch.build("generator", **self.arch_args).halo)
            rows.append(("halo", f"{self.info['effective_halo']} input cells of context per tile (measured: tiles equal one "
                                 f"pass within {self.info['halo_tol']:g} of the output's scale); receptive field "
                                 f"{field_radius}"))
        if "train_seconds" in self.info:
            rows.append(("training time", f"{self.info['train_seconds']:.0f} s"))
        if arch.method == "gaussian_nll" or self.arch_args.get("sigma"):  # dincae; downscaling trained with sigma
            rows.append(("σ scale", f"{self.method_args['sigma_scale']:.3g} (fitted on validation points)"))
        if "temperature" in self.method_args:
            rows.append(("temperature", f"{self.method_args['temperature']:.3g} (class probabilities; fitted on "
                                        "validation pixels)"))
        if self.method_args.get("prior_alpha"):
            rows.append(("class prior", f"divided out: p / w^{self.method_args['prior_alpha']:.3g}, w the class weights "
                                        "(chosen on validation pixels)"))
        versions = ", ".join(f"{k} {self.info[k]}" for k in ("geonb", "torch") if k in self.info)
        rows.append(("saved", f"{self.info.get('saved', 'date not recorded')}"
                              f"{f' by {versions}' if versions else ' (before geonb kept versions)'}"))
        return rows

    def _shipped_rows(self) -> list[tuple[str, str]]:
        """The card of a model trained by ``benchmarks/train_models.py``: its held-out scores beside the task's
        baselines (its 04 table), how it was trained, and the licence of the data it learned from."""
        shipped = self.info.get("shipped")
        if not isinstance(shipped, dict) or not isinstance(shipped.get("scores"), dict):
            return []
        scores = ", ".join(f"{label} {value:.4g}" for label, value in shipped["scores"].items())
        return [("held-out scores", f"{shipped.get('metric', '')}: {scores}"),
                ("trained by", f"benchmarks/train_models.py: {shipped.get('command', '?')} ({shipped.get('budget', '')})"),
                ("data licence", str(shipped.get("licence", "not recorded")))]

    @classmethod
    def load(cls, path, task: str | None = None) -> "TrainedModel":
        """Read and check a model file (``weights_only``); ``task``: refuse a model of another task.

        Every field is checked for its type and range, and the network is first built on torch's
        ``meta`` device (no memory) to cap its size and to match the weights' names and shapes, so a
        damaged or crafted file is a GeonbError ("not a geonb model file: <reason>") before anything is
        allocated."""
        path = resolve(path)
        saved = load_checkpoint(path)
        newer = isinstance(saved, dict) and re.fullmatch(r"geonb-model/(\d+)", str(saved.get("format")))
        if newer and int(newer[1]) > int(FORMAT.split("/")[1]):
            raise GeonbError(f"{path} was written by a newer geonb (format {saved['format']!r}; this geonb "
                             f"{__version__} reads {FORMAT!r}): upgrade geonb (pip install -U geonb) to read it.")
        if not isinstance(saved, dict) or saved.get("format") != FORMAT:
            keys = set(saved) if isinstance(saved, dict) else set()
            what = next((name for name, need in OLD_FORMATS.items() if need <= keys), "not a geonb model file")
            raise GeonbError(f"{path} is {what} (format {saved.get('format') if keys else None!r}, need {FORMAT!r}); "
                             "retrain it with this geonb (notebook 03, `geonb train` or `geonb fill --save-model`).")

        def refuse(reason: str):
            raise GeonbError(f"{path} is not a geonb model file: {reason}. Retrain it (or give the file geonb wrote).")

        missing = [k for k in KEYS if k not in saved]
        if missing:
            refuse(f"no {missing}")
        for key, kind in (("task", str), ("arch", str), ("arch_args", dict), ("method_args", dict), ("inputs", dict),
                          ("norms", dict), ("weights", list), ("info", dict)):
            if not isinstance(saved[key], kind):
                refuse(f"{key} is a {type(saved[key]).__name__}, not a {kind.__name__}")
        if saved["task"] not in NEEDS:
            refuse(f"unknown task {saved['task']!r}")
        try:
            arch = get_arch(saved["arch"])  # the task in the file is where it was trained (clouds also trains a unet)
        except GeonbError as exc:
            refuse(str(exc))
        if task is not None and saved["task"] != task:
            raise GeonbError(f"{path} is a {saved['task']} model ({saved['arch']}); this needs a {task} model.")
        builder = NETWORKS.get(arch.networks["generator"])
        check_arguments(builder, saved["arch_args"], f"the network of {path}")
        problem = _argument_problem(builder, saved["arch_args"])
        if problem:
            refuse(problem)
        if saved["arch_args"].get("factor", 1) > MAX_FACTOR:
            refuse(f"its scale factor {saved['arch_args']['factor']} is above the {MAX_FACTOR} geonb trains "
                   f"(each input cell would become {saved['arch_args']['factor'] ** 2:,} output cells)")
        norm_names, input_types = NEEDS[saved["task"]]
        norms = {}
        for name, pair in saved["norms"].items():
            ok = isinstance(pair, (list, tuple)) and len(pair) == 2 and _number(pair[0], -NORM_RANGE, NORM_RANGE) \
                and _number(pair[1], max(1 / NORM_RANGE, abs(pair[0]) * NORM_DIGITS), NORM_RANGE)
            if not ok:
                refuse(f"normalisation {name!r} is {pair!r}; it needs a mean within ±{NORM_RANGE:g} and a std "
                       f"from max({1 / NORM_RANGE:g}, |mean|·{NORM_DIGITS:g}) to {NORM_RANGE:g}")
            norms[name] = Normaliser(float(pair[0]), float(pair[1]))
        if saved["task"] != arch.task and not (saved["task"] == "clouds" and arch.task == "inpaint"):
            refuse(f"it calls a {saved['arch']} network (a {arch.task} arch) a {saved['task']} model")
        lacking = sorted(norm_names - set(norms))
        if lacking:
            refuse(f"no normalisation {lacking}")
        for name, kind in input_types.items():
            if not isinstance(saved["inputs"].get(name), kind) or isinstance(saved["inputs"].get(name), bool):
                refuse(f"inputs[{name!r}] is {saved['inputs'].get(name)!r}, not a {kind.__name__}")
        for (part, name), (ok, want) in RANGES.items():
            if name in saved[part] and not ok(saved[part][name]):
                refuse(f"{part}[{name!r}] is {saved[part][name]!r}; it must be {want}")
        _check_consistent(saved, refuse)
        weights = saved["weights"]
        if not weights or len(weights) > MAX_SNAPSHOTS or not all(
                isinstance(w, dict) and all(isinstance(t, torch.Tensor) and t.layout == torch.strided for t in w.values())
                for w in weights):
            refuse(f"weights must be 1 to {MAX_SNAPSHOTS} state dicts of dense tensors")
        try:
            with torch.device("meta"):  # shapes only: nothing is allocated
                net = arch.build("generator", **saved["arch_args"])
                shapes = net.state_dict()
        except GeonbError as exc:  # too many parameters (``Arch.build``)
            refuse(str(exc).rstrip("."))
        except Exception as exc:  # a string where a number belongs, a negative width…
            refuse(f"its network arguments {saved['arch_args']} do not build a {saved['arch']} network "
                   f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})")
        _check_halo(saved["info"], net, refuse)
        for k, state in enumerate(weights):
            wrong = sorted(set(state) ^ set(shapes)) or [n for n in shapes if state[n].shape != shapes[n].shape]
            if wrong:
                refuse(f"weights {k} do not fit a {saved['arch']} network with {saved['arch_args']} (e.g. {wrong[:3]})")
            if not all(torch.isfinite(t).all() for t in state.values() if t.is_floating_point()):
                refuse(f"weights {k} hold NaN or infinite values")
        return cls(saved["task"], saved["arch"], saved["arch_args"], weights, norms, saved["method_args"],
                   saved["inputs"], saved["info"])


def _cmd_info(args) -> int:
    for k, path in enumerate(args.models):
        model = TrainedModel.load(path)
        print(("\n" if k else "") + str(path))
        progress.print_rows(model.card(), indent="  ")
    return 0


def add_cli(subparsers) -> None:
    p = commands.add(subparsers, "info")
    p.add_argument("models", nargs="+", help="model files (.pt) written by geonb, or shipped names (`geonb models`)")
    p.set_defaults(func=_cmd_info)
