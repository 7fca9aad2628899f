"""Hostile-user attack harness: does geonb refuse bad inputs clearly, keep the user's files and never
answer wrong in silence?

Each case builds its inputs in a fresh temp folder, records the sha256 of every file there, runs one
``python -m geonb …`` command (or a short script against the Python API) as a subprocess with a timeout
and sorts the result into one outcome:

- ``handled well``: a refusal whose one error line names the real problem (the case's regex), or exit 0
  with a result the case's own check verifies;
- ``data lost``: a file that was in the folder before (an input, the user's files) changed or vanished;
- ``silent wrong``: exit 0, but the result fails the case's check (or the case should have been refused);
- ``traceback``: a Python traceback, or geonb's "unexpected error … a bug in geonb" line;
- ``misleading``: a refusal whose message does not name the real problem;
- ``hang``: the command ran past its timeout.

Tiny models are trained once at the start (quick settings, about a minute) and crafted model files are
derived from them. The cases are new variants beyond docs/ERRORS.md and tests/test_*_safety.py;
``control-*`` cases are plain correct uses that show the checks pass on a right answer.

    .venv/bin/python benchmarks/attack.py [--only PATTERN] [--out benchmarks/results/attack.md]
                                          [--jobs 2] [--keep] [--cache DIR]
"""
from __future__ import annotations

import argparse
import collections
import hashlib
import io
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import xarray as xr
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
PY = str(REPO / ".venv" / "bin" / "python") if (REPO / ".venv" / "bin" / "python").exists() else sys.executable
DUBAI = REPO / "geonb" / "data" / "dubai_aerial" / "tile_3"
MODELS = ("srcnn", "dincae", "unet_seg", "pix2pix", "acgan", "unet")  # trained once per run (or --cache)
OUTCOMES = ("handled well", "data lost", "silent wrong", "traceback", "misleading", "hang")
NOBODY = 65534
MEMORY = 6 * 2 ** 30  # per command: a crafted file that asks for terabytes fails here, not on the machine
LOCK = threading.Lock()  # HDF5 is not thread-safe: every in-process NetCDF read or write holds it


# ---------------------------------------------------------------- base data (small, real where cheap)
def dem() -> np.ndarray:
    """matplotlib's 90 m SRTM sample (metres), the same real relief geonb's jacksboro is."""
    import matplotlib.cbook

    return matplotlib.cbook.get_sample_data("jacksboro_fault_dem.npz")["elevation"].astype("float32")


def grid_ds(values=None, step=180.0, var="elevation", units="m") -> xr.Dataset:
    """A (y, x) grid in projected metres; default: 24×24 block means ×2 of relief the model never saw."""
    if values is None:
        hr = dem()[200:248, 300:348]
        values = hr.reshape(24, 2, 24, 2).mean((1, 3))
    ny, nx = values.shape
    return xr.Dataset({var: (("y", "x"), values, {"units": units})},
                      coords={"y": ("y", step * np.arange(ny), {"units": "m"}),
                              "x": ("x", step * np.arange(nx), {"units": "m"})})


def cube_ds(nt=6, ny=32, nx=48, seed=0, offset=0.0, units="degC") -> xr.Dataset:
    """A cloudy SST cube (time, lat, lon) with a land corner and a 0/1 sea mask."""
    rng = np.random.default_rng(seed)
    t, y, x = np.meshgrid(np.arange(nt), np.arange(ny), np.arange(nx), indexing="ij")
    sst = 18 - 0.08 * y + 0.8 * np.sin(x / 6 + t / 3) + 0.5 * np.cos(y / 5 - t / 4) + offset
    sea = np.hypot(np.arange(ny)[:, None] - ny, np.arange(nx)[None, :]) > ny / 2
    blobs = np.stack([sum(np.exp(-((y[0] - cy) ** 2 + (x[0] - cx) ** 2) / 40)
                          for cy, cx in rng.uniform(0, (ny, nx), (4, 2))) for _ in range(nt)])
    values = np.where(sea & (blobs < 0.5), sst, np.nan).astype("float32")
    days = np.datetime64("2020-05-01") + np.arange(nt) * np.timedelta64(1, "D")
    return xr.Dataset({"SST": (("time", "lat", "lon"), values, {"units": units}),
                       "mask": (("lat", "lon"), sea.astype("int8"))},
                      coords={"time": days, "lat": ("lat", 30 + 0.05 * np.arange(ny), {"units": "degrees_north"}),
                              "lon": ("lon", -20 + 0.05 * np.arange(nx), {"units": "degrees_east"})})


def photo(size=128, part="image_part_001") -> np.ndarray:
    """A crop of a real Dubai aerial photo (RGB uint8)."""
    return np.asarray(Image.open(DUBAI / "images" / f"{part}.jpg").convert("RGB"))[100:100 + size, 100:100 + size]


