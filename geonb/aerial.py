"""The Dubai aerial images and their hand-drawn maps: one class table, the location split, tiles.

Data: the ``dubai`` dataset shipped in the package (``geonb.datasets``; ``geonb/data/dubai_aerial/``),
``tile_N/{images/image_part_00K.jpg, masks/image_part_00K.png}`` (7 locations × 9 parts, Humans in the
Loop / MBRSC, CC0; see its README), or a folder of the same layout. A mask
is a colour-coded map; the colours are decoded through ``CLASSES`` here and nowhere else
(pix2pix translation scores with it, segmentation trains on it).

- ``CLASSES``: name → colour; ``UNLABELED`` colours (grey ``#9B9B9B`` and pure black) carry no label.
- ``decode(map)``: RGB map → class index per pixel (``IGNORE`` where unlabeled); a colour
  outside the table is a ``GeonbError`` naming each such colour with its pixel count and
  first position.
- ``nearest_class(rgb)``: any RGB (a generated map) → the class whose colour is nearest.
- ``load_pair``: photo + map of one part, sizes checked; ``load_location``: all parts.
- ``split_locations``: whole locations to train / val / test (no test location in training).
- ``grid_tiles`` (test: a regular grid) and ``random_tiles`` (train: random crops, flips and, for
  segmentation, 90° turns, of any of a pair's layers); both refuse an image smaller than a tile.
- Segmentation: ``scheme_names``/``apply_scheme`` (the five classes, or one against the rest),
  ``median_frequency_weights`` (SegNet's class balancing), ``read_photo`` (any RGB image: JPEG/PNG/
  TIFF with GeoTIFF tags and nodata, NetCDF/zarr), ``read_labels`` (class ids or class colours),
  ``georeference`` (a GeoTIFF's CRS and coordinates via rioxarray).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import GeonbError
from .normalise import Normaliser
from .params import COMMON, Param, ParamSet
from . import datasets

# Class table (the dataset's README; the source's classes.json pairs colours with wrong names).
CLASSES = {
    "building": "#3C1098",
    "land": "#8429F6",
    "road": "#6EC1E4",
    "vegetation": "#FEDD3A",
    "water": "#E2A929",
}
UNLABELED = {"unlabeled": "#9B9B9B", "black (no label)": "#000000"}
IGNORE = 255  # class index of unlabeled pixels
LOCATIONS = tuple(range(1, 8))
PARTS = tuple(range(1, 10))
SOURCE = ("Dubai aerial imagery (MBRSC) with hand-drawn maps by Humans in the Loop, CC0, shipped with geonb "
          "(`geonb data dubai`), from github.com/Bandit15/Deep-Learning-Satellite-Image-Segmentation `data/`")


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    h = hex_colour.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


NAMES = tuple(CLASSES)
COLOURS = np.array([_rgb(c) for c in CLASSES.values()], dtype=np.uint8)  # (n_classes, 3)
UNLABELED_COLOURS = np.array([_rgb(c) for c in UNLABELED.values()], dtype=np.uint8)


def _code(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.int64)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def decode(rgb_map: np.ndarray, where: str = "the map") -> np.ndarray:
    """(H, W, 3) uint8 colour map → (H, W) uint8 class index (``IGNORE`` for unlabeled colours).

    Any colour outside the class table is an error listing each colour, its pixel count and
    the (row, column) of its first pixel.
    """
    rgb_map = np.asarray(rgb_map)
    if rgb_map.ndim != 3 or rgb_map.shape[-1] != 3:
        raise GeonbError(f"{where} has shape {rgb_map.shape}; a colour map is (height, width, 3) RGB.")
    code = _code(rgb_map)
    out = np.full(code.shape, IGNORE, np.uint8)
    known = np.zeros(code.shape, bool)
    for k, c in enumerate(_code(COLOURS)):
        hit = code == c
        out[hit], known[hit] = k, True
    for c in _code(UNLABELED_COLOURS):
        known |= code == c
    if not known.all():
        bad = code[~known]
        colours, counts = np.unique(bad, return_counts=True)
        order = np.argsort(-counts)[:5]
        listed = []
        for c, n in zip(colours[order], counts[order]):
            r, col = np.argwhere(code == c)[0]
            listed.append(f"#{int(c):06X} ({int(n)} px, first at row {r}, column {col})")
        more = f" and {len(colours) - 5} more" if len(colours) > 5 else ""
        table = ", ".join(f"{n} {c}" for n, c in {**CLASSES, **UNLABELED}.items())
        raise GeonbError(f"{where} holds {int((~known).sum())} pixels in {len(colours)} colour(s) outside the class "
                         f"table: {'; '.join(listed)}{more}. Valid colours: {table}. Fix the map (exact colours, "
                         "no anti-aliasing or JPEG compression; save maps as PNG).")
    return out


def nearest_class(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) RGB (0–255, any float) → index of the nearest class colour (labelled classes only)."""
    rgb = np.asarray(rgb, np.float32)
    d = ((rgb[..., None, :] - COLOURS.astype(np.float32)) ** 2).sum(-1)
    return d.argmin(-1).astype(np.uint8)


