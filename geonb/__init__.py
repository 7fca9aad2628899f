"""geonb: deep learning on gridded earth data, notebook first.

``Run`` ties a run directory to parameters and dispatches the six notebook steps;
``load_field`` opens data; ``list_archs`` lists the registered architectures; ``fill`` fills the
clouds of a DataArray; ``da.geonb.fill``, ``.downscale`` and ``.segment`` apply the tasks to xarray
objects.

Everything is imported on first use, so ``geonb --version`` answers without loading torch or
xarray; the ``da.geonb`` accessor is registered as soon as xarray is imported (now, if it already is).
"""
import importlib
import importlib.abc
import importlib.util
import sys

from .errors import GeonbError
from .version import __version__

# name → the module that defines it
_LAZY = {"Run": "workflow", "load_field": "data", "synthetic_sst": "data", "fill": "filling",
         "get_arch": "registry", "list_archs": "registry", "draw_mask": "draw", "explore": "interactive"}


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value  # once: later lookups skip this function
        return value
    raise AttributeError(f"module 'geonb' has no attribute {name!r}")


def _register_accessor():
    importlib.import_module(".accessor", __name__)  # registers ``da.geonb`` / ``ds.geonb``


class _ThenRegister(importlib.abc.Loader):
    """xarray's own loader, then the accessor's registration (a wrapper: the loader may serve other modules)."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        _register_accessor()

    def __getattr__(self, name):  # resources, get_data, is_package…: the loader's own
        return getattr(self.loader, name)


class _AfterXarray(importlib.abc.MetaPathFinder):
    """Registers the accessor right after xarray is first imported (xarray is not loaded before)."""

    def find_spec(self, name, path, target=None):
        if name != "xarray":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or not hasattr(spec.loader, "exec_module"):  # no xarray (ImportError as usual), or odd
            return spec
        spec.loader = _ThenRegister(spec.loader)
        return spec


if "xarray" in sys.modules:
    _register_accessor()
else:
    sys.meta_path.insert(0, _AfterXarray())

__all__ = ["GeonbError", "Run", "__version__", "draw_mask", "explore", "fill", "get_arch", "list_archs",
           "load_field", "synthetic_sst"]
