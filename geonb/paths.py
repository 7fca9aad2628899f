"""Where things live: package data, cartopy's data, offline Natural Earth coastlines."""
from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def cartopy_data(*parts) -> Path:
    """A file in cartopy's own package data (ships with ``pip install cartopy``)."""
    import cartopy

    return Path(cartopy.__file__).parent.joinpath("data", *parts)


def natural_earth_dir() -> Path:
    """The Natural Earth coastlines shipped inside geonb, laid out as cartopy expects them."""
    return Path(__file__).resolve().parent / "data" / "naturalearth"


def use_offline_cartopy() -> None:
    """Point cartopy at geonb's own Natural Earth files (110 m and 50 m coastlines): no downloads."""
    import cartopy

    cartopy.config["pre_existing_data_dir"] = str(natural_earth_dir())