def colourise(classes: np.ndarray, colours: np.ndarray = COLOURS) -> np.ndarray:
    """Class indices → RGB map in the class colours (default the five classes'; unlabeled: grey)."""
    table = np.vstack([colours, np.zeros((IGNORE - len(colours), 3), np.uint8), UNLABELED_COLOURS[:1]])
    return table[np.asarray(classes)]


def class_colours(names) -> list[str]:
    """Hex colours of class ``names`` (a list, or a name → colour dict): the class table's, white for
    "rest"; other names get matplotlib's tab10 colours."""
    from matplotlib.colors import to_hex
    from matplotlib import colormaps

    if isinstance(names, dict):
        return [to_hex(c) for c in names.values()]
    table = {**CLASSES, "rest": "#FFFFFF"}
    return [table.get(n, to_hex(colormaps["tab10"](k % 10))) for k, n in enumerate(names)]


ERROR_RED = np.array([220, 30, 30], np.uint8)  # wrong pixels in error maps


def legend(names, colours, errors: bool = False) -> dict:
    """Name → RGB for a figure's legend: the classes, no label (grey) and, for error maps, wrong (red)."""
    out = {**dict(zip(names, colours)), "no label": UNLABELED_COLOURS[0]}
    return {**out, "wrong": ERROR_RED} if errors else out


def palette(flag_colors: str) -> list[int]:
    """A 256-entry RGB palette (flat) for class ids 0… in ``flag_colors`` (hex, space-separated), the
    no-label id ``IGNORE`` in the unlabeled grey: class maps that open in colour."""
    flat = [0] * 768
    for k, hex_colour in enumerate(flag_colors.split()):
        flat[3 * k:3 * k + 3] = _rgb(hex_colour)
    flat[3 * IGNORE:3 * IGNORE + 3] = UNLABELED_COLOURS[0].tolist()
    return flat


# ---------------------------------------------------------------- class schemes (segmentation)
REST_COLOUR = np.array([[255, 255, 255]], np.uint8)  # "rest" in a one-against-the-rest scheme: white


def scheme_names(scheme: str) -> tuple[str, ...]:
    """``"all"``: the five classes; a class name (``"vegetation"``): that class against the rest."""
    if scheme == "all":
        return NAMES
    if scheme not in NAMES:
        raise GeonbError(f"scheme={scheme!r}: use 'all' (the five classes) or one class against the rest: "
                         f"{', '.join(NAMES)}.")
    return scheme, "rest"


def scheme_colours(scheme: str) -> np.ndarray:
    return COLOURS if scheme == "all" else np.vstack([COLOURS[NAMES.index(scheme)][None], REST_COLOUR])


def apply_scheme(classes: np.ndarray, scheme: str) -> np.ndarray:
    """Five-class indices → the scheme's indices (one against the rest: 0 = the class, 1 = the rest);
    unlabeled stays ``IGNORE``."""
    if scheme == "all":
        return classes
    k = NAMES.index(scheme_names(scheme)[0])
    return np.where(classes == IGNORE, IGNORE, np.where(classes == k, 0, 1)).astype(np.uint8)


def median_frequency_weights(label_images: list[np.ndarray], n: int) -> np.ndarray:
    """SegNet's class balancing (Eigen & Fergus): w_c = median(f) / f_c, where f_c is the number of pixels
    of class c divided by the labelled pixels of the images in which c occurs; an absent class gets 0."""
    counts = np.stack([np.bincount(c[c != IGNORE].ravel(), minlength=n)[:n] for c in label_images]).astype(float)
    present = counts > 0
    total = (counts.sum(1, keepdims=True) * present).sum(0)
    freq = np.divide(counts.sum(0), total, out=np.zeros(n), where=total > 0)
    seen = freq > 0
    weights = np.zeros(n)
    weights[seen] = np.median(freq[seen]) / freq[seen]
    return weights


