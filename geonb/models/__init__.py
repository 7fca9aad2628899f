"""Networks only, one file per family; importing this package registers them in ``NETWORKS``."""
from . import acgan, deeplab, dincae, esrgan, pix2pix, segmentation, srcnn, unet  # noqa: F401
