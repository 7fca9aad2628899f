"""Model families; importing this package registers every architecture."""
from . import unet  # noqa: F401
