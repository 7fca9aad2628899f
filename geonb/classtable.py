"""The class table of the Dubai aerial maps: class names, their colours, the no-label id, and the
conversion of colour-coded maps to class ids.

- ``CLASSES``: name → colour; ``UNLABELED`` colours (grey ``#9B9B9B`` and pure black) carry no label.
- ``decode(map)``: RGB map → class index per pixel (``IGNORE`` where unlabeled); a colour
  outside the table is a ``GeonbError`` naming each such colour with its pixel count and
  first position.
- ``palette(flag_colors)``: the 256-colour palette that makes a written class map open in colour.

It sits below every module that handles class maps (``geonb.aerial`` reads and tiles the maps,
``geonb.io`` writes a class map with its ``palette``), so that each of them reads the one table.
"""
from __future__ import annotations

import numpy as np

from .errors import GeonbError

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


def palette(flag_colors: str) -> list[int]:
    """A 256-entry RGB palette (flat) for class ids 0… in ``flag_colors`` (hex, space-separated), the
    no-label id ``IGNORE`` in the unlabeled grey: class maps that open in colour."""
    flat = [0] * 768
    for k, hex_colour in enumerate(flag_colors.split()):
        flat[3 * k:3 * k + 3] = _rgb(hex_colour)
    flat[3 * IGNORE:3 * IGNORE + 3] = UNLABELED_COLOURS[0].tolist()
    return flat

