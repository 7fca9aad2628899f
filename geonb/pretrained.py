"""The models geonb ships (``geonb/data/models/``, trained by ``benchmarks/train_models.py``): ``geonb models``
lists them, and ``-p init NAME_OR_PATH`` starts a training from one (or from any model file of the same arch
and network shape): fine-tuning on the user's data.

Names resolve in ``modelfile.resolve``, the one resolver every ``--model`` and ``model=`` goes through.
"""
from __future__ import annotations

from . import commands
from .errors import GeonbError
from .modelfile import TrainedModel, shipped


def _plain(value):
    """Tuples as lists: a model file keeps ``cond_res`` as a list, a run builds it as a tuple."""
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


def init_model(init: str, arch) -> TrainedModel:
    """The model ``-p init`` names, refused (one line, before any training) unless it is of ``arch``."""
    model = TrainedModel.load(init)
    if model.arch != arch.name:
        raise GeonbError(f"-p init {init}: it is a {model.task} model ({model.arch}); this run trains {arch.name} "
                         f"({arch.task} task). Give a {arch.name} model (`geonb models`) or drop -p init.")
    return model


def init_weights(init: str, arch, arch_args: dict) -> dict:
    """The generator weights to start from: those of ``init`` (its newest snapshot), whose network must have
    this run's ``arch_args`` (same shapes)."""
    model = init_model(init, arch)
    differ = sorted(k for k in {*model.arch_args, *arch_args} if _plain(model.arch_args.get(k)) != _plain(arch_args.get(k)))
    if differ:
        theirs = ", ".join(f"{k}={model.arch_args.get(k)!r}" for k in differ)
        ours = ", ".join(f"{k}={arch_args.get(k)!r}" for k in differ)
        raise GeonbError(f"-p init {init}: its {arch.name} network has {theirs}, this run's {ours}; set the run's "
                         "parameters to the model's (`geonb info` shows them) or drop -p init.")
    return model.weights[-1]


def _cmd_models(args) -> int:
    from . import progress

    models = shipped()
    if not models:
        print("no shipped models in this installation (benchmarks/train_models.py trains them)")
    for name, path in models.items():
        model = TrainedModel.load(path)
        card = dict(model.card())
        seconds = model.info.get("shipped", {}).get("train_seconds", model.info.get("train_seconds"))
        print(f"{name}  ({model.task} task, {model.arch}, {path.stat().st_size / 1e6:.2g} MB, trained in "
              f"{'?' if seconds is None else f'{seconds / 60:.0f} min'} on 2 shared CPU cores)")
        progress.print_rows([(k, card[k]) for k in ("trained on", "held-out scores", "data licence") if k in card],
                            indent="  ")
    return 0


def add_cli(subparsers) -> None:
    p = commands.add(subparsers, "models")
    p.set_defaults(func=_cmd_models)
