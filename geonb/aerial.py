"""The Dubai aerial images and their hand-drawn maps: the location split, tiles, class colours and
schemes, and the photos and label rasters the aerial tasks read.

Data: the ``dubai`` dataset shipped in the package (``geonb.datasets``; ``geonb/data/dubai_aerial/``),
``tile_N/{images/image_part_00K.jpg, masks/image_part_00K.png}`` (7 locations × 9 parts, Humans in the
Loop / MBRSC, CC0; see its README), or a folder of the same layout. A mask is a colour-coded map,
decoded through the one class table (``geonb.classtable``: ``CLASSES``, ``decode``); pix2pix
translation scores with it, segmentation trains on it.

- ``nearest_class(rgb)``: any RGB (a generated map) → the class whose colour is nearest (``colour_distances``,
  also the translate task's class probabilities);
  ``colourise``, ``class_colours``, ``legend``: class ids back to colours for maps and figures.
- ``load_pair``: photo + map of one part, sizes checked; ``load_location``: all parts.
- ``split_locations``: whole locations to train / val / test (no test location in training).
- ``grid_tiles`` (test: a regular grid) and ``random_tiles`` (train: random crops, flips and, for
  segmentation, 90° turns, of any of a pair's layers); both refuse an image smaller than a tile.
- Segmentation: ``scheme_names``/``apply_scheme`` (the five classes, or one against the rest),
  ``median_frequency_weights`` (SegNet's class balancing), ``read_photo`` (any RGB image: JPEG/PNG/
  TIFF with GeoTIFF tags and nodata, NetCDF/zarr; ``photo_variable``: a file's RGB variable, also lazy), ``read_labels`` (class ids or class colours),
  ``georeference`` (a GeoTIFF's CRS and coordinates via rioxarray). Image files are decoded by
  ``geonb.images``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .classtable import CLASSES, COLOURS, IGNORE, NAMES, UNLABELED_COLOURS, decode
from .errors import GeonbError
from .images import open_image, read_rgb, rgb_and_alpha, tiff_bands, to_uint8
from .normalise import Normaliser
from .params import COMMON, Param, ParamSet
from . import datasets

LOCATIONS = tuple(range(1, 8))
PARTS = tuple(range(1, 10))
SOURCE = ("Dubai aerial imagery (MBRSC) with hand-drawn maps by Humans in the Loop, CC0, shipped with geonb "
          "(`geonb data dubai`), from github.com/Bandit15/Deep-Learning-Satellite-Image-Segmentation `data/`")


def colour_distances(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) RGB (0–255) → (..., C) squared distances to the labelled classes' colours (0–255 units)."""
    rgb = np.asarray(rgb, np.float32)
    return ((rgb[..., None, :] - COLOURS.astype(np.float32)) ** 2).sum(-1)