def png_bytes(width: int, height: int) -> bytes:
    """A PNG whose header declares width × height (no valid pixel data beyond the header's claim)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


def jpeg_declaring(data: bytes, height: int, width: int) -> bytes:
    """A JPEG whose SOF header claims another size (the pixel data stays the small one's)."""
    at = data.index(b"\xff\xc0") + 5
    return data[:at] + struct.pack(">HH", height, width) + data[at + 4:]


def save_image(path: Path, array, mode=None, fmt=None) -> Path:
    Image.fromarray(np.asarray(array), mode).save(path, fmt)
    return path


# ---------------------------------------------------------------- trained models, once per run
def train_cache(cache: Path) -> None:
    """Tiny real models: srcnn (downscale), dincae (clouds), unet_seg (segment), pix2pix (translate),
    acgan (generate), unet (inpaint)."""
    with LOCK:
        hr = dem()[:64, :64]
        grid_ds(hr, step=90.0).to_netcdf(cache / "dem.nc")
        cube_ds(seed=1).to_netcdf(cache / "train_cube.nc")
    run_api = "import geonb, shutil; r = geonb.Run({d!r}, arch={a!r}, quick=True); r.step('train'); " \
              "shutil.copy(r.model_path({a!r}), {m!r})"
    commands = {
        "srcnn": ["-m", "geonb", "train", "--arch", "srcnn", "--data", "dem.nc", "--var", "elevation", "--factor", "2",
                  "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "2", "--patch-lr", "4", "--model", "srcnn.pt"],
        "dincae": ["-m", "geonb", "fill", "train_cube.nc", "--var", "SST", "--mask-var", "mask", "--quick",
                   "--save-model", "dincae.pt", "--out", "train_filled.nc"],
        **{a: ["-c", run_api.format(d=str(cache / "runs" / a), a=a, m=f"{a}.pt")]
           for a in MODELS[2:]},
    }

    def train(name):
        done = subprocess.run([PY, *commands[name]], cwd=cache, capture_output=True, text=True, env=base_env(cache))
        if done.returncode or not (cache / f"{name}.pt").exists():
            sys.exit(f"training the {name} model for the cases failed:\n{done.stderr[-3000:]}")

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(train, commands))


def base_env(folder: Path) -> dict:
    """Tool caches and temp files of the command inside the case's own folder."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HOME": str(folder), "MPLCONFIGDIR": str(folder / "mpl"),
           "TMPDIR": str(folder), "NO_COLOR": "1"}
    env.pop("PYTHONPATH", None)
    return env


# ---------------------------------------------------------------- a case's folder and its helpers
class Box:
    """The case's working folder (cwd of the command): copies of cached inputs, crafted files."""

    def __init__(self, root: Path, cache: Path):
        self.root, self.cache = root, cache

    def __truediv__(self, name) -> Path:
        return self.root / name

    def copy(self, name: str) -> str:
        shutil.copy(self.cache / name, self.root / name)
        return name

    def nc(self, name: str, ds: xr.Dataset) -> str:
        ds.to_netcdf(self.root / name)
        return name

    def model(self, base: str, name="model.pt", edit: Callable | None = None, legacy=False, **fields) -> str:
        """A copy of the cached ``base`` model with fields changed (``norms__target=[…]`` sets
        ``saved["norms"]["target"]``) and ``edit(saved)`` applied: a crafted file the user was handed."""
        import torch

        saved = torch.load(self.cache / f"{base}.pt", weights_only=True)
        for key, value in fields.items():
            *parents, last = key.split("__")
            node = saved
            for part in parents:
                node = node[part]
            node[last] = value
        if edit:
            edit(saved)
        torch.save(saved, self.root / name, _use_new_zipfile_serialization=not legacy)
        return name


def geonb(*args) -> list[str]:
    return ["-m", "geonb", *map(str, args)]


API = """\
import sys, numpy as np, xarray as xr, geonb
from geonb.errors import GeonbError

def save(result):
    (result.to_dataset(name=result.name or "result") if isinstance(result, xr.DataArray) else result) \\
        .to_netcdf("out.nc")

def main():
{body}
try:
    main()
except GeonbError as exc:
    print(f"geonb: error: {{exc}}", file=sys.stderr)
    sys.exit(2)
"""


def api(code: str) -> list[str]:
    """A Python-API call: a GeonbError is printed as the CLI prints it; anything else is a traceback."""
    return ["-c", API.format(body=textwrap.indent(textwrap.dedent(code).strip(), "    "))]


def predict(model, src, out="out.nc", *extra) -> list[str]:
    return geonb("predict", "--model", model, "--input", src, "--out", out, *extra)


def fill_cmd(src, out="out.nc", *extra, model="dincae.pt", var="SST", mask="mask") -> list[str]:
    return geonb("fill", src, "--var", var, *(["--mask-var", mask] if mask else []),
                 *(["--model", model] if model else []), "--out", out, *extra)


def run_cmd(*params, quick=True) -> list[str]:
    pairs = [x for name, value in zip(params[::2], params[1::2]) for x in ("-p", name, value)]
    return geonb("run", *(["--quick"] if quick else []), "--run-dir", "runs", *pairs)


# ---------------------------------------------------------------- checks of an exit-0 result
def _opened(path) -> xr.Dataset:
    return xr.open_zarr(path) if str(path).endswith(".zarr") else xr.open_dataset(path)


def downscaled(src="grid.nc", var="elevation", out="out.nc", factor=2, floor=0.0):
    """The output is the input's grid × factor, finite where the input is, and its block means give back
    the input (sorted by coordinates, so a flipped or transposed answer fails) within 0.3 × the input's std
    (at least ``floor``: a model's own error on a flat grid is not the input's fault)."""
    def check(box: Box) -> str | None:
        src_da = xr.open_dataset(box / src)[var].squeeze(drop=True)
        ds = _opened(box / out)
        got = ds[var] if var in ds else next(v for v in ds.data_vars.values() if v.ndim >= 2)
        got = got.squeeze(drop=True).transpose(*src_da.dims).sortby(list(src_da.dims))
        src_da = src_da.sortby(list(src_da.dims))
        if got.shape != tuple(n * factor for n in src_da.shape):
            return f"output shape {got.shape}, expected {tuple(n * factor for n in src_da.shape)}"
        lr, hr = src_da.values.astype(float), got.values.astype(float)
        means = hr.reshape(lr.shape[0], factor, lr.shape[1], factor).mean((1, 3))
        ok = np.isfinite(lr)
        if not np.isfinite(means[ok]).all():
            return f"{int((~np.isfinite(means[ok])).sum())} output blocks are NaN/inf under valid input cells"
        if ok.sum() < 4:
            return "too few valid cells to compare"
        spread = max(float(np.std(lr[ok])), floor, 1e-6 * max(1.0, float(np.abs(lr[ok]).max())))
        rmse = float(np.sqrt(np.mean((means[ok] - lr[ok]) ** 2)))
        if rmse > 0.3 * spread:
            return f"block means of the output differ from the input: RMSE {rmse:.4g} vs the input's std {spread:.4g}"
        return None
    return check


def filled(src="cube.nc", var="SST", out="out.nc", mask="mask", margin=3.0, error=True):
    """Every sea cell finite, observations kept, filled values inside the observed range ± margin, σ > 0
    where filled; dims and units as the input's."""
    def check(box: Box) -> str | None:
        inp = xr.open_dataset(box / src)
        ds = _opened(box / out)
        src_da, got = inp[var], ds[var]
        if got.dims != src_da.dims or got.shape != src_da.shape:
            return f"output {var} has dims {dict(got.sizes)}, the input {dict(src_da.sizes)}"
        if got.attrs.get("units") != src_da.attrs.get("units"):
            return f"output units {got.attrs.get('units')!r}, input {src_da.attrs.get('units')!r}"
        got = got.reindex_like(src_da, method=None)
        sea = (inp[mask] > 0).broadcast_like(src_da).values if mask and mask in inp else np.ones(src_da.shape, bool)
        obs = np.isfinite(src_da.values)
        g = got.values.astype(float)
        if not np.isfinite(g[sea]).all():
            return f"{int((~np.isfinite(g[sea])).sum())} of {int(sea.sum())} sea cells are NaN after the fill"
        if obs.any():
            moved = np.abs(g[obs] - src_da.values[obs]).max()
            if moved > 0.05 + 1e-3 * np.abs(src_da.values[obs]).max():
                return f"observed values changed by up to {moved:.3g}"
            lo, hi = np.nanmin(src_da.values) - margin, np.nanmax(src_da.values) + margin
            gaps = sea & ~obs
            if gaps.any() and not ((g[gaps] >= lo) & (g[gaps] <= hi)).all():
                return (f"filled values {np.nanmin(g[gaps]):.4g} … {np.nanmax(g[gaps]):.4g} outside the observed "
                        f"range {lo + margin:.4g} … {hi - margin:.4g}")
            if error and gaps.any():
                sigma = ds[f"{var}_error"].reindex_like(src_da).values[gaps]
                bad = ~(np.isfinite(sigma) & (sigma > 0))
                if bad.any():
                    return f"σ not finite and positive on {int(bad.sum())} filled cells"
        return None
    return check


def classes(out="out.nc", shape=(128, 128), all_nodata=False):
    """A class map of the photo's shape holding class ids 0–4 (255: no data)."""
    def check(box: Box) -> str | None:
        ids = _opened(box / out)["class"].values
        if ids.shape != shape:
            return f"class map {ids.shape}, photo {shape}"
        if all_nodata:
            classified = int((ids != 255).sum())
            return f"{classified} px classified in a fully transparent photo" if classified else None
        if not np.isin(ids, [0, 1, 2, 3, 4]).all():
            return f"ids outside 0–4: {sorted(set(np.unique(ids)) - {0, 1, 2, 3, 4})}"
        return None
    return check


def same_classes(reference="ref.nc", out="out.nc", at_least=0.9):
    """The class map agrees with the one of the same photo given plainly (made by the case's setup)."""
    def check(box: Box) -> str | None:
        a, b = (_opened(box / n)["class"].values for n in (reference, out))
        if a.shape != b.shape:
            return f"class map {b.shape}, the plain photo's {a.shape}"
        agree = float((a == b).mean())
        return None if agree >= at_least else f"only {agree:.0%} of pixels get the class of the plain RGB photo"
    return check


def digits(count: int, out="out.nc"):
    """``count`` generated 28×28 digits with a label each."""
    def check(box: Box) -> str | None:
        ds = _opened(box / out)
        shape, labels = ds["digit"].shape, ds["label"].size
        return None if shape == (count, 28, 28) and labels == count else f"digits {shape}, {labels} labels"
    return check


def files_exist(*names):
    def check(box: Box) -> str | None:
        missing = [n for n in names if not (box / n).is_file()]
        return f"no output file {missing}" if missing else None
    return check


class Exploit:
    """Pickled as os.system(command): what a hostile model file carries."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


# ---------------------------------------------------------------- the cases
@dataclass
class Case:
    id: str
    kind: str
    tried: str
    make: Callable[[Box], list[str]]  # builds the inputs in the box, returns the python arguments
    expect: str | None = None  # regex a refusal must match (the real problem); None: it must succeed
    check: Callable[[Box], str | None] | None = None  # verifies an exit-0 result; None + expect: exit 0 is wrong
    nobody: bool = False  # run as an unprivileged user (root writes into read-only folders)
    fsize: int | None = None  # file-size limit (bytes) of the command
    timeout: int = 120


def craft(base: str, name="model.pt", edit: Callable | None = None, legacy=False, **fields) -> Callable[[Box], str]:
    """A crafted copy of a cached model (see ``Box.model``), made in the case's box."""
    return lambda box: box.model(base, name, edit=edit, legacy=legacy, **fields)


def _model(box: Box, model) -> str:
    return model(box) if callable(model) else box.copy(model)


def predict_case(grid=grid_ds, *extra, model="srcnn.pt", prepare=None):
    """``geonb predict`` of ``model`` on ``grid()`` written as grid.nc, into out.nc."""
    def make(box: Box) -> list[str]:
        if prepare:
            prepare(box)
        return predict(_model(box, model), box.nc("grid.nc", grid()), "out.nc", *extra)
    return make


def fill_case(cube=cube_ds, *extra, out="out.nc", model="dincae.pt", var="SST", src="cube.nc", prepare=None):
    """``geonb fill`` of ``cube()`` written to ``src`` (with ``--model`` unless model is None), after ``prepare``."""
    def make(box: Box) -> list[str]:
        if prepare:
            prepare(box)
        return fill_cmd(box.nc(src, cube()), out, *extra, model=model and _model(box, model), var=var)
    return make


def image_case(write, name="photo.png", model="unet_seg.pt"):
    """``geonb predict`` of an image model on the file ``write(path)`` makes."""
    def make(box: Box) -> list[str]:
        write(box / name)
        return predict(_model(box, model), name, "out.nc")
    return make


def command_case(*args, copy=(), prepare=None):
    """Any ``geonb`` command line, on copies of cached files and what ``prepare`` makes."""
    def make(box: Box) -> list[str]:
        for name in copy:
            box.copy(name)
        if prepare:
            prepare(box)
        return geonb(*args)
    return make


GRID = "ds = xr.open_dataset('grid.nc')\nda = ds['elevation']\n"
CUBE = "ds = xr.open_dataset('cube.nc')\nda = ds['SST']\n"
RGB = "rgb = np.load('photo.npy')\n"


def api_case(code: str, model="srcnn.pt", grid=None, cube=None, prepare=None):
    """A script on the files it names: grid.nc from ``grid()``, cube.nc from ``cube()``, photo.npy (64² RGB)
    always; ``save(result)`` writes out.nc."""
    def make(box: Box) -> list[str]:
        if model:
            _model(box, model)
        if grid:
            box.nc("grid.nc", grid())
        if cube:
            box.nc("cube.nc", cube())
        np.save(box / "photo.npy", photo(64))
        if prepare:
            prepare(box)
        return api(code)
    return make


def victim(box: Box) -> None:
    """A file of the user's that the exploits in crafted model files delete: data lost if one runs."""
    (box / "victim.txt").write_text("the user's notes\n")


def folder_with(name: str, *files: str):
    def prepare(box: Box) -> None:
        (box / name).mkdir()
        for f in files:
            (box / name / f).write_text(f"the user's {f}\n")
    return prepare


def _jpeg(array) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "JPEG")
    return buf.getvalue()


