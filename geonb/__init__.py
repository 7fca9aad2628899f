"""geonb: deep learning on gridded earth data, notebook first.

``Run`` ties a run directory to parameters and dispatches the six notebook steps;
``load_field`` opens data; ``list_archs`` lists the registered architectures.
"""
from .data import load_field, synthetic_sst
from .draw import draw_mask
from .errors import GeonbError
from .fill import fill  # geonb.fill(dataarray); `from geonb.fill import …` still reaches the module
from .interactive import explore
from .registry import get_arch, list_archs
from .workflow import Run

__all__ = ["GeonbError", "Run", "draw_mask", "explore", "fill", "get_arch", "list_archs", "load_field", "synthetic_sst"]
__version__ = "0.1.0"
