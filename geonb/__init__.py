"""geonb: deep learning on gridded earth data, notebook first.

``Run`` ties a run directory to parameters and dispatches the six notebook steps;
``load_field`` opens data; ``list_archs`` lists the registered architectures; ``da.geonb.fill``,
``.downscale`` and ``.segment`` apply the tasks to xarray objects.
"""
import importlib

from . import accessor  # noqa: F401  (registers the ``da.geonb`` xarray accessor)
from .data import load_field, synthetic_sst
from .errors import GeonbError
from .fill import fill  # geonb.fill(dataarray); `from geonb.fill import …` still reaches the module
from .registry import get_arch, list_archs
from .version import __version__
from .workflow import Run

# Widgets load plotting stacks (matplotlib, HoloViews): imported on first use so the
# command line (`geonb fill` with a saved model) starts fast.
_LAZY = {"draw_mask": "draw", "explore": "interactive"}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'geonb' has no attribute {name!r}")

__all__ = ["GeonbError", "Run", "draw_mask", "explore", "fill", "get_arch", "list_archs", "load_field", "synthetic_sst"]