# ---------------------------------------------------------------- files
def data_dir(root=None) -> Path:
    if root is None:
        return datasets.path("dubai")
    path = Path(root)
    if not path.is_dir():
        raise GeonbError(f"{path} is not a folder of aerial images; give a folder laid out as tile_N/images, tile_N/masks.")
    return path


def read_rgb(path) -> np.ndarray:
    """An image file → (H, W, 3) uint8 RGB (palette, grey, 16-bit and float images scaled: ``to_uint8``)."""
    return _open_image(path, lambda im: _rgb_and_alpha(im, str(path))[0])


MAX_PIXELS = 2 ** 28  # 268 Mpx (16 384²): more is a decompression bomb, or an image to cut into tiles first
LOSSY = {".jpg": "JPEG", ".jpeg": "JPEG", ".jpe": "JPEG", ".webp": "WebP"}


def _refuse_huge(path, w: int, h: int) -> None:
    if w * h > MAX_PIXELS:
        raise GeonbError(f"{path} declares {w}×{h} px ({w * h / 1e6:,.0f} Mpx), more than the {MAX_PIXELS / 1e6:.0f} "
                         "Mpx geonb reads: a damaged or hostile file (decompression bomb), or cut it into tiles first "
                         "(e.g. gdal_translate -srcwin).")


def _open_image(path, read, unknown=None):
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


def _tiff_bands(path: Path) -> tuple[np.ndarray, dict, np.ndarray]:
    """A TIFF that PIL cannot open (16-bit or float bands, as satellite GeoTIFFs hold) read with rasterio:
    1 (grey), 3 or 4 (RGBA) bands scaled by ``to_uint8``; nodata, NaN and transparent pixels have no data.
    Its georeferencing is read by ``georeference``."""
    import rasterio

    with rasterio.open(path) as src:
        _refuse_huge(path, src.width, src.height)
        if src.count not in (1, 3, 4):
            raise GeonbError(f"{path} has {src.count} bands; a photo has 3 (RGB), 4 (RGBA) or 1 (grey): write the "
                             "red, green and blue bands to a file first (e.g. gdal_translate -b 3 -b 2 -b 1).")
        bands = src.read(masked=True)
    valid = ~np.ma.getmaskarray(bands).any(0) & np.isfinite(bands.filled(0)).all(0)
    if src.count == 4:
        valid &= bands[3].filled(0) > 0
    rgb = np.moveaxis(bands.filled(0)[:3] if src.count > 1 else np.repeat(bands.filled(0), 3, 0), 0, -1)
    return to_uint8(np.where(valid[..., None], rgb, 0), str(path)), {}, valid


def to_uint8(values: np.ndarray, what: str) -> np.ndarray:
    """Image values → 0–255 uint8 by the range their type holds: 8-bit as they are, 16-bit ÷ 257, floats in
    0–1 × 255 (in 0–255 as they are); NaN → 0. Other ranges are refused: clipped, they read as white or black."""
    values = np.asarray(values)
    if values.dtype == np.uint8:
        return values
    finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    if values.dtype.kind == "f":
        top = 1.0 if hi <= 1 else 255.0
    else:
        top = 65535.0 if values.dtype.itemsize == 2 or hi > 255 else 255.0
    if lo < 0 or hi > top:
        raise GeonbError(f"{what} holds {values.dtype} values {lo:g} … {hi:g}; geonb reads images as 0–255 (8-bit), "
                         "0–65535 (16-bit) or 0–1 (floats): rescale it into one of those ranges.")
    return np.round(np.nan_to_num(values.astype("float64")) * (255.0 / top)).astype(np.uint8)


def _rgb_and_alpha(im, what: str) -> tuple[np.ndarray, np.ndarray]:
    """A PIL image → (H, W, 3) uint8 RGB and where it is opaque; 16-bit and float grey images are scaled by
    ``to_uint8`` (PIL's own conversion clips them to white or black)."""
    if im.mode in ("I", "F") or im.mode.startswith("I;16"):
        grey = np.asarray(im)
        valid = np.isfinite(grey) if grey.dtype.kind == "f" else np.ones(grey.shape, bool)
        return np.repeat(to_uint8(grey, what)[..., None], 3, -1), valid
    rgba = np.asarray(im.convert("RGBA"))
    valid = rgba[..., 3] > 0 if "A" in im.getbands() or "transparency" in im.info else np.ones(rgba.shape[:2], bool)
    return np.ascontiguousarray(rgba[..., :3]), valid