def _scale_weights(factor):
    def edit(saved):
        saved["weights"] = [{k: v * factor if v.is_floating_point() else v for k, v in w.items()}
                            for w in saved["weights"]]
    return edit


def _bn_negative_variance(saved):
    for w in saved["weights"]:
        for k in w:
            if k.endswith("running_var"):
                w[k] = -w[k].abs() - 1


def _sparse_weight(saved):
    w = saved["weights"][0]
    name = next(k for k, v in w.items() if v.ndim == 4)
    w[name] = w[name].to_sparse()


def _cmyk_jpeg(box: Box) -> list[str]:
    """The CMYK JPEG of a photo, and the RGB JPEG of the same photo classified first as the reference."""
    box.copy("unet_seg.pt")
    rgb = Image.fromarray(photo())
    rgb.save(box / "plain.jpg", quality=95)
    rgb.convert("CMYK").save(box / "photo.jpg", quality=95)
    done = subprocess.run([PY, *predict("unet_seg.pt", "plain.jpg", "ref.nc")], cwd=box.root, capture_output=True,
                          text=True, env=base_env(box.root.parent / "env"))
    if done.returncode:
        raise RuntimeError(f"the reference prediction failed: {done.stdout[-300:]}{done.stderr[-300:]}")
    return predict("unet_seg.pt", "photo.jpg", "out.nc")


LABELS_SIZE = (512, 384)  # rows, columns: enough for segment's quick row bands


def _class_ids(h: int, w: int) -> np.ndarray:
    """Class ids 0–4 of a real Dubai map: each pixel's nearest class colour."""
    colours = np.asarray(Image.open(DUBAI / "masks" / "image_part_002.png").convert("RGB"))[:h, :w].astype(int)
    table = np.array([[0x3C, 0x10, 0x98], [0x84, 0x29, 0xF6], [0x6E, 0xC1, 0xE4], [0xFE, 0xDD, 0x3A],
                      [0xE2, 0xA9, 0x29]])  # building, land, road, vegetation, water
    return np.argmin(((colours[:, :, None, :] - table) ** 2).sum(-1), -1).astype(np.uint8)


def labels_case(labels: Callable[[np.ndarray], np.ndarray]):
    """segment's 01–03 (``Run.step('train')``, as geonb run does) on one photo and a label raster
    ``labels(ids)`` made from its real class ids."""
    def make(box: Box) -> list[str]:
        h, w = LABELS_SIZE
        rgb = np.asarray(Image.open(DUBAI / "images" / "image_part_002.jpg").convert("RGB"))
        save_image(box / "photo.png", rgb[:h, :w])
        save_image(box / "labels.png", labels(_class_ids(h, w)), "L")
        return api("run = geonb.Run('runs', arch='unet_seg', quick=True, data='photo.png', labels='labels.png')\n"
                   "run.step('train')")
    return make


def _poked(ids: np.ndarray, value: int) -> np.ndarray:
    ids = ids.copy()
    ids[10:12, 20:25] = value
    return ids


def _readonly(box: Box) -> None:
    folder_with("ro", "keep.txt")(box)
    os.chmod(box / "ro", 0o555)


def _symlinked_data(box: Box) -> None:
    """data/cube.nc is the input; alias -> data; out/jump -> ../data/sub."""
    (box / "data" / "sub").mkdir(parents=True)
    box.nc("data/cube.nc", cube_ds())
    (box / "alias").symlink_to("data")
    (box / "out").mkdir()
    (box / "out" / "jump").symlink_to("../data/sub")


def _zarr_with_note(box: Box) -> None:
    cube_ds().to_zarr(box / "result.zarr")
    (box / "result.zarr" / "SST" / "README-mine.txt").write_text("how I made this store\n")


def _old_output(box: Box) -> None:
    box.nc("out.nc", xr.Dataset({"note": ("x", np.arange(3.0))}))  # to be kept whole if the new one fails


def _cond_and_link(box: Box) -> None:
    box.nc("cond.nc", xr.open_dataset(box / "dem.nc").rename(elevation="surface"))
    (box / "sr.pt").symlink_to("cond.nc")


