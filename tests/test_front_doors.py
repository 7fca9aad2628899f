"""The generated front doors: ``geonb train --arch A --quick --model m.pt`` for an arch of every task, with
the task's default data, then ``geonb predict`` (``geonb generate`` for digits) applying the model it wrote;
``geonb params`` and the flags come from the task's Params."""
from __future__ import annotations

import os
import re

import numpy as np
import pytest
import xarray as xr

from geonb import datasets
from geonb.cli import main, parse
from geonb.data import load_grid
from geonb.frontdoor import NOT_FLAGS, flag
from geonb.modelfile import TrainedModel
from geonb.registry import get_arch, list_archs
from geonb.resample import coarsen
from geonb.tasks import get_task

PHOTO = datasets.path("dubai") / "tile_7" / "images" / "image_part_001.jpg"


def _gappy_sst(folder):
    from geonb import synthetic_sst

    truth = synthetic_sst(n_time=2, ny=36, nx=44, seed=2)
    sea = np.isfinite(truth.values[0])
    gappy = truth.copy()
    gappy[:, 10:20, 20:30] = np.nan
    path = folder / "gappy.nc"
    xr.Dataset({"sst": gappy.assign_attrs(units="degC"), "mask": (("lat", "lon"), sea.astype("int8"))}).to_netcdf(path)
    return ["--input", path, "--var", "sst", "--mask-var", "mask"]


def _coarse_dem(folder):
    grid = load_grid("jacksboro").isel(y=slice(0, 128), x=slice(0, 128))  # 32² low-res cells: srgan's field fits
    var, yn, xn = grid.attrs["target"], grid.attrs["y_name"], grid.attrs["x_name"]
    lr = coarsen(grid[var].values.astype("float64"), 4)
    path = folder / "coarse.nc"
    xr.Dataset({var: ((yn, xn), lr, grid[var].attrs)},
               coords={yn: grid.y.values.reshape(-1, 4).mean(1), xn: grid.x.values.reshape(-1, 4).mean(1)}).to_netcdf(path)
    return ["--input", path, "--var", var]


# task → (arch, the arguments of the command that applies its model, the output's variable and shape)
CASES = {
    "clouds": ("dincae", lambda d: ["--input", datasets.path("alboran"), "--var", "SST", "--mask-var", "mask"],
               "SST", (10, 201, 301)),
    "inpaint": ("unet", _gappy_sst, "sst", (2, 36, 44)),
    "downscale": ("srcnn", _coarse_dem, "elevation", (128, 128)),
    "segment": ("unet_seg", lambda d: ["--input", PHOTO], "class", None),
    "translate": ("pix2pix", lambda d: ["--input", PHOTO], None, None),
    "generate": ("acgan", lambda d: ["--per-class", 2], "digit", (20, 28, 28)),
}


# One arch per task in the suite; GEONB_ALL_ARCHS=1 runs every arch of `geonb archs` (a few minutes).
RUNS = [(a.task, a.name) for a in list_archs()] if os.environ.get("GEONB_ALL_ARCHS") == "1" else \
    [(task, case[0]) for task, case in sorted(CASES.items())]


def test_every_task_has_a_case():
    assert sorted(CASES) == sorted({a.task for a in list_archs()})


@pytest.mark.parametrize("task,arch", RUNS)
def test_geonb_train_quick_then_predict(task, arch, tmp_path, capsys):
    _, inputs, var, shape = CASES[task]
    model = tmp_path / "m.pt"
    assert main(["train", "--arch", arch, "--quick", "--model", model]) == 0
    said = capsys.readouterr().out
    assert f"wrote {model}" in said
    saved = TrainedModel.load(model, task=task)
    assert saved.arch == arch
    assert main(["info", model]) == 0  # the model card, readable without Python
    card = " ".join(capsys.readouterr().out.split())
    assert f"task {task}:" in card and f"arch {arch}:" in card
    # the skill said beside the task's baseline: a held-out table, or downscaling's validation line
    assert re.search(r"\[geonb train\] (skill on the validation region|held-out skill, .+\n.*"
                     r"(biharmonic|bicubic|random_forest|colour|real))", said, re.S), said
    out = tmp_path / ("out.png" if task in ("segment", "translate") else "out.nc")
    command = "generate" if task == "generate" else "predict"
    assert main([command, "--model", model, *inputs(tmp_path), "--out", out]) == 0, capsys.readouterr().err
    assert out.exists()
    if var is not None and out.suffix == ".nc":
        result = xr.open_dataset(out)[var]
        assert result.shape == shape and np.isfinite(result.values).any()


