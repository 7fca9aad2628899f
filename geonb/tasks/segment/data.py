"""The segment task's parameters and data: image/label pairs of the Dubai locations or of one image in row
bands, class schemes, median-frequency class weights."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ... import aerial
from ...errors import GeonbError
from ...params import Param
from ...registry import get_arch


NORM = aerial.RANGE  # photo grey levels 0–255 ↔ [−1, 1]; kept in the model file


VAL_TILES = 16  # validation crops of the val images (fixed), per epoch


BANDS = {"train": (0.0, 0.6), "val": (0.6, 0.8), "test": (0.8, 1.0)}  # row bands of a single image


PARAMS = aerial.task_params(
    "'dubai': the aerial photos and maps shipped with geonb (`geonb data dubai`), or a folder with its tile_N layout; "
    "or one image file (GeoTIFF, PNG, JPEG, NetCDF, zarr) with `labels`",
    epochs={"default": 10, "quick": 1}, patience={"default": 5}, batch_size={"default": 4, "quick": 2},
    transect_start={"help": "[row, column] pixel where the 06 line starts; None: the middle of the left edge"},
    transect_end={"help": "[row, column] pixel where the 06 line ends; None: the middle of the right edge"},
) + (
    Param("labels", str, "", "with an image file as `data`: its label raster of the same shape (class ids "
                             "0 to 4 and 255 for no label, or a map in the class colours)", "data_prep"),
    Param("scheme", str, "all", "'all': the five classes; a class name (e.g. 'vegetation'): it against the rest",
          "data_prep"),
    Param("class_weights", bool, True, "weight the loss by median-frequency balancing of the training pixels"),
    Param("patch", int, 256, "training crop size in px (a multiple of 2^depth)", quick=64, min=1, max=4096),
    Param("steps_per_epoch", int, 25, "batches per epoch", quick=2, min=1, max=100_000),
    Param("width", int, 16, "network width: channels of the first level (VGG and U-Net: 64; 16 is CPU-sized)",
          quick=4, min=1, max=512),
    Param("depth", int, 4, "pooling levels; inputs padded to 2^depth (fcn needs 3 or more)", quick=3, min=1, max=8),
    Param("tta", bool, False, "test-time augmentation: class probabilities averaged over the 8 flips and 90° turns "
                              "(8× the prediction time); kept in the model file, so every prediction uses it"),
    Param("baseline_pixels", int, 200000, "training pixels the random-forest baseline learns from", "error_maps",
          quick=20000, min=1, max=10_000_000),
    Param("n_examples", int, 3, "test images shown as error maps in 04", None, min=0, max=100),
)


def _is_image(run) -> bool:
    return run["data"] not in ("", "dubai") and not Path(run["data"]).is_dir()


def _names(run) -> tuple[str, ...]:
    return aerial.scheme_names(run["scheme"])


def _with_scheme(pair: aerial.Pair, scheme: str) -> aerial.Pair:
    return aerial.Pair(pair.photo, pair.map, aerial.apply_scheme(pair.classes, scheme), pair.name)


def image_pairs(photo: np.ndarray, labels: np.ndarray, valid: np.ndarray, name: str) -> dict[str, aerial.Pair]:
    """One image and its class ids (same shape) → train / val / test row bands (no-data pixels unlabeled)."""
    if photo.shape[:2] != labels.shape:
        raise GeonbError(f"{name}: the image is {photo.shape[0]}×{photo.shape[1]} px but its labels are "
                         f"{labels.shape[0]}×{labels.shape[1]} px; give a label raster of the same shape.")
    labels = np.where(valid, labels, aerial.IGNORE).astype(np.uint8)
    h = photo.shape[0]
    out = {}
    for split, (a, b) in BANDS.items():
        rows = slice(int(round(a * h)), int(round(b * h)))
        out[split] = aerial.Pair(photo[rows], aerial.colourise(labels[rows]), labels[rows],
                                 f"{name} rows {rows.start}–{rows.stop}")
    return out


def _pairs(run, split: str) -> list[aerial.Pair]:
    """The split's images with their classes in the run's scheme."""
    if _is_image(run):
        if not run["labels"]:
            raise GeonbError(f"data={run['data']!r} is one image: give its label raster with `labels` "
                             "(same shape; class ids or class colours).")
        photo, _, valid = aerial.read_photo(run["data"], run["var"])
        labels = aerial.read_labels(run["labels"], n=len(aerial.NAMES))
        pairs = [image_pairs(photo, labels, valid, Path(run["data"]).name)[split]]
    else:
        if run["labels"]:
            raise GeonbError(f"labels={run['labels']!r} goes with one image file as `data`; data={run['data']!r} "
                             "brings its own labels. Drop `labels`, or give the image as `data`.")
        if not 1 <= run["parts"] <= 9:
            raise GeonbError(f"parts={run['parts']}: use 1 to 9 image parts per location.")
        root = None if run["data"] in ("", "dubai") else run["data"]
        locations = aerial.split_locations(run["val_location"], run["test_location"])[split]
        pairs = [p for loc in locations for p in aerial.load_location(loc, aerial.PARTS[:run["parts"]], root)]
    if all((p.classes == aerial.IGNORE).all() for p in pairs):  # the loss and every score would be 0/0
        raise GeonbError(f"the {split} images ({', '.join(p.name for p in pairs)}) have no labelled pixel: every class "
                         f"id is {aerial.IGNORE} (no label). Check the labels: class ids 0 to {len(aerial.NAMES) - 1}, "
                         "or a map in the class colours.")
    return [_with_scheme(p, run["scheme"]) for p in pairs]


def _check_patch(run) -> int:
    patch, multiple = run["patch"], 2 ** run["depth"]
    try:  # the network says which depths it takes (fcn fuses three pooling levels: 3 or more)
        get_arch(run["arch"]).build("generator", width=1, depth=run["depth"])
    except ValueError as exc:
        raise GeonbError(f"depth={run['depth']}: {exc}; give another depth.") from None
    if patch % multiple:
        raise GeonbError(f"patch={patch} is not a multiple of 2^depth = {multiple}: the network halves the crop "
                         f"{run['depth']} times. Use e.g. patch={max(multiple, patch // multiple * multiple)}.")
    return patch


def class_weights(pairs: list[aerial.Pair], n: int) -> np.ndarray:
    return aerial.median_frequency_weights([p.classes for p in pairs], n)