def refuse_lossy(path, what: str, fmt: str = "") -> None:
    """Class maps only survive lossless files: JPEG/WebP compression turns the edges between classes into
    colours and ids of no class."""
    kind = fmt if fmt in ("JPEG", "WEBP", "MPO") else LOSSY.get(Path(path).suffix.lower())
    if kind:
        raise GeonbError(f"{path}: {what} in {kind}, a lossy format whose compression changes class ids and colours "
                         "along every edge; use PNG, TIFF, NetCDF (.nc) or zarr.")


GEO_TAGS = (33550, 33922, 34264, 34735, 34736, 34737)  # GeoTIFF: pixel scale, tie points, transform, keys
NODATA_TAG = 42113  # GDAL_NODATA


def _is_gridded(path: Path) -> bool:
    return path.suffix.lower() in (".nc", ".nc4", ".zarr") or path.is_dir()


def read_photo(path, var: str = "") -> tuple[np.ndarray, dict, np.ndarray]:
    """An RGB photo from an image file (JPEG/PNG/TIFF; a GeoTIFF's georeferencing tags kept) or a
    NetCDF/zarr variable with a dimension of size 3 (bands). Returns (H, W, 3) uint8, the GeoTIFF tags
    to write back, and where the photo has data (False: NaN in NetCDF, transparent, or a GeoTIFF's nodata)."""
    from .io import open_dataset

    p = Path(path)
    if _is_gridded(p):
        ds = open_dataset(p, var or None)
        names = [var] if var else [v for v in ds.data_vars if 3 in ds[v].shape and ds[v].ndim == 3]
        if len(names) != 1:
            raise GeonbError(f"{path}: give --var, the RGB variable (3 dims, one of size 3); it has "
                             f"{', '.join(f'{v}{ds[v].dims}' for v in ds.data_vars)}.")
        da = ds[names[0]]
        band = next((d for d in da.dims if da.sizes[d] == 3), None)
        if band is None or da.ndim != 3:
            raise GeonbError(f"{path}:{names[0]} has dims {dict(da.sizes)}; an RGB photo needs 3 dims, one of size 3.")
        rgb = da.transpose(*[d for d in da.dims if d != band], band).values
        valid = np.isfinite(rgb).all(-1) if rgb.dtype.kind == "f" else np.ones(rgb.shape[:2], bool)
        return to_uint8(rgb, f"{path}:{names[0]}"), {}, valid

    def read(im):
        tags = dict(getattr(im, "tag_v2", {}) or {}) if p.suffix.lower() in (".tif", ".tiff") else {}
        rgb, valid = _rgb_and_alpha(im, str(p))
        if NODATA_TAG in tags:
            try:
                valid &= ~(rgb == float(str(tags[NODATA_TAG]).strip("\x00 "))).all(-1)
            except ValueError:
                pass
        return rgb, {k: v for k, v in tags.items() if k in GEO_TAGS}, valid

    return _open_image(p, read, _tiff_bands if p.suffix.lower() in (".tif", ".tiff") else None)


def georeference(path):
    """A GeoTIFF's georeferencing as xarray coordinates (``x``, ``y`` of the pixel centres and the CF
    ``spatial_ref`` with its CRS, via rioxarray), or None for a file without a CRS."""
    p = Path(path)
    if p.suffix.lower() not in (".tif", ".tiff"):
        return None
    import rioxarray

    with rioxarray.open_rasterio(p) as da:
        if da.rio.crs is None:
            return None
        return {name: da[name].load() for name in ("y", "x", "spatial_ref")}


def read_labels(path, var: str = "", n: int = len(NAMES)) -> np.ndarray:
    """A label raster → (H, W) uint8 class indices: a colour map (RGB or palette image) decoded through
    the class table, or one band of class ids 0…n−1 (``IGNORE`` = 255 and NaN: no label)."""
    from .io import open_dataset

    p = Path(path)
    if _is_gridded(p):
        ds = open_dataset(p, var or None)
        names = [var] if var else [v for v in ds.data_vars if ds[v].ndim == 2]
        if len(names) != 1:
            raise GeonbError(f"{path}: give the label variable (2 dims, class ids); it has "
                             f"{', '.join(f'{v}{ds[v].dims}' for v in ds.data_vars)}.")
        values = ds[names[0]].values
        ids = np.where(np.isfinite(values), values, IGNORE) if values.dtype.kind == "f" else values
    else:
        def read(im):
            refuse_lossy(p, "label masks", im.format)
            return np.asarray(im) if im.mode in ("L", "I", "I;16") else None

        ids = _open_image(p, read)
        if ids is None:
            return decode(read_rgb(p), f"the label raster {p}")
    bad = (ids != IGNORE) & ((ids < 0) | (ids >= n) | (ids != np.round(ids)))
    if bad.any():
        values, counts = np.unique(ids[bad], return_counts=True)
        listed = ", ".join(f"{v:g} ({c} px)" for v, c in zip(values[:5], counts[:5]))
        raise GeonbError(f"the label raster {p} holds {int(bad.sum())} pixels with values outside the class ids "
                         f"0–{n - 1} and {IGNORE} (no label): {listed}. Fix the labels, or give a colour map "
                         "in the class colours.")
    return ids.astype(np.uint8)