@pytest.mark.parametrize("arch", [a.name for a in list_archs()])
def test_every_arch_gets_its_task_flags_with_the_task_defaults(arch):
    """Every parameter the task's training reads is a flag; none given means the Param's default applies."""
    task = get_task(get_arch(arch).task)
    args = parse(["train", "--arch", arch, "--model", "m.pt"])
    names = task.train_params if task.train_command else [p.name for p in task.params]
    for name in set(names) - set(NOT_FLAGS):
        assert getattr(args, name) is None  # not given: the task's default (or quick value) applies
    with pytest.raises(SystemExit):  # another task's parameter is not a flag of this arch
        other = next(p for t in ("segment", "downscale") for p in get_task(t).params
                     if p.name not in {q.name for q in task.params})
        parse(["train", "--arch", arch, "--model", "m.pt", flag(other.name), "1"])


def test_flags_check_values_like_run_parameters(capsys):
    assert main(["train", "--arch", "unet_seg", "--model", "m.pt", "--batch-size", "0"]) == 2
    assert "'batch_size' = 0: must be at least 1" in capsys.readouterr().err
    assert main(["train", "--arch", "nosuch", "--model", "m.pt"]) == 2
    assert "unknown arch 'nosuch'" in capsys.readouterr().err


def test_geonb_params_lists_the_task_parameters(capsys):
    assert main(["params", "unet_seg"]) == 0
    said = capsys.readouterr().out
    for p in get_task("segment").params:
        if p.name != "arch":
            assert re.search(rf"^{p.name}\s+{p.type.__name__}: ", said, re.M), p.name
    assert "factor" not in said  # downscaling's, not segmentation's


@pytest.mark.parametrize("arch", ["srcnn", "unet_seg"])
def test_every_parameter_geonb_params_marks_as_a_flag_is_one(arch, capsys):
    assert main(["params", arch]) == 0
    listed = re.findall(r"^(\w+)\s+(\w+): .*\[(--[\w-]+|-p only)\]$", capsys.readouterr().out, re.M)
    assert listed
    for name, kind, how in listed:
        value = {"bool": None, "int": "1", "float": "1.0", "str": "x", "list": "[1, 2]"}[kind]
        argv = ["train", "--arch", arch, "--model", "m.pt", how] + ([] if value is None else [value])
        if how == "-p only":  # not a generated flag: argparse refuses it, unless the task has its own of that
            try:              # name (downscaling's --cond FILE:VAR, where the parameter is a layer name)
                parse(["train", "--arch", arch, "--model", "m.pt", flag(name), "1"])
            except SystemExit:
                continue
            assert get_task(get_arch(arch).task).train_flags is not None, name
            continue
        try:
            args = parse(argv)
        except SystemExit:  # the value is refused by the parameter's bounds: still a flag
            continue
        assert getattr(args, name) is not None


def test_import_geonb_loads_neither_torch_nor_xarray_and_the_accessor_follows_xarray():
    import subprocess
    import sys

    code = ("import sys, geonb; assert 'torch' not in sys.modules and 'xarray' not in sys.modules, 'eager'; "
            "import xarray as xr; assert hasattr(xr.DataArray([1.0]), 'geonb'), 'no accessor'; "
            "import importlib.resources as r; assert r.files('xarray').joinpath('__init__.py').is_file()")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    code = ("import sys; from geonb.cli import main; assert main(['--version']) == 0; "
            "assert 'torch' not in sys.modules and 'xarray' not in sys.modules, 'geonb --version imported them'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0 and "geonb " in done.stdout, done.stderr
