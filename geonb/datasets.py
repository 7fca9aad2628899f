"""The real datasets that ship inside geonb (``geonb data``): what each is, its licence, its checksum,
and where it lies in the installed package. Nothing is downloaded and nothing outside the package is
read; ``-p data <path>`` still points a task at a user's own files.

Each dataset has a README with its provenance and licence beside it under ``geonb/data/<folder>/``.
A file is checked against its sha256 the first time a process uses it (a folder: every file in it,
by the sha256 of its manifest), so a damaged install is refused instead of trained on.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from . import commands
from .errors import GeonbError

DATA_DIR = Path(__file__).resolve().parent / "data"


@dataclass(frozen=True)
class Dataset:
    name: str
    path: str  # under geonb/data
    title: str
    licence: str
    sha256: str  # of the file, or of a folder's manifest (``manifest``)

    def describe(self) -> str:
        readme = DATA_DIR / Path(self.path).parts[0] / "README.md"
        return f"{self.name}: {self.title}\n  licence: {self.licence}\n  file: {DATA_DIR / self.path}\n  details: {readme}"


DATASETS = {d.name: d for d in (
    Dataset("alboran", "alboran/alboranSST_small.nc",
            "AVHRR Metop-B L3 SST with real clouds, 10 days (May 2017), 201×301 cells of 0.02°, Alboran Sea",
            "Copernicus Marine (free, attribution: 'Generated using E.U. Copernicus Marine Service "
            "Information'), via DINEOF's example (GHER, University of Liège)",
            "d1ccbab330642e47c9c23df046333ce2df2eb30c346acc4d3b806047ddc29e3b"),
    Dataset("antarctica", "antarctica/antarctica_thickness_5km.nc",
            "Antarctic ice thickness and basal drag beta, 1120×1160 cells of 5 km, EPSG:3031",
            "MIT (github.com/ldeo-glaciology/sglake-detectability)",
            "bfd21ba4d7f581167e0fd2be8d442fbd34e807e4fb8925692a960ea2c5e0030c"),
    Dataset("dubai", "dubai_aerial",
            "aerial RGB photos of Dubai with hand-drawn land-cover maps, 7 locations × 9 parts, 5 classes",
            "public domain (CC0): MBRSC imagery annotated by Humans in the Loop",
            "b95c900f3032097367470a2d153b6c515c7538f6afd9e1c5260515b6444912b5"),
)}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def manifest(folder: Path) -> str:
    """'relative/path sha256' per file, sorted: a folder's content as one text (its sha256 is the folder's)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return "".join(f"{p.relative_to(folder).as_posix()} {_sha256(p)}\n" for p in files)


def checksum(path: Path) -> str:
    return hashlib.sha256(manifest(path).encode()).hexdigest() if path.is_dir() else _sha256(path)


@cache
def path(name: str) -> Path:
    """The checked path of a shipped dataset."""
    if name not in DATASETS:
        raise GeonbError(f"no shipped dataset {name!r}; the datasets are {', '.join(DATASETS)} (geonb data lists them).")
    data = DATASETS[name]
    where = DATA_DIR / data.path
    if not where.exists():
        raise GeonbError(f"the shipped dataset {name!r} is missing from this install ({where}); reinstall geonb.")
    if checksum(where) != data.sha256:
        raise GeonbError(f"the shipped dataset {name!r} at {where} is damaged or changed (its sha256 differs from "
                         "the one geonb was released with); reinstall geonb.")
    return where


def _cmd_data(args) -> int:
    for name in args.names or DATASETS:
        print(DATASETS[name].describe() if name in DATASETS else path(name))  # path() refuses unknown names
    return 0


def add_cli(subparsers) -> None:
    p = commands.add(subparsers, "data")
    p.add_argument("names", nargs="*", help=f"datasets to describe (default: all of {', '.join(DATASETS)})")
    p.set_defaults(func=_cmd_data)