@dataclass
class Pair:
    """One aerial photo and its map, the same size; ``classes`` decoded from the map."""
    photo: np.ndarray  # (H, W, 3) uint8
    map: np.ndarray    # (H, W, 3) uint8
    classes: np.ndarray  # (H, W) uint8, IGNORE = unlabeled
    name: str


def check_pair(photo: np.ndarray, rgb_map: np.ndarray, name: str = "") -> None:
    if photo.shape[:2] != rgb_map.shape[:2]:
        raise GeonbError(f"{name}: the photo is {photo.shape[0]}×{photo.shape[1]} px but its map is "
                         f"{rgb_map.shape[0]}×{rgb_map.shape[1]} px; a photo and its map must be the same size.")


def make_pair(photo: np.ndarray, rgb_map: np.ndarray, name: str = "pair") -> Pair:
    check_pair(photo, rgb_map, name)
    return Pair(np.ascontiguousarray(photo), np.ascontiguousarray(rgb_map), decode(rgb_map, f"the map of {name}"), name)


def load_pair(location: int, part: int, root=None) -> Pair:
    folder = data_dir(root) / f"tile_{location}"
    photo = read_rgb(folder / "images" / f"image_part_{part:03d}.jpg")
    rgb_map = read_rgb(folder / "masks" / f"image_part_{part:03d}.png")
    return make_pair(photo, rgb_map, f"tile_{location}/image_part_{part:03d}")


def load_location(location: int, parts=PARTS, root=None) -> list[Pair]:
    if location not in LOCATIONS:
        raise GeonbError(f"location {location} does not exist; the Dubai data has tile_1 … tile_{LOCATIONS[-1]}.")
    return [load_pair(location, p, root) for p in parts]


# The parameters of the tasks that read these images by location (translate, segment).
LOCATION_PARAMS = (
    Param("val_location", int, 2, "the location (1–7) held out for validation", "data_prep", min=1, max=7),
    Param("test_location", int, 3, "the location (1–7) held out for testing", "data_prep", min=1, max=7),
    Param("parts", int, 9, "image parts per location used (1–9)", "data_prep", quick=1, min=1, max=9),
)



def task_params(data_help: str, **overrides) -> ParamSet:
    """The parameters every task on these images starts from: ``COMMON`` with ``data`` defaulting to
    'dubai' (``data_help`` says what else it takes) and ``overrides``, plus ``LOCATION_PARAMS``."""
    return COMMON.override(data={"default": "dubai", "help": data_help}, **overrides) + LOCATION_PARAMS


def split_locations(val: int, test: int) -> dict[str, list[int]]:
    """Whole locations to splits: ``test`` and ``val`` one each, the rest train."""
    for name, loc in (("val_location", val), ("test_location", test)):
        if loc not in LOCATIONS:
            raise GeonbError(f"{name}={loc}: pick one of {', '.join(map(str, LOCATIONS))}.")
    if val == test:
        raise GeonbError(f"val_location and test_location are both {val}; they must differ (no test location "
                         "may be seen in training or validation).")
    return {"train": [k for k in LOCATIONS if k not in (val, test)], "val": [val], "test": [test]}


def brightness_field(photos: dict[int, np.ndarray], size: int = 504):
    """What ``geonb.explore`` shows for the aerial tasks: the brightness of one photo per location
    (top-left ``size`` px), as a (time = location, lat, lon) field."""
    import xarray as xr

    field = np.stack([p[:size, :size].mean(-1)[::-1] for p in photos.values()]).astype("float32")
    da = xr.DataArray(field, dims=("time", "lat", "lon"), name="field",
                      coords={"time": list(photos), "lat": np.arange(size), "lon": np.arange(size)},
                      attrs={"units": "grey level", "long_name": "photo brightness, part 1 (time = location)"})
    return da.to_dataset()


