"""Networks only, one file per family; importing this package registers them in ``NETWORKS``."""
from . import dincae, esrgan, srcnn, unet  # noqa: F401
