"""Model families; importing this package registers every architecture."""
from . import unet  # noqa: F401
from . import dincae  # noqa: F401
from . import srcnn, esrgan  # noqa: F401
