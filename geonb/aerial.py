"""The Dubai aerial images and their hand-drawn maps: one class table, the location split, tiles.

Data: ``<shared data>/dubai_aerial/tile_N/{images/image_part_00K.jpg, masks/image_part_00K.png}``
(7 locations × 9 parts, Humans in the Loop / MBRSC, CC0; see the shared data README). A mask
is a colour-coded map; the colours are decoded through ``CLASSES`` here and nowhere else
(pix2pix translation scores with it, segmentation will train on it).

- ``CLASSES``: name → colour; ``UNLABELED`` colours (grey ``#9B9B9B`` and pure black) carry no label.
- ``decode(map)``: RGB map → class index per pixel (``IGNORE`` where unlabeled); a colour
  outside the table is a ``GeonbError`` naming each such colour with its pixel count and
  first position.
- ``nearest_class(rgb)``: any RGB (a generated map) → the class whose colour is nearest.
- ``load_pair``: photo + map of one part, sizes checked; ``load_location``: all parts.
- ``split_locations``: whole locations to train / val / test (no test location in training).
- ``grid_tiles`` (test: a regular grid) and ``random_tiles`` (train: random crops and flips);
  both refuse an image smaller than a tile.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import GeonbError
from .normalise import Normaliser
from .paths import shared_data_dir

# Class table (shared data README; the source's classes.json pairs colours with wrong names).
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
SOURCE = ("Dubai aerial imagery (MBRSC) with hand-drawn maps by Humans in the Loop, CC0; expected in "
          "<shared data>/dubai_aerial/ (set GEONB_SHARED_DATA), from github.com/Bandit15/"
          "Deep-Learning-Satellite-Image-Segmentation `data/`, folders renamed `Tile N` → `tile_N`")


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


def colourise(classes: np.ndarray) -> np.ndarray:
    """Class indices → RGB map (unlabeled: grey)."""
    table = np.vstack([COLOURS, np.zeros((IGNORE - len(COLOURS), 3), np.uint8), UNLABELED_COLOURS[:1]])
    return table[np.asarray(classes)]


# ---------------------------------------------------------------- files
def data_dir(root=None) -> Path:
    path = Path(root) if root else shared_data_dir() / "dubai_aerial"
    if not path.is_dir():
        raise GeonbError(f"{path} not found: the {SOURCE}.")
    return path


def read_rgb(path) -> np.ndarray:
    """An image file → (H, W, 3) uint8 RGB (palette and grey PNGs converted)."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.exists():
        raise GeonbError(f"{path}: no such image file.")
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError) as exc:
        raise GeonbError(f"{path} is not a readable image ({exc}); give a JPEG/PNG/TIFF file.") from exc


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


def split_locations(val: int, test: int) -> dict[str, list[int]]:
    """Whole locations to splits: ``test`` and ``val`` one each, the rest train."""
    for name, loc in (("val_location", val), ("test_location", test)):
        if loc not in LOCATIONS:
            raise GeonbError(f"{name}={loc}: pick one of {', '.join(map(str, LOCATIONS))}.")
    if val == test:
        raise GeonbError(f"val_location and test_location are both {val}; they must differ (no test location "
                         "may be seen in training or validation).")
    return {"train": [k for k in LOCATIONS if k not in (val, test)], "val": [val], "test": [test]}


# ---------------------------------------------------------------- tiles
def _check_size(pair: Pair, tile: int) -> None:
    h, w = pair.classes.shape
    if h < tile or w < tile:
        raise GeonbError(f"{pair.name} is {h}×{w} px, smaller than one {tile}×{tile} tile; use a smaller tile "
                         "(`patch`) or a larger image.")


def grid_tiles(pairs: list[Pair], tile: int) -> tuple[np.ndarray, np.ndarray, list[tuple[str, int, int]]]:
    """Every whole ``tile``×``tile`` tile of a regular grid over each pair (no overlap; the remainder at
    the bottom/right left out). Returns photos (N, tile, tile, 3), maps (N, tile, tile, 3), (name, row, col)."""
    photos, maps, where = [], [], []
    for p in pairs:
        _check_size(p, tile)
        h, w = p.classes.shape
        for i in range(0, h - tile + 1, tile):
            for j in range(0, w - tile + 1, tile):
                photos.append(p.photo[i:i + tile, j:j + tile])
                maps.append(p.map[i:i + tile, j:j + tile])
                where.append((p.name, i, j))
    return np.stack(photos), np.stack(maps), where


def random_tiles(pairs: list[Pair], tile: int, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random aligned crops (photo and map the same window), each flipped left-right and/or
    up-down at random; pairs drawn in proportion to their area."""
    for p in pairs:
        _check_size(p, tile)
    area = np.array([p.classes.size for p in pairs], float)
    photos, maps = np.empty((n, tile, tile, 3), np.uint8), np.empty((n, tile, tile, 3), np.uint8)
    for k, idx in enumerate(rng.choice(len(pairs), n, p=area / area.sum())):
        p = pairs[idx]
        h, w = p.classes.shape
        i, j = rng.integers(0, h - tile + 1), rng.integers(0, w - tile + 1)
        a, b = p.photo[i:i + tile, j:j + tile], p.map[i:i + tile, j:j + tile]
        if rng.random() < 0.5:
            a, b = a[:, ::-1], b[:, ::-1]
        if rng.random() < 0.5:
            a, b = a[::-1], b[::-1]
        photos[k], maps[k] = a, b
    return photos, maps


RANGE = Normaliser(127.5, 127.5)  # grey levels 0–255 ↔ [−1, 1], pix2pix's range (tanh output)


def to_tensor_range(images: np.ndarray, norm: Normaliser = RANGE) -> np.ndarray:
    """(N, H, W, 3) uint8 → (N, 3, H, W) float32, normalised (default: [−1, 1])."""
    return norm(np.ascontiguousarray(images.transpose(0, 3, 1, 2), dtype=np.float32))


def from_tensor_range(x: np.ndarray, norm: Normaliser = RANGE) -> np.ndarray:
    """(N, 3, H, W) normalised → (N, H, W, 3) uint8."""
    return np.clip(np.round(norm.inverse(np.asarray(x).transpose(0, 2, 3, 1))), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- scores
def confusion(truth: np.ndarray, pred: np.ndarray, n: int = len(NAMES)) -> np.ndarray:
    """Counts [true class, predicted class] over pixels whose truth is labelled."""
    ok = truth != IGNORE
    return np.bincount(truth[ok].astype(np.int64) * n + pred[ok], minlength=n * n).reshape(n, n)


def class_mean_colours(photos: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """The per-pixel colour classifier's fit: mean photo RGB of each class (labelled pixels only)."""
    px, cl = photos.reshape(-1, 3).astype(np.float64), classes.reshape(-1)
    means = np.zeros((len(NAMES), 3))
    for k in range(len(NAMES)):
        sel = cl == k
        means[k] = px[sel].mean(0) if sel.any() else np.inf
    return means


def nearest_mean_classes(photos: np.ndarray, means: np.ndarray) -> np.ndarray:
    """Per-pixel classifier: each photo pixel → the class whose mean photo colour is nearest."""
    rgb = np.asarray(photos, np.float32)
    d = ((rgb[..., None, :] - means.astype(np.float32)) ** 2).sum(-1)
    return d.argmin(-1).astype(np.uint8)
