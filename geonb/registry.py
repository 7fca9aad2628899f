"""Architectures by name: each model family registers its builders here."""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from .errors import GeonbError


@dataclass(frozen=True)
class Arch:
    name: str
    task: str
    description: str
    build: Callable


_ARCHS: dict[str, Arch] = {}


def register(name: str, task: str, description: str):
    """Decorator: register ``build(**params) -> nn.Module`` as architecture ``name``."""

    def decorate(build):
        if name in _ARCHS:
            raise RuntimeError(f"architecture {name!r} registered twice")
        _ARCHS[name] = Arch(name, task, description, build)
        return build

    return decorate


def _load_models():
    importlib.import_module("geonb.models")


def list_archs() -> list[Arch]:
    _load_models()
    return sorted(_ARCHS.values(), key=lambda a: (a.task, a.name))


def get_arch(name: str) -> Arch:
    _load_models()
    try:
        return _ARCHS[name]
    except KeyError:
        valid = ", ".join(sorted(_ARCHS))
        raise GeonbError(f"unknown arch {name!r}; valid names: {valid}. (`geonb archs` describes them.)") from None