def _fifo_model(box: Box) -> str:
    os.mkfifo(box / "m.pt")
    return "m.pt"


def _truncated_srcnn(box: Box) -> str:
    (box / "m.pt").write_bytes((box.cache / "srcnn.pt").read_bytes()[:30_000])
    return "m.pt"


def _all_nan(ds: xr.Dataset, var: str) -> xr.Dataset:
    ds[var][:] = np.nan
    return ds


def _constant(ds: xr.Dataset, var: str, value: float) -> xr.Dataset:
    ds[var] = ds[var].where(ds[var].isnull(), value)
    return ds


def _packed_cube() -> xr.Dataset:
    ds = cube_ds()
    ds["SST"].encoding.update(dtype="int16", scale_factor=0.001, add_offset=20.0, _FillValue=-32768)
    return ds


def _int_grid_with_hole() -> xr.Dataset:
    ds = grid_ds()
    ds["elevation"] = ds["elevation"].round().where((ds.x != ds.x[5]) | (ds.y != ds.y[7]))
    ds["elevation"].encoding.update(dtype="int16", _FillValue=-32768)
    return ds


def _duplicate_x() -> xr.Dataset:
    ds = grid_ds()
    return ds.assign_coords(x=np.r_[ds.x.values[:10], ds.x.values[9], ds.x.values[11:]])


def _cloudy_day(ds: xr.Dataset) -> xr.Dataset:
    ds["SST"][2] = np.nan
    return ds


def _mask_nan_on_land(ds: xr.Dataset) -> xr.Dataset:
    ds["mask"] = ds["mask"].astype("float32").where(ds["mask"] > 0)
    return ds


def _mask_other_grid(ds: xr.Dataset) -> xr.Dataset:
    return ds.drop_vars("mask").assign(mask=(("la2", "lo2"), np.ones((16, 24), "int8")))


def _grid(values: Callable[[], np.ndarray], **kwargs):
    return lambda: grid_ds(values(), **kwargs)


def _elevation():
    return grid_ds()["elevation"].values


def _photo_png(path: Path) -> None:
    save_image(path, photo())