# ---------------------------------------------------------------- tiles
def check_size(pair: Pair, tile: int) -> None:
    h, w = pair.classes.shape
    if h < tile or w < tile:
        raise GeonbError(f"{pair.name} is {h}×{w} px, smaller than one {tile}×{tile} tile; use a smaller tile "
                         "(`patch`) or a larger image.")


def grid_tiles(pairs: list[Pair], tile: int) -> tuple[np.ndarray, np.ndarray, list[tuple[str, int, int]]]:
    """Every whole ``tile``×``tile`` tile of a regular grid over each pair (no overlap; the remainder at
    the bottom/right left out). Returns photos (N, tile, tile, 3), maps (N, tile, tile, 3), (name, row, col)."""
    photos, maps, where = [], [], []
    for p in pairs:
        check_size(p, tile)
        h, w = p.classes.shape
        for i in range(0, h - tile + 1, tile):
            for j in range(0, w - tile + 1, tile):
                photos.append(p.photo[i:i + tile, j:j + tile])
                maps.append(p.map[i:i + tile, j:j + tile])
                where.append((p.name, i, j))
    return np.stack(photos), np.stack(maps), where


def random_tiles(pairs: list[Pair], tile: int, n: int, rng: np.random.Generator,
                 layers: tuple[str, ...] = ("photo", "map"), rotate: bool = False) -> tuple[np.ndarray, ...]:
    """``n`` random aligned crops of each of ``layers`` (the same window), each flipped left-right and/or
    up-down at random and, with ``rotate``, turned by a random multiple of 90°; pairs drawn in proportion
    to their area. Returns one (n, tile, tile, …) array per layer."""
    for p in pairs:
        check_size(p, tile)
    area = np.array([p.classes.size for p in pairs], float)
    out = [np.empty((n, tile, tile, *getattr(pairs[0], name).shape[2:]), np.uint8) for name in layers]
    for k, idx in enumerate(rng.choice(len(pairs), n, p=area / area.sum())):
        p = pairs[idx]
        h, w = p.classes.shape
        i, j = rng.integers(0, h - tile + 1), rng.integers(0, w - tile + 1)
        crops = [getattr(p, name)[i:i + tile, j:j + tile] for name in layers]
        if rng.random() < 0.5:
            crops = [c[:, ::-1] for c in crops]
        if rng.random() < 0.5:
            crops = [c[::-1] for c in crops]
        if rotate:
            turns = int(rng.integers(0, 4))
            crops = [np.rot90(c, turns) for c in crops]
        for array, crop in zip(out, crops):
            array[k] = crop
    return tuple(out)


RANGE = Normaliser(127.5, 127.5)  # grey levels 0–255 ↔ [−1, 1], pix2pix's range (tanh output)


def to_tensor_range(images: np.ndarray, norm: Normaliser = RANGE) -> np.ndarray:
    """(N, H, W, 3) uint8 → (N, 3, H, W) float32, normalised (default: [−1, 1])."""
    return norm(np.ascontiguousarray(images.transpose(0, 3, 1, 2), dtype=np.float32))


def from_tensor_range(x: np.ndarray, norm: Normaliser = RANGE) -> np.ndarray:
    """(N, 3, H, W) normalised → (N, H, W, 3) uint8."""
    return np.clip(np.round(norm.inverse(np.asarray(x).transpose(0, 2, 3, 1))), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- the per-pixel colour classifier
def class_mean_colours(photos: np.ndarray, classes: np.ndarray, n: int = len(NAMES)) -> np.ndarray:
    """The per-pixel colour classifier's fit: mean photo RGB of each of ``n`` classes (labelled pixels only)."""
    px, cl = photos.reshape(-1, 3).astype(np.float64), classes.reshape(-1)
    means = np.zeros((n, 3))
    for k in range(n):
        sel = cl == k
        means[k] = px[sel].mean(0) if sel.any() else np.inf
    return means


def nearest_mean_classes(photos: np.ndarray, means: np.ndarray) -> np.ndarray:
    """Per-pixel classifier: each photo pixel → the class whose mean photo colour is nearest."""
    rgb = np.asarray(photos, np.float32)
    d = ((rgb[..., None, :] - means.astype(np.float32)) ** 2).sum(-1)
    return d.argmin(-1).astype(np.uint8)
