"""Image files as arrays, safely: RGB (``read_rgb``) from JPEG/PNG/TIFF of any bit depth or mode.

A declared size over ``MAX_PIXELS`` is refused before any pixel is decoded (a decompression bomb, or
an image to cut into tiles first); 16-bit and float images are scaled by the range their type holds
(``to_uint8``), never clipped; a TIFF that PIL cannot open (16-bit or float bands) is read with
rasterio. The aerial tasks' photos and label rasters are read through these (``geonb.aerial``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import GeonbError


def read_rgb(path) -> np.ndarray:
    """An image file → (H, W, 3) uint8 RGB (palette, grey, 16-bit and float images scaled: ``to_uint8``)."""
    return open_image(path, lambda im: rgb_and_alpha(im, str(path))[0])


MAX_PIXELS = 2 ** 28  # 268 Mpx (16 384²): more is a decompression bomb, or an image to cut into tiles first


def _refuse_huge(path, w: int, h: int) -> None:
    if w * h > MAX_PIXELS:
        raise GeonbError(f"{path} declares {w}×{h} px ({w * h / 1e6:,.0f} Mpx), more than the {MAX_PIXELS / 1e6:.0f} "
                         "Mpx geonb reads: a damaged or hostile file (decompression bomb), or cut it into tiles first "
                         "(e.g. gdal_translate -srcwin).")


def open_image(path, read, unknown=None):
    """``read(im)`` of the PIL image ``path``, its declared size checked first; ``unknown(path)`` reads a file
    PIL cannot identify (else a GeonbError)."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.exists():
        raise GeonbError(f"{path}: no such image file.")
    if path.is_file() and path.stat().st_size == 0:
        raise GeonbError(f"{path} is empty (0 bytes): a copy or download that did not finish? Give the image again.")
    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # checked below, with the size in the message
    try:
        with Image.open(path) as im:  # reads the header only
            _refuse_huge(path, *im.size)
            return read(im)
    except UnidentifiedImageError as exc:
        if unknown is None:
            raise GeonbError(f"{path} is not a readable image ({exc}); give a JPEG/PNG/TIFF file.") from exc
    except OSError as exc:
        raise GeonbError(f"{path} is not a readable image ({exc}); give a JPEG/PNG/TIFF file.") from exc
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    return unknown(path)


def tiff_bands(path: Path) -> tuple[np.ndarray, dict, np.ndarray]:
    """A TIFF that PIL cannot open (16-bit or float bands, as satellite GeoTIFFs hold) read with rasterio:
    1 (grey), 3 or 4 (RGBA) bands scaled by ``to_uint8``; nodata, NaN and transparent pixels have no data.
    Its georeferencing is read by ``georeference``."""
    import rasterio

    with rasterio.open(path) as src:
        _refuse_huge(path, src.width, src.height)
        check_bands(path, src.count)
        bands = src.read(masked=True)
    valid = ~np.ma.getmaskarray(bands).any(0) & np.isfinite(bands.filled(0)).all(0)
    if src.count == 4:
        valid &= bands[3].filled(0) > 0
    rgb = np.moveaxis(bands.filled(0)[:3] if src.count > 1 else np.repeat(bands.filled(0), 3, 0), 0, -1)
    return to_uint8(np.where(valid[..., None], rgb, 0), str(path)), {}, valid


def check_bands(path, count: int) -> None:
    if count not in (1, 3, 4):
        raise GeonbError(f"{path} has {count} bands; a photo has 3 (RGB), 4 (RGBA) or 1 (grey): write the "
                         "red, green and blue bands to a file first (e.g. gdal_translate -b 3 -b 2 -b 1).")


def to_uint8(values: np.ndarray, what: str) -> np.ndarray:
    """Image values → 0–255 uint8 by the range their type holds: 8-bit as they are, 16-bit ÷ 257, floats in
    0–1 × 255 (in 0–255 as they are); NaN → 0. Other ranges are refused: clipped, they read as white or black.
    A dask array stays lazy (its range read in one pass first)."""
    lazy = hasattr(values, "dask")
    values = values if lazy else np.asarray(values)
    if values.dtype == np.uint8:
        return values
    if lazy:
        import dask
        import dask.array as dsa

        finite = dsa.where(dsa.isfinite(values), values, np.nan) if values.dtype.kind == "f" else values
        lo, hi = (float(v) for v in dask.compute(dsa.nanmin(finite), dsa.nanmax(finite)))
        top = _top(values.dtype, *((lo, hi) if np.isfinite(lo) else (0.0, 0.0)), what)
        return values.map_blocks(_scaled, top, dtype=np.uint8)
    finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    return _scaled(values, _top(values.dtype, lo, hi, what))


def _top(dtype, lo: float, hi: float, what: str) -> float:
    """The value that maps to 255 for values of ``dtype`` in lo … hi (else a GeonbError)."""
    if dtype.kind == "f":
        top = 1.0 if hi <= 1 else 255.0
    else:
        top = 65535.0 if dtype.itemsize == 2 or hi > 255 else 255.0
    if lo < 0 or hi > top:
        raise GeonbError(f"{what} holds {dtype} values {lo:g} … {hi:g}; geonb reads images as 0–255 (8-bit), "
                         "0–65535 (16-bit) or 0–1 (floats): rescale it into one of those ranges.")
    return top


def _scaled(values: np.ndarray, top: float) -> np.ndarray:
    return np.round(np.nan_to_num(values.astype("float64")) * (255.0 / top)).astype(np.uint8)


def rgb_and_alpha(im, what: str) -> tuple[np.ndarray, np.ndarray]:
    """A PIL image → (H, W, 3) uint8 RGB and where it is opaque; 16-bit and float grey images are scaled by
    ``to_uint8`` (PIL's own conversion clips them to white or black)."""
    if im.mode in ("I", "F") or im.mode.startswith("I;16"):
        grey = np.asarray(im)
        valid = np.isfinite(grey) if grey.dtype.kind == "f" else np.ones(grey.shape, bool)
        return np.repeat(to_uint8(grey, what)[..., None], 3, -1), valid
    rgba = np.asarray(im.convert("RGBA"))
    valid = rgba[..., 3] > 0 if "A" in im.getbands() or "transparency" in im.info else np.ones(rgba.shape[:2], bool)
    return np.ascontiguousarray(rgba[..., :3]), valid