CASES: list[Case] = [
    # ---- controls: plain correct uses, so a failing check is the case's, not the harness's
    Case("control-predict", "control", "srcnn predict on a plain grid", predict_case(), check=downscaled()),
    Case("control-fill", "control", "dincae fill --model on a plain cube", fill_case(), check=filled()),
    Case("control-segment", "control", "unet_seg predict on a plain PNG", image_case(_photo_png), check=classes()),

    # ---- crafted or damaged model files
    Case("model-norm-std-1e-300", "model", "srcnn file with target std 1e-300",
         predict_case(model=craft("srcnn", norms__target=[440.0, 1e-300])), expect="normalis"),
    Case("model-norm-std-1e300", "model", "srcnn file with target std 1e300",
         predict_case(model=craft("srcnn", norms__target=[440.0, 1e300])), expect="normalis"),
    Case("model-norm-mean-inf", "model", "srcnn file with target mean inf",
         predict_case(model=craft("srcnn", norms__target=[float("inf"), 30.0])), expect="normalis"),
    Case("model-sigma-nan", "model", "dincae file, method_args sigma_scale NaN",
         fill_case(model=craft("dincae", method_args__sigma_scale=float("nan"))), expect="sigma"),
    Case("model-sigma-negative", "model", "dincae file, sigma_scale -1.5",
         fill_case(model=craft("dincae", method_args__sigma_scale=-1.5)), expect="sigma"),
    Case("model-sigma-huge", "model", "dincae file, sigma_scale 1e30",
         fill_case(model=craft("dincae", method_args__sigma_scale=1e30)), expect="sigma"),
    Case("model-sigma-string", "model", "dincae file, sigma_scale '1.5' (a string)",
         fill_case(model=craft("dincae", method_args__sigma_scale="1.5")), expect="sigma"),
    Case("model-factor-4096", "model", "srcnn file, arch_args factor 4096",
         predict_case(model=craft("srcnn", arch_args__factor=4096)), expect="factor"),
    Case("model-factor-0", "model", "srcnn file, arch_args factor 0",
         predict_case(model=craft("srcnn", arch_args__factor=0)), expect="factor"),
    Case("model-factor-minus-2", "model", "srcnn file, arch_args factor -2",
         predict_case(model=craft("srcnn", arch_args__factor=-2)), expect="factor"),
    Case("model-factor-bool", "model", "srcnn file, arch_args factor True (a bool)",
         predict_case(model=craft("srcnn", arch_args__factor=True)), expect="factor"),
    Case("model-width-huge", "model", "unet_seg file, arch_args width 100000 (~10^11 weights)",
         image_case(_photo_png, model=craft("unet_seg", arch_args__width=100_000)),
         expect=r"width|parameters|too (big|large)|allows"),
    Case("model-format-3", "model", "format 'geonb-model/3' (a newer geonb's file)",
         predict_case(model=craft("srcnn", format="geonb-model/3")), expect=r"newer.*upgrade|upgrade.*newer"),
    Case("model-format-10", "model", "format 'geonb-model/10' (string order puts it below /2)",
         predict_case(model=craft("srcnn", format="geonb-model/10")), expect=r"newer.*upgrade|upgrade.*newer"),
    Case("model-format-2-1", "model", "format 'geonb-model/2.1'",
         predict_case(model=craft("srcnn", format="geonb-model/2.1")), expect=r"format"),
    Case("model-truncated", "model", "srcnn file cut to its first 30 000 bytes", predict_case(model=_truncated_srcnn),
         expect=r"truncated|corrupt|cannot read"),
    Case("model-exploit-in-weights", "model", "torch file whose weights list holds os.system('rm victim.txt')",
         predict_case(model=craft("srcnn", weights=[Exploit("rm -f victim.txt")]), prepare=victim),
         expect=r"not a geonb model file"),
    Case("model-exploit-legacy-format", "model", "the same exploit in norms, torch's legacy (non-zip) format",
         predict_case(model=craft("srcnn", legacy=True, norms__target=Exploit("rm -f victim.txt")), prepare=victim),
         expect=r"not a geonb model file"),
    Case("model-window-even", "model", "dincae file with inputs window 4 (its network takes 3 days)",
         fill_case(model=craft("dincae", inputs__window=4)), expect=r"window"),
    Case("model-latent-mismatch", "model", "acgan file: inputs latent 50, network latent 100",
         command_case("generate", "--model", "m.pt", "--per-class", 2, "--out", "out.nc",
                      prepare=craft("acgan", name="m.pt", inputs__latent=50)), expect=r"latent", check=digits(20)),
    Case("model-classes-short", "model", "unet_seg file naming 2 classes for its 5-class network",
         image_case(_photo_png, model=craft("unet_seg", inputs__classes=["land", "water"])), expect=r"class",
         check=lambda b: None if len(str(_opened(b / "out.nc")["class"].attrs.get("flag_meanings", "")).split()) == 5
         else "a 5-class map written with 2 class names"),
    Case("model-task-arch-mismatch", "model", "a dincae network labelled task 'downscale'",
         predict_case(model=craft("dincae", task="downscale")), expect=r"dincae|clouds"),
    Case("model-fifo", "model", "--model is a FIFO nobody writes to", predict_case(model=_fifo_model),
         expect=r"fifo|not a (regular )?file|not a geonb model"),
    Case("model-inpaint-prefill-unknown", "model", "unet (inpaint) file with inputs prefill 'magic'",
         predict_case(cube_ds, "--var", "SST", "--mask-var", "mask", model=craft("unet", inputs__prefill="magic")),
         expect=r"prefill"),
    Case("model-bn-negative-variance", "model", "unet_seg file with BatchNorm running_var < 0 (finite, impossible)",
         image_case(_photo_png, model=craft("unet_seg", edit=_bn_negative_variance)),
         expect=r"running_var|variance|batch ?norm|weights"),
    Case("model-weights-1e37", "model", "srcnn weights ×1e37 (finite; the outputs overflow)",
         predict_case(model=craft("srcnn", edit=_scale_weights(1e37))), expect=r"weights|overflow|infinite",
         check=downscaled()),
    Case("model-weights-sparse", "model", "srcnn file with one sparse weight tensor",
         predict_case(model=craft("srcnn", edit=_sparse_weight)), expect=r"weights|sparse"),

    # ---- parameters
    Case("param-run-epochs-1e12", "params", "geonb run -p epochs 1000000000000",
         lambda b: run_cmd("epochs", "1000000000000"), expect=r"epochs"),
    Case("param-run-epochs-expr", "params", "geonb run -p epochs 10**12", lambda b: run_cmd("epochs", "10**12"),
         expect=r"epochs"),
    Case("param-run-batch-0", "params", "geonb run -p batch_size 0", lambda b: run_cmd("batch_size", "0"),
         expect=r"batch_size"),
    Case("param-run-lr-nan", "params", "geonb run -p lr nan", lambda b: run_cmd("lr", "nan"), expect=r"\blr\b"),
    Case("param-run-lr-1e400", "params", "geonb run -p lr 1e400 (parses as inf)", lambda b: run_cmd("lr", "1e400"),
         expect=r"\blr\b"),
    Case("param-run-seed-negative", "params", "geonb run -p seed -1", lambda b: run_cmd("seed", "-1"), expect=r"seed"),
    Case("param-run-unknown", "params", "geonb run -p frobnicate 3", lambda b: run_cmd("frobnicate", "3"),
         expect=r"frobnicate"),
    Case("param-run-n-blocks", "params", "geonb run -p arch srgan -p n_blocks 100000",
         lambda b: run_cmd("arch", "srgan", "n_blocks", "100000"), expect=r"n_blocks"),
    Case("param-run-per-class", "params", "geonb run -p arch acgan -p per_class 1000000000",
         lambda b: run_cmd("arch", "acgan", "per_class", "1000000000"), expect=r"per_class"),
    Case("param-run-ddp-1000", "params", "geonb run -p ddp 1000", lambda b: run_cmd("ddp", "1000"), expect=r"ddp"),
    Case("param-generate-per-class", "params", "geonb generate --per-class 1000000000",
         command_case("generate", "--model", "acgan.pt", "--per-class", 10 ** 9, "--out", "out.nc", copy=["acgan.pt"]),
         expect=r"per.class"),
    Case("param-generate-seed-negative", "params", "geonb generate --seed -5",
         command_case("generate", "--model", "acgan.pt", "--seed", -5, "--out", "out.nc", copy=["acgan.pt"]),
         expect=r"seed"),
    Case("param-train-n-blocks", "params", "geonb train --arch srgan --n-blocks 100000",
         command_case("train", "--arch", "srgan", "--data", "dem.nc", "--n-blocks", 100000, "--model", "m.pt",
                      copy=["dem.nc"]), expect=r"n.blocks"),
    Case("param-train-factor-4096", "params", "geonb train --factor 4096",
         command_case("train", "--arch", "srcnn", "--data", "dem.nc", "--factor", 4096, "--model", "m.pt",
                      copy=["dem.nc"]), expect=r"factor"),
    Case("param-train-lr-negative", "params", "geonb train --lr -0.001",
         command_case("train", "--arch", "srcnn", "--data", "dem.nc", "--lr", "-0.001", "--model", "m.pt",
                      copy=["dem.nc"]), expect=r"\blr\b"),
    Case("param-train-valid-above-nan", "params", "geonb train --valid-above nan",
         command_case("train", "--arch", "srcnn", "--data", "dem.nc", "--valid-above", "nan", "--model", "m.pt",
                      copy=["dem.nc"]), expect=r"valid.above"),
    Case("param-fill-window-even", "params", "geonb fill --quick --window 4 (its help: odd)",
         fill_case(cube_ds, "--quick", "--window", 4, model=None), expect=r"window|odd"),
    Case("param-predict-tile-1e9", "params", "geonb predict --tile 1000000000",
         predict_case(grid_ds, "--tile", 10 ** 9), expect=r"tile"),

    # ---- grids
    Case("grid-fill-all-nan", "grid", "fill a cube whose SST is NaN everywhere",
         fill_case(lambda: _all_nan(cube_ds(), "SST")), expect=r"NaN|no (valid|observ)|missing|nothing"),
    Case("grid-predict-all-nan", "grid", "predict on a grid that is NaN everywhere",
         predict_case(lambda: _all_nan(grid_ds(), "elevation")), expect=r"NaN|no valid|missing"),
    Case("grid-fill-constant", "grid", "fill --quick (training on it) a cube whose observed SST is 20.0 everywhere",
         fill_case(lambda: _constant(cube_ds(), "SST", 20.0), "--quick", model=None), expect=r"constant|no variation",
         check=filled(margin=0.5)),
    Case("grid-predict-constant", "grid", "predict on a flat grid (500 m everywhere)",
         predict_case(lambda: _constant(grid_ds(), "elevation", 500.0)), expect=r"constant|no variation",
         check=downscaled(floor=10.0)),
    Case("grid-fill-packed-int16", "grid", "fill an int16 cube with scale_factor, add_offset and _FillValue",
         fill_case(_packed_cube), check=filled()),
    Case("grid-predict-int16-fillvalue", "grid", "predict on an int16 grid with _FillValue -32768 and one hole",
         predict_case(_int_grid_with_hole), expect=r"NaN|gap|complete", check=downscaled()),
    Case("grid-predict-descending-y", "grid", "predict on a grid stored with y descending",
         predict_case(lambda: grid_ds().isel(y=slice(None, None, -1))), check=downscaled()),
    Case("grid-predict-transposed", "grid", "predict on a grid stored (x, y) instead of (y, x)",
         predict_case(lambda: grid_ds().transpose("x", "y")), check=downscaled()),
    Case("grid-predict-1xN", "grid", "predict on a 1×64 grid", predict_case(_grid(lambda: dem()[:1, :64])),
         expect=r"small|at least|1×64|cells"),
    Case("grid-fill-lat-beyond-90", "grid", "fill a cube whose lat runs 100…101.55",
         fill_case(lambda: cube_ds().assign_coords(lat=100 + 0.05 * np.arange(32))),
         expect=r"lat.*(90|range|outside)|(90|range|outside).*lat"),
    Case("grid-predict-duplicate-x", "grid", "predict on a grid whose x repeats one value",
         predict_case(_duplicate_x), expect=r"repeat|duplicate"),
    Case("grid-fill-one-day", "grid", "fill a cube with a single time step",
         fill_case(lambda: cube_ds().isel(time=[2])), expect=r"time|day|step", check=filled()),
    Case("grid-fill-var-is-coordinate", "grid", "fill --var lat (a coordinate, not the field)",
         fill_case(var="lat"), expect=r"lat.*(coordinate|dimension|grid|dims)|(coordinate|dimension).*lat"),
    Case("grid-fill-kelvin-degc-model", "grid", "a dincae model trained in degC fills a cube in K (units 'K')",
         fill_case(lambda: cube_ds(offset=273.15, units="K")), expect=r"units|degC|\bK\b|range", check=filled()),
    Case("grid-predict-km-m-model", "grid", "an srcnn trained in m predicts a grid in km (units 'km')",
         predict_case(_grid(lambda: _elevation() / 1000, units="km")), expect=r"units|km|range",
         check=downscaled()),
    Case("grid-predict-4e29", "grid", "predict on relief ×1e27 (~4e29, inside float32, no outliers)",
         predict_case(_grid(lambda: _elevation() * 1e27)), expect=r"range|trained|large|float32",
         check=downscaled()),
    Case("grid-fill-transposed", "grid", "fill a cube stored (time, lon, lat)",
         fill_case(lambda: cube_ds().transpose("time", "lon", "lat")), check=filled()),
    Case("grid-fill-mask-other-grid", "grid", "fill with a mask on another 16×24 grid",
         fill_case(lambda: _mask_other_grid(cube_ds())), expect=r"mask"),
    Case("grid-fill-cloudy-day", "grid", "fill a cube with one day entirely under cloud",
         fill_case(lambda: _cloudy_day(cube_ds())), expect=r"day|time|no (valid|observ)", check=filled()),
    Case("grid-fill-mask-nan-land", "grid", "fill with a float mask: 1 on sea, NaN on land",
         fill_case(lambda: _mask_nan_on_land(cube_ds())), check=filled()),
    Case("grid-fill-time-ints", "grid", "fill a cube whose time is plain ints 0…5 (no units)",
         fill_case(lambda: cube_ds().assign_coords(time=np.arange(6))), expect=r"time", check=filled()),
    Case("grid-inpaint-odd-size", "grid", "inpaint (unet) predict on a 30×45 cube, not a multiple of its pooling",
         predict_case(lambda: cube_ds(ny=30, nx=45), "--var", "SST", "--mask-var", "mask", model="unet.pt"),
         check=filled(src="grid.nc", error=False)),
    Case("grid-inpaint-kelvin", "grid", "an inpaint unet trained on HadISST degC fills a cube in K",
         predict_case(lambda: cube_ds(offset=273.15, units="K"), "--var", "SST", "--mask-var", "mask", model="unet.pt"),
         expect=r"units|degC|\bK\b|range", check=filled(src="grid.nc", error=False)),
    Case("grid-predict-band-dim", "grid", "predict on a (band=1, y, x) grid",
         predict_case(lambda: grid_ds().expand_dims(band=[1])), expect=r"band", check=downscaled()),

    # ---- images
    Case("image-empty-file", "image", "segment predict on an empty photo.png", image_case(lambda p: p.write_bytes(b"")),
         expect=r"empty|0 bytes|not an image|truncated|corrupt"),
    Case("image-0x0-png", "image", "segment predict on a PNG declaring 0×0 px",
         image_case(lambda p: p.write_bytes(png_bytes(0, 0))),
         expect=r"0×0|0x0|empty|no pixels|corrupt|truncated|not a readable"),
    Case("image-cmyk-jpeg", "image", "segment predict on a CMYK JPEG (the same photo in RGB as reference)",
         _cmyk_jpeg, expect=r"CMYK", check=same_classes()),
    Case("image-grey-png", "image", "segment predict on a greyscale PNG",
         image_case(lambda p: Image.fromarray(photo()).convert("L").save(p)), expect=r"grey|gray|band",
         check=classes()),
    Case("image-grey-jpeg-translate", "image", "translate (pix2pix) predict on a greyscale JPEG",
         image_case(lambda p: Image.fromarray(photo()).convert("L").save(p), name="photo.jpg", model="pix2pix.pt"),
         expect=r"grey|gray|band",
         check=lambda b: None if _opened(b / "out.nc")["map"].shape == (128, 128, 3) else "a map of the wrong shape"),
    Case("image-1x1-png", "image", "segment predict on a 1×1 px PNG",
         image_case(lambda p: save_image(p, photo()[:1, :1])),
         expect=r"small|at least|1×1|px", check=classes(shape=(1, 1))),
    Case("image-png-named-jpg", "image", "segment predict on a PNG named photo.jpg",
         image_case(lambda p: save_image(p, photo(), fmt="PNG"), name="photo.jpg"), check=classes()),
    Case("image-truncated-jpeg", "image", "segment predict on a JPEG cut to half its bytes",
         image_case(lambda p: p.write_bytes(_jpeg(photo(256))[:len(_jpeg(photo(256))) // 2]), name="photo.jpg"),
         expect=r"truncated|corrupt|damaged"),
    Case("image-jpeg-declares-60000", "image", "a JPEG whose header declares 60000×60000 px (data of 128²)",
         image_case(lambda p: p.write_bytes(jpeg_declaring(_jpeg(photo()), 60000, 60000)), name="photo.jpg"),
         expect=r"declares|Mpx|decompression"),
    Case("image-fully-transparent", "image", "segment predict on an RGBA PNG with alpha 0 everywhere",
         image_case(lambda p: save_image(p, np.dstack([photo(), np.zeros((128, 128), np.uint8)]), "RGBA")),
         check=classes(all_nodata=True)),
    Case("image-netcdf-band-first", "image", "segment predict on a NetCDF photo (band, y, x) uint8",
         image_case(lambda p: xr.Dataset({"rgb": (("band", "y", "x"), photo().transpose(2, 0, 1))}).to_netcdf(p),
                    name="photo.nc"), check=classes()),
    Case("image-labels-one-px-short", "image", "segment 01-03: labels one column short of the photo",
         labels_case(lambda ids: ids[:, :-1]), expect=r"shape|same size|px"),
    Case("image-labels-id-out-of-range", "image", "segment 01-03: labels holding class id 7 in 10 px",
         labels_case(lambda ids: _poked(ids, 7)), expect=r"\b7\b"),
    Case("image-labels-all-unlabelled", "image", "segment 01-03: labels 255 (no label) everywhere",
         labels_case(lambda ids: np.full_like(ids, 255)), expect=r"no label|unlabel|labelled"),

    # ---- output paths
    Case("out-input-via-symlinked-folder", "output",
         "fill --out alias/cube.nc --overwrite; alias -> data/, the input's folder",
         fill_case(cube_ds, "--overwrite", src="data/cube.nc", out="alias/cube.nc", prepare=_symlinked_data),
         expect=r"input"),
    Case("out-input-via-link-dotdot", "output", "fill --out out/jump/../cube.nc; jump -> ../data/sub: the input",
         fill_case(cube_ds, src="data/cube.nc", out="out/jump/../cube.nc", prepare=_symlinked_data), expect=r"input"),
    Case("out-readonly-folder", "output", "fill --out ro/out.nc; ro/ is mode 555 (run as nobody)",
         fill_case(out="ro/out.nc", prepare=_readonly), expect=r"permission|writ", nobody=True),
    Case("out-existing-directory", "output", "fill --out results.nc; results.nc is a folder of the user's",
         fill_case(out="results.nc", prepare=folder_with("results.nc", "a.txt")), expect=r"folder|directory|exists"),
    Case("out-overwrite-zarr-with-note", "output", "fill --out result.zarr --overwrite; the user's note in SST/",
         fill_case(cube_ds, "--overwrite", out="result.zarr", prepare=_zarr_with_note),
         expect=r"more than|holds|README"),
    Case("out-trailing-slash", "output", "fill --out result.nc/ (trailing slash, nothing there yet)",
         fill_case(out="result.nc/"), expect=r"slash|folder|directory|file path", check=files_exist("result.nc")),
    Case("out-dev-full", "output", "fill --out /dev/full --overwrite",
         fill_case(cube_ds, "--overwrite", out="/dev/full"),
         expect=r"device|not a (regular )?file"),
    Case("out-file-size-limit", "output", "fill --out out.nc --overwrite under a 40 kB file-size limit (EFBIG)",
         fill_case(lambda: cube_ds(nt=12, ny=48, nx=64), "--overwrite", prepare=_old_output),
         expect=r"too large|size limit|file size|space|full", fsize=40_000),
    Case("out-name-too-long", "output", "fill --out <300 a's>.nc", fill_case(out="a" * 300 + ".nc"),
         expect=r"too long|name"),
    Case("out-work-dir-user-folder", "output", "fill --quick --work-dir project/, the user's folder with files",
         fill_case(cube_ds, "--quick", "--work-dir", "project", model=None,
                   prepare=folder_with("project", "notes.md", "analysis.py", "last.pt")), check=filled()),
    Case("out-csv-suffix", "output", "fill --out result.csv", fill_case(out="result.csv"),
         expect=r"\.csv|format|extension|suffix"),
    Case("out-tif-for-cube", "output", "fill --out result.tif (a 3-D cube as GeoTIFF)", fill_case(out="result.tif"),
         expect=r"tif|2-D|format"),
    Case("out-generate-onto-model-link", "output", "generate --out digits.nc --overwrite; digits.nc -> acgan.pt",
         command_case("generate", "--model", "acgan.pt", "--per-class", 2, "--out", "digits.nc", "--overwrite",
                      copy=["acgan.pt"], prepare=lambda b: (b / "digits.nc").symlink_to("acgan.pt")), expect=r"input"),
    Case("out-train-model-onto-cond", "output", "train --model sr.pt --overwrite; sr.pt -> cond.nc, the --cond grid",
         command_case("train", "--arch", "srcnn", "--data", "dem.nc", "--var", "elevation", "--factor", 2,
                      "--cond", "cond.nc:surface", "--model", "sr.pt", "--overwrite", "--epochs", 1, "--steps-per-epoch", 1,
                      copy=["dem.nc"], prepare=_cond_and_link), expect=r"input"),
    Case("out-save-model-folder", "output",
         "fill --quick --save-model models --overwrite; models/ is the user's folder",
         fill_case(cube_ds, "--quick", "--save-model", "models", "--overwrite", model=None,
                   prepare=folder_with("models", "old.pt")), expect=r"folder|directory"),

    # ---- the Python API
    Case("api-downscale-std-tiny", "api", "da.geonb.downscale(model=<a file with target std 1e-300>)",
         api_case(GRID + "save(da.geonb.downscale(model='m.pt'))", grid=grid_ds,
                  model=craft("srcnn", name="m.pt", norms__target=[440.0, 1e-300])), expect=r"normalis"),
    Case("api-fill-all-nan", "api", "geonb.fill(<an all-NaN DataArray>, model=…)",
         api_case(CUBE + "save(geonb.fill(da * np.nan, mask=ds['mask'], model='dincae.pt'))", model="dincae.pt",
                  cube=cube_ds), expect=r"NaN|no (valid|observ)|missing|nothing"),
    Case("api-downscale-clouds-model", "api", "da.geonb.downscale(model=<a dincae file>)",
         api_case(GRID + "save(da.geonb.downscale(model='dincae.pt'))", model="dincae.pt", grid=grid_ds),
         expect=r"downscale"),
    Case("api-downscale-tile-0", "api", "da.geonb.downscale(model, tile=0)",
         api_case(GRID + "save(da.geonb.downscale(model='srcnn.pt', tile=0))", grid=grid_ds), expect=r"tile"),
    Case("api-downscale-tile-negative", "api", "da.geonb.downscale(model, tile=-3)",
         api_case(GRID + "save(da.geonb.downscale(model='srcnn.pt', tile=-3))", grid=grid_ds), expect=r"tile"),
    Case("api-downscale-tile-float", "api", "da.geonb.downscale(model, tile=16.5)",
         api_case(GRID + "save(da.geonb.downscale(model='srcnn.pt', tile=16.5))", grid=grid_ds), expect=r"tile",
         check=downscaled()),
    Case("api-fill-epochs-0", "api", "da.geonb.fill(arch='dincae', epochs=0)",
         api_case(CUBE + "save(da.geonb.fill(arch='dincae', mask=ds['mask'], epochs=0))", model=None, cube=cube_ds),
         expect=r"epochs"),
    Case("api-fill-unknown-arch", "api", "da.geonb.fill(arch='dincea') (a typo)",
         api_case(CUBE + "save(da.geonb.fill(arch='dincea', mask=ds['mask']))", model=None, cube=cube_ds),
         expect=r"dincea"),
    Case("api-fill-window-string", "api", "geonb.fill(da, window='3', quick=True)",
         api_case(CUBE + "save(geonb.fill(da, mask=ds['mask'], window='3', quick=True))", model=None, cube=cube_ds),
         expect=r"window"),
    Case("api-segment-rgba", "api", "xr.DataArray(<RGBA y×x×4>).geonb.segment(model)",
         api_case(RGB + "rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])\n"
                  "save(xr.DataArray(rgba, dims=('y', 'x', 'band')).geonb.segment(model='unet_seg.pt'))",
                  model="unet_seg.pt"), expect=r"band|RGB"),
    Case("api-segment-3x3x3", "api", "segment a 3×3 px RGB image: every dim has size 3",
         api_case(RGB + "save(xr.DataArray(rgb[:3, :3], dims=('y', 'x', 'band')).geonb.segment(model='unet_seg.pt'))",
                  model="unet_seg.pt"), expect=r"band|dims|ambiguous|small"),
    Case("api-segment-downscale-model", "api", "da.geonb.segment(model=<an srcnn file>)",
         api_case(RGB + "save(xr.DataArray(rgb, dims=('y', 'x', 'band')).geonb.segment(model='srcnn.pt'))"),
         expect=r"segment"),
    Case("api-fill-masked-array", "api", "geonb.fill on a DataArray of a numpy masked array (clouds masked)",
         api_case(CUBE + "da2 = xr.DataArray(np.ma.masked_invalid(da.values), dims=da.dims, coords=da.coords,\n"
                  "                   name='SST', attrs=da.attrs)\n"
                  "save(geonb.fill(da2, mask=ds['mask'], model='dincae.pt'))", model="dincae.pt", cube=cube_ds),
         check=filled()),
    Case("api-downscale-int16-raw", "api", "downscale an int16 DataArray read with mask_and_scale=False",
         api_case("da = xr.open_dataset('grid.nc', mask_and_scale=False)['elevation']\n"
                  "save(da.geonb.downscale(model='srcnn.pt'))", grid=_int_grid_with_hole),
         expect=r"-32768|_FillValue|no-data", check=downscaled()),
    Case("api-fill-mask-other-grid", "api", "geonb.fill(da, mask=<a mask on another grid>)",
         api_case(CUBE + "mask = xr.DataArray(np.ones((16, 24), 'int8'), dims=('lat', 'lon'),\n"
                  "                    coords={'lat': 40 + np.arange(16.0), 'lon': np.arange(24.0)})\n"
                  "save(geonb.fill(da, mask=mask, model='dincae.pt'))", model="dincae.pt", cube=cube_ds),
         expect=r"mask"),
    Case("api-fill-save-model-folder", "api", "da.geonb.fill(quick=True, save_model=<a folder>, overwrite=True)",
         api_case(CUBE + "save(da.geonb.fill(mask=ds['mask'], quick=True, save_model='models', overwrite=True))",
                  model=None, cube=cube_ds, prepare=folder_with("models", "mine.pt")), expect=r"folder|directory"),
    Case("api-downscale-missing-model", "api", "da.geonb.downscale(model='nope.pt')",
         api_case(GRID + "save(da.geonb.downscale(model='nope.pt'))", grid=grid_ds), expect=r"nope\.pt|no such"),
    Case("api-downscale-descending", "api", "da.geonb.downscale on a DataArray with y descending",
         api_case(GRID + "save(da.isel(y=slice(None, None, -1)).geonb.downscale(model='srcnn.pt'))", grid=grid_ds),
         check=downscaled()),
]


# ---------------------------------------------------------------- running and sorting
@dataclass
class Result:
    case: Case
    outcome: str
    message: str
    seconds: float


def snapshot(root: Path) -> dict:
    """sha256 of every file (a link: its target) under ``root``."""
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, root)
            if os.path.islink(path):
                found[rel] = "link -> " + os.readlink(path)
            elif os.path.isfile(path):
                with open(path, "rb") as f:
                    found[rel] = hashlib.sha256(f.read()).hexdigest()
    return found


TRACEBACK = re.compile(r"Traceback \(most recent call last\)|unexpected error|a bug in geonb")


def error_line(text: str) -> str:
    """The line that explains a failure: geonb's error line (with the last line of the traceback file it
    names), a traceback's exception line, or the last line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if "unexpected error" in text:
        line = next(line for line in lines if "unexpected error" in line)
        log = re.search(r"full traceback in (\S+?);", line)
        if log and os.path.exists(log[1]):
            last = [x for x in Path(log[1]).read_text().splitlines() if x.strip()][-1]
            return f"{line.split(' (a bug')[0]} [traceback ends: {last.strip()}]"
        return line
    if "Traceback (most recent call last)" in text:
        return next((line for line in reversed(lines) if re.match(r"[\w.]+(Error|Exception)\b", line)), lines[-1])
    return next((line for line in lines if "error:" in line), lines[-1] if lines else "")


def classify(case: Case, box: Box, before: dict, returncode: int, output: str) -> tuple[str, str]:
    """(outcome, message), the worst first: lost data, a crash, a wrong exit 0, a refusal's wording."""
    after = snapshot(box.root)
    lost = sorted(k for k, v in before.items() if after.get(k) != v)
    if lost:
        how = ", ".join(f"{k} {'removed' if k not in after else 'changed'}" for k in lost[:3])
        return "data lost", f"{how}; {error_line(output)}"
    if returncode < 0:
        return "traceback", f"killed by signal {-returncode}"
    if TRACEBACK.search(output):
        return "traceback", error_line(output)
    if returncode == 0:
        if case.check is None:
            return ("silent wrong", "exit 0: accepted where a refusal was due") if case.expect \
                else ("handled well", "exit 0")
        try:
            problem = case.check(box)
        except Exception as exc:  # an output missing or unreadable is the command's fault
            problem = f"output unreadable: {type(exc).__name__}: {exc}"
        return ("silent wrong", f"exit 0: {problem}") if problem else ("handled well", "exit 0, result checked")
    line = error_line(output)
    return ("handled well" if case.expect and re.search(case.expect, line, re.IGNORECASE) else "misleading"), line


def run_case(case: Case, cache: Path, keep: bool) -> Result:
    """The case in its own temp folder: work/ (the command's cwd, watched) and env/ (caches, temp files);
    the command's output is left in output.txt (see --keep)."""
    top = Path(tempfile.mkdtemp(prefix=f"geonb-attack-{case.id}-"))
    box, env_dir = Box(top / "work", cache), top / "env"
    box.root.mkdir()
    env_dir.mkdir()
    start = time.perf_counter()
    try:
        with LOCK:
            argv = case.make(box)
            before = snapshot(box.root)
        prefix = []
        if case.nobody and os.geteuid() == 0:
            for path in (top, box.root, env_dir):
                os.chmod(path, 0o777)
            prefix = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
        limits = [f"--as={MEMORY}"] + ([f"--fsize={case.fsize}"] if case.fsize else [])
        proc = subprocess.Popen(["prlimit", *limits, "--", *prefix, PY, *argv], cwd=box.root, env=base_env(env_dir),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            output, _ = proc.communicate(timeout=case.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the command and its children (papermill kernels)
            output, _ = proc.communicate()
            (top / "output.txt").write_text(output)
            return Result(case, "hang", f"no answer within {case.timeout} s", time.perf_counter() - start)
        seconds = time.perf_counter() - start
        (top / "output.txt").write_text(output)
        with LOCK:
            return Result(case, *classify(case, box, before, proc.returncode, output), seconds)
    except Exception as exc:
        return Result(case, "traceback", f"HARNESS: {type(exc).__name__}: {exc}", time.perf_counter() - start)
    finally:
        if keep:
            print(f"  {case.id}: kept {top}", flush=True)
        else:
            for folder, dirs, _ in os.walk(top):  # read-only folders made by a case
                for d in dirs:
                    if not os.path.islink(os.path.join(folder, d)):
                        os.chmod(os.path.join(folder, d), 0o755)
            shutil.rmtree(top, ignore_errors=True)


def report(results: list[Result], seconds: float, out: Path) -> collections.Counter:
    """Writes the Markdown table (failures first) and returns the count per outcome of the non-controls."""
    def cell(text: str) -> str:
        text = " ".join(str(text).split())
        return (text[:220] + "…" if len(text) > 220 else text).replace("|", "\\|")

    counts = collections.Counter(r.outcome for r in results if r.case.kind != "control")
    git = lambda *a: subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True).stdout.strip()  # noqa: E731
    commit = git("rev-parse", "--short", "HEAD")
    dirty = git("status", "--porcelain", "geonb")
    lines = [
        "# Attack harness: hostile and careless inputs",
        "",
        f"`python benchmarks/attack.py` at commit {commit}{' with uncommitted changes in geonb/' if dirty else ''}, "
        f"{time.strftime('%Y-%m-%d')}: {sum(counts.values())} cases (+ {len(results) - sum(counts.values())} controls) "
        f"in {seconds / 60:.1f} min on {os.cpu_count()} CPU cores.",
        "",
        "| outcome | cases |",
        "| --- | --- |",
        *[f"| {o} | {counts.get(o, 0)} |" for o in OUTCOMES],
        "",
        "| case | kind | what was tried | outcome | first line of the message |",
        "| --- | --- | --- | --- | --- |",
        *[f"| {r.case.id} | {r.case.kind} | {cell(r.case.tried)} | {r.outcome} | {cell(r.message)} |"
          for r in sorted(results, key=lambda r: (r.outcome == "handled well", r.case.kind == "control", r.case.id))],
        "",
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description="geonb's hostile-user attack harness (see the module docstring).")
    parser.add_argument("--only", help="run the cases whose id matches this regex")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "attack.md",
                        help="the Markdown table of results")
    parser.add_argument("--jobs", type=int, default=2, help="cases run at once")
    parser.add_argument("--keep", action="store_true", help="keep each case's temp folder (to debug a case)")
    parser.add_argument("--cache", type=Path, help="keep the trained models here and reuse them in later runs")
    args = parser.parse_args()
    repeated = [i for i, n in collections.Counter(c.id for c in CASES).items() if n > 1]
    if repeated:
        sys.exit(f"case ids must be unique: {repeated}")
    cases = [c for c in CASES if not args.only or re.search(args.only, c.id)]
    start = time.perf_counter()
    cache = args.cache or Path(tempfile.mkdtemp(prefix="geonb-attack-cache-"))
    cache.mkdir(parents=True, exist_ok=True)
    try:
        if not all((cache / f"{name}.pt").exists() for name in MODELS):
            print(f"training the tiny models in {cache} …", flush=True)
            train_cache(cache)
        print(f"models ready after {time.perf_counter() - start:.0f} s; {len(cases)} cases", flush=True)

        def one(case):
            result = run_case(case, cache, args.keep)
            print(f"{result.outcome:13s} {result.seconds:6.1f} s  {case.id}: {result.message[:140]}", flush=True)
            return result

        with ThreadPoolExecutor(args.jobs) as pool:
            results = list(pool.map(one, cases))
    finally:
        if not (args.keep or args.cache):
            shutil.rmtree(cache, ignore_errors=True)
    seconds = time.perf_counter() - start
    counts = report(results, seconds, args.out)
    for r in results:
        if r.case.kind == "control" and r.outcome != "handled well":
            print(f"WARNING: control {r.case.id} failed, so its checks are suspect: {r.message}")
    print(f"{len(results)} cases in {seconds / 60:.1f} min: " + ", ".join(f"{o} {counts.get(o, 0)}" for o in OUTCOMES))
    print(f"table: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
