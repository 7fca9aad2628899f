"""Networks only, one file per family; importing this package imports every module in it, so a
new file registers its networks in ``NETWORKS`` with no line here. ``base.GeonbNet`` is the
contract they keep."""
from ..registry import import_submodules

import_submodules(__name__)
