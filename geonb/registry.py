"""Names users type, and what they stand for: networks, training methods, losses and architectures.

Four registries of one kind (as BasicSR keeps networks and models apart):

- ``NETWORKS`` (filled by ``geonb/models``): a builder with explicit arguments; an
  unknown or mistyped argument is an error, never dropped.
- ``METHODS`` (filled by ``geonb/methods``): training recipes (``masked``, ``regression``,
  ``stagewise``, ``paired_gan``, ``gaussian_nll``, ``acgan``).
- ``LOSSES`` (filled by ``geonb/losses.py``): pixel, content and adversarial losses by the
  names methods and archs give (``loss``, ``content``, ``adversarial``).
- ``ARCHS`` (``geonb/archs.py``): what a user picks with ``arch``: its task, its networks by
  role (generator, discriminator) and its method with the method's settings.

The arch name is looked up here and nowhere else: code asks the arch for its task,
networks and method instead of testing the name.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil
from dataclasses import dataclass, field
from typing import Callable

from .errors import GeonbError


class Registry:
    """Name → object, filled by decorators when the package that holds them is imported."""

    def __init__(self, kind: str, package: str, hint: str):
        self.kind, self.package, self.hint = kind, package, hint
        self._items: dict[str, object] = {}

    def add(self, name: str, item):
        if name in self._items:
            raise RuntimeError(f"{self.kind} {name!r} registered twice")
        self._items[name] = item
        return item

    def register(self, name: str):
        """Decorator: ``@NETWORKS.register("unet")`` on a class or builder."""
        return lambda item: self.add(name, item)

    def _load(self):
        importlib.import_module(self.package)

    def names(self) -> list[str]:
        self._load()
        return sorted(self._items)

    def get(self, name: str):
        self._load()
        try:
            return self._items[name]
        except KeyError:
            raise GeonbError(f"unknown {self.kind} {name!r}; valid names: {', '.join(sorted(self._items))}. "
                             f"{self.hint}") from None

    def build(self, name: str, **args):
        """Call the registered builder with ``args``, each checked against its signature first."""
        builder = self.get(name)
        check_arguments(builder, args, f"{self.kind} {name!r}")
        return builder(**args)


def import_submodules(package: str) -> None:
    """Import every module of ``package`` (its ``__init__`` calls this): a new file in ``geonb/models``
    or ``geonb/methods`` registers what it holds with no import line to add."""
    for module in pkgutil.iter_modules(importlib.import_module(package).__path__):
        importlib.import_module(f"{package}.{module.name}")


def check_arguments(func: Callable, args: dict, what: str) -> None:
    """Refuse arguments ``func`` does not take (no silent ``**_``) and missing required ones, naming them."""
    params = inspect.signature(func).parameters
    valid = [p for p, v in params.items() if v.kind in (v.POSITIONAL_OR_KEYWORD, v.KEYWORD_ONLY) and p != "self"]
    unknown = sorted(set(args) - set(valid))
    if unknown:
        raise GeonbError(f"{what} takes no argument(s) {unknown}; it takes: {', '.join(valid) or 'none'}.")
    missing = [p for p in valid if params[p].default is params[p].empty and p not in args]
    if missing:
        raise GeonbError(f"{what} needs argument(s) {missing}; it takes: {', '.join(valid)}.")


MAX_PARAMETERS = 250_000_000  # 1 GB of float32 weights: far above any geonb network, far below a mistyped size
NETWORKS = Registry("network", "geonb.models", "Networks live in geonb/models/.")
METHODS = Registry("method", "geonb.methods", "Training methods live in geonb/methods/.")
LOSSES = Registry("loss", "geonb.losses", "Losses live in geonb/losses.py.")
ARCHS = Registry("arch", "geonb.archs", "(`geonb archs` describes them.)")


@dataclass(frozen=True)
class Arch:
    """An architecture as users name it: task, networks by role, method and its settings."""

    name: str
    task: str
    method: str
    networks: dict[str, str]
    description: str
    lr: float = 1e-3                       # the learning rate the source work used
    method_args: dict = field(default_factory=dict)

    def build(self, role: str = "generator", **args):
        """Build the network in ``role`` (generator, discriminator) with explicit arguments, after
        counting its parameters on torch's ``meta`` device (no memory): a width or block count that
        would fill the memory is refused before anything is allocated."""
        import torch

        with torch.device("meta"):
            size = sum(p.numel() for p in NETWORKS.build(self.networks[role], **args).parameters())
        if size > MAX_PARAMETERS:
            raise GeonbError(f"the {self.name} {role} with {args} has {size:,} parameters ({size * 4 / 1e9:.1f} GB), "
                             f"more than the {MAX_PARAMETERS:,} geonb allows; use fewer blocks or feature maps.")
        return NETWORKS.build(self.networks[role], **args)

    @property
    def data_parallel(self) -> bool:
        """Whether its method can train data-parallel (``Method.data_parallel``)."""
        return METHODS.get(self.method).data_parallel

    def accepts(self, role: str, settings: dict) -> dict:
        """The task-level ``settings`` (e.g. srgan's ``n_blocks``) that the network in ``role`` takes."""
        takes = inspect.signature(NETWORKS.get(self.networks[role])).parameters
        return {k: v for k, v in settings.items() if k in takes}


def get_arch(name: str) -> Arch:
    return ARCHS.get(name)


def list_archs() -> list[Arch]:
    return sorted((ARCHS.get(n) for n in ARCHS.names()), key=lambda a: (a.task, a.name))
