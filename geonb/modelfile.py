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
``info``       history, what it was trained on, seconds, σ scale…
=============  ==============================================================
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import GeonbError
from .io import load_checkpoint, save_checkpoint
from .normalise import Normaliser
from .registry import check_arguments, get_arch, NETWORKS

FORMAT = "geonb-model/2"
KEYS = ("format", "task", "arch", "arch_args", "method_args", "inputs", "norms", "weights", "info")
# Files of geonb 0.1 (before one format), recognised by their keys, so the error can say what they are.
OLD_FORMATS = {
    "a geonb 0.1 inpainting model": {"arch", "in_channels", "weights", "norm_mean", "prefill"},
    "a geonb 0.1 cloud-filling model": {"arch", "params", "norm", "states"},
    "a geonb 0.1 downscaling model": {"format", "factor", "cond_res", "state"},
}


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

    def save(self, path) -> Path:
        record = {**asdict(self), "format": FORMAT, "norms": {k: [n.mean, n.std] for k, n in self.norms.items()}}
        return save_checkpoint(path, {k: record[k] for k in KEYS})

    @classmethod
    def load(cls, path, task: str | None = None) -> "TrainedModel":
        """Read and check a model file (``weights_only``); ``task``: refuse a model of another task."""
        saved = load_checkpoint(path)
        if not isinstance(saved, dict) or saved.get("format") != FORMAT:
            keys = set(saved) if isinstance(saved, dict) else set()
            what = next((name for name, need in OLD_FORMATS.items() if need <= keys), "not a geonb model file")
            raise GeonbError(f"{path} is {what} (format {saved.get('format') if keys else None!r}, need {FORMAT!r}); "
                             "retrain it with this geonb (notebook 03, `geonb train` or `geonb fill --save-model`).")
        missing = [k for k in KEYS if k not in saved]
        if missing:
            raise GeonbError(f"{path} is a damaged geonb model file: no {missing}. Retrain it.")
        arch = get_arch(saved["arch"])  # the task in the file is where it was trained (clouds also trains a unet)
        if task is not None and saved["task"] != task:
            raise GeonbError(f"{path} is a {saved['task']} model ({saved['arch']}); this needs a {task} model.")
        check_arguments(NETWORKS.get(arch.networks["generator"]), saved["arch_args"], f"the network of {path}")
        if not saved["weights"] or not all(isinstance(w, dict) for w in saved["weights"]):
            raise GeonbError(f"{path} holds no weights; retrain it.")
        try:
            norms = {k: Normaliser(float(m), float(s)) for k, (m, s) in saved["norms"].items()}
        except (TypeError, ValueError, AttributeError):
            raise GeonbError(f"{path} is a damaged geonb model file (normalisation); retrain it.") from None
        model = cls(saved["task"], saved["arch"], saved["arch_args"], saved["weights"], norms, saved["method_args"],
                    saved["inputs"], saved["info"])
        try:
            model.network()  # the weights must fit the network the arguments describe
        except RuntimeError as exc:
            raise GeonbError(f"{path}: its weights do not fit a {saved['arch']} network with {saved['arch_args']} "
                             f"({str(exc).splitlines()[0]}); the file is damaged, retrain it.") from None
        return model