def nearest_class(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) RGB (0–255, any float) → index of the nearest class colour (labelled classes only)."""
    return colour_distances(rgb).argmin(-1).astype(np.uint8)


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


LOSSY = {".jpg": "JPEG", ".jpeg": "JPEG", ".jpe": "JPEG", ".webp": "WebP"}


def refuse_lossy(path, what: str, fmt: str = "") -> None:
    """Class maps only survive lossless files: JPEG/WebP compression turns the edges between classes into
    colours and ids of no class."""
    kind = fmt if fmt in ("JPEG", "WEBP", "MPO") else LOSSY.get(Path(path).suffix.lower())
    if kind:
        raise GeonbError(f"{path}: {what} in {kind}, a lossy format whose compression changes class ids and colours "
                         "along every edge; use PNG, TIFF, NetCDF (.nc) or zarr.")


GEO_TAGS = (33550, 33922, 34264, 34735, 34736, 34737)  # GeoTIFF: pixel scale, tie points, transform, keys
NODATA_TAG = 42113  # GDAL_NODATA


def is_gridded(path: Path) -> bool:
    return path.suffix.lower() in (".nc", ".nc4", ".zarr") or path.is_dir()


def read_photo(path, var: str = "") -> tuple[np.ndarray, dict, np.ndarray]:
    """An RGB photo from an image file (JPEG/PNG/TIFF; a GeoTIFF's georeferencing tags kept) or a
    NetCDF/zarr variable with a dimension of size 3 (bands). Returns (H, W, 3) uint8, the GeoTIFF tags
    to write back, and where the photo has data (False: NaN in NetCDF, transparent, or a GeoTIFF's nodata)."""
    p = Path(path)
    if is_gridded(p):
        da = photo_variable(p, var)
        rgb = da.values
        valid = np.isfinite(rgb).all(-1) if rgb.dtype.kind == "f" else np.ones(rgb.shape[:2], bool)
        return to_uint8(rgb, f"{path}:{da.name}"), {}, valid

    def read(im):
        tags = dict(getattr(im, "tag_v2", {}) or {}) if p.suffix.lower() in (".tif", ".tiff") else {}
        rgb, valid = rgb_and_alpha(im, str(p))
        if NODATA_TAG in tags:
            try:
                valid &= ~(rgb == float(str(tags[NODATA_TAG]).strip("\x00 "))).all(-1)
            except ValueError:
                pass
        return rgb, {k: v for k, v in tags.items() if k in GEO_TAGS}, valid

    return open_image(p, read, tiff_bands if p.suffix.lower() in (".tif", ".tiff") else None)


def photo_variable(path, var: str = "", lazy: bool = False):
    """The RGB variable of a NetCDF/zarr file (``var``, else the one with 3 dims, one of size 3) as
    (y, x, band), loaded or (``lazy``) dask-backed in the file's chunks."""
    from .io import open_dataset

    ds = open_dataset(path, var or None, lazy=lazy)
    names = [var] if var else [v for v in ds.data_vars if 3 in ds[v].shape and ds[v].ndim == 3]
    if len(names) != 1:
        raise GeonbError(f"{path}: give --var, the RGB variable (3 dims, one of size 3); it has "
                         f"{', '.join(f'{v}{ds[v].dims}' for v in ds.data_vars)}.")
    da = ds[names[0]]
    band = next((d for d in da.dims if da.sizes[d] == 3), None)
    if band is None or da.ndim != 3:
        raise GeonbError(f"{path}:{names[0]} has dims {dict(da.sizes)}; an RGB photo needs 3 dims, one of size 3.")
    return da.transpose(*[d for d in da.dims if d != band], band)


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
    if is_gridded(p):
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

        ids = open_image(p, read)
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
    Param("val_location", list, [2], "the locations (1–7) held out for validation: one (2) or several ([2, 6]), "
                                     "so the epoch and the temperature are not chosen on one neighbourhood",
          "data_prep", min=1, max=7, single=True),
    Param("test_location", int, 3, "the location (1–7) held out for testing", "data_prep", min=1, max=7),
    Param("parts", int, 9, "image parts per location used (1–9)", "data_prep", quick=1, min=1, max=9),
)


def task_params(data_help: str, **overrides) -> ParamSet:
    """The parameters every task on these images starts from: ``COMMON`` with ``data`` defaulting to
    'dubai' (``data_help`` says what else it takes) and ``overrides``, plus ``LOCATION_PARAMS``."""
    return COMMON.override(data={"default": "dubai", "help": data_help}, **overrides) + LOCATION_PARAMS


def split_locations(val: int | list[int], test: int) -> dict[str, list[int]]:
    """Whole locations to splits: ``test`` one, ``val`` one or several, the rest train."""
    val = [val] if isinstance(val, int) else list(val)
    for name, loc in [*(("val_location", v) for v in val), ("test_location", test)]:
        if loc not in LOCATIONS:
            raise GeonbError(f"{name}={loc}: pick one of {', '.join(map(str, LOCATIONS))}.")
    if not val or len(set(val)) < len(val):
        raise GeonbError(f"val_location={val}: give one location or several different ones, e.g. [2, 6].")
    if test in val:
        raise GeonbError(f"location {test} is both the test_location and a val_location; they must differ (no test "
                         "location may be seen in training or validation).")
    train = [k for k in LOCATIONS if k not in (*val, test)]
    if not train:
        raise GeonbError(f"val_location={val} and test_location={test} leave no location to train on; validate on "
                         "fewer locations.")
    return {"train": train, "val": val, "test": [test]}


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
