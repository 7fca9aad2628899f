"""Issue 13: bad inputs as a hostile user gives them. No data lost, no silent wrong answer, one GeonbError line.

Each test is a row of docs/ERRORS.md (the test name is in its last column). Files are tiny and models
untrained (built, not fitted), so the whole file runs in seconds.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np
import pytest
import torch
import xarray as xr

from geonb import cli
from geonb.cloudinputs import CloudInputs
from geonb.cv import synthetic_cloudy_cube
from geonb.data import load_field, load_grid
from geonb.errors import GeonbError
from geonb.filling import fill, fill_file
from geonb.io import write_netcdf
from geonb.modelfile import TrainedModel
from geonb.normalise import Normaliser
from geonb.outputs import locked, remove_stale
from geonb.predict import Predictor
from geonb.registry import get_arch
from geonb.workflow import Run

from .conftest import REPO


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_cli(capsys, *argv) -> tuple[int, str]:
    """``geonb argv`` in-process: exit status and stderr."""
    capsys.readouterr()
    status = cli.main([str(a) for a in argv])
    return status, capsys.readouterr().err


def one_error(err: str) -> str:
    """The one ``geonb: error:`` line of stderr (argparse's errors too: no usage block above them)."""
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1 and "Traceback" not in err and "usage:" not in err, err
    return lines[0]


# ---------------------------------------------------------------- tiny inputs and untrained models
def cube_file(path, n_time=4, ny=32, nx=48, fmt="NETCDF4", edit=None):
    truth, cloudy = synthetic_cloudy_cube(n_time, ny, nx, cover=0.3, seed=5)
    days = np.arange(n_time) * np.timedelta64(1, "D") + np.datetime64("2020-05-01")
    ds = xr.Dataset({"SST": cloudy.assign_attrs(units="degC").assign_coords(time=days),
                     "mask": (("lat", "lon"), np.isfinite(truth.values[0]).astype("int8"))})
    if edit:
        ds = edit(ds)
    ds.to_netcdf(path, format=fmt)
    return path


def dincae_model(path, std=1.0, units="degC"):
    window = 3
    args = {"in_channels": CloudInputs.channels(window), "widths": [4, 4, 4, 4]}
    torch.manual_seed(0)
    net = get_arch("dincae").build("generator", **args)
    norms = {"field": Normaliser(18.0, std), "lat": Normaliser(30.8, 0.8), "lon": Normaliser(-18.8, 1.2)}
    return TrainedModel("clouds", "dincae", args, [net.state_dict()], norms,
                        method_args={"average": "predictions", "sigma_scale": 1.0},
                        inputs={"window": window, "units": {"field": units}}).save(path)


def srcnn_model(path, **changes):
    net = get_arch("srcnn").build("generator", factor=2, cond_res=[])
    fields = dict(task="downscale", arch="srcnn", arch_args={"factor": 2, "cond_res": []}, weights=[net.state_dict()],
                  norms={"target": Normaliser(500.0, 200.0)},
                  inputs={"variable": "elevation", "cond": [], "units": {"target": "m"}},
                  info={"trained_on": "test"})
    fields.update(changes)
    return TrainedModel(**fields).save(path)


def grid_file(path, n_time=None, edit=None):
    grid = load_grid("jacksboro").isel(y=slice(0, 32), x=slice(0, 32))
    ds = grid[["elevation"]].drop_attrs() if hasattr(grid, "drop_attrs") else grid[["elevation"]]
    ds.attrs = {}
    if n_time:
        ds = xr.concat([ds + k for k in range(n_time)], "time").assign_coords(time=np.arange(n_time))
    if edit:
        ds = edit(ds)
    ds.to_netcdf(path)
    return path


@pytest.fixture
def files(tmp_path):
    return {"cube": cube_file(tmp_path / "cube.nc"), "dincae": dincae_model(tmp_path / "dincae.pt"),
            "grid": grid_file(tmp_path / "grid.nc"), "srcnn": srcnn_model(tmp_path / "srcnn.pt")}


def fill_args(files, out, *extra, src=None):
    return ["fill", src or files["cube"], "--var", "SST", "--mask-var", "mask", "--model", files["dincae"], "--out", out,
            *extra]


# ---------------------------------------------------------------- data lost
ALIASES = {  # (command, the flag of an output, the input it names)
    "predict --out = --input": ("predict", "--out", "grid"),
    "predict --out = --model": ("predict", "--out", "srcnn"),
    "train --model = --data": ("train", "--model", "grid"),
    "fill --out = --model": ("fill", "--out", "dincae"),
    "fill --out = input": ("fill", "--out", "cube"),
    "fill --save-model = input": ("fill", "--save-model", "cube"),
    "fill --save-model = --model": ("fill", "--save-model", "dincae"),
    "fill --work-dir = input": ("fill", "--work-dir", "cube"),
}


@pytest.mark.parametrize("alias", ["same", "symlink", "hardlink", "dotdot"])
@pytest.mark.parametrize("case", ALIASES)
def test_no_output_may_be_an_input(files, tmp_path, capsys, case, alias):
    command, flag, name = ALIASES[case]
    victim = files[name]
    path = {"same": victim, "symlink": tmp_path / "link", "hardlink": tmp_path / "hard",
            "dotdot": tmp_path / "sub" / ".." / victim.name}[alias]
    if alias == "symlink":
        path.symlink_to(victim)
    elif alias == "hardlink":
        os.link(victim, path)
    elif alias == "dotdot":
        (tmp_path / "sub").mkdir()
    before = digest(victim)
    argv = {"predict": ["predict", "--model", files["srcnn"], "--input", files["grid"]],
            "train": ["train", "--arch", "srcnn", "--data", files["grid"], "--epochs", 1, "--steps-per-epoch", 1],
            "fill": fill_args(files, tmp_path / "o.nc")[:-2] + ([] if flag == "--out" else ["--out", tmp_path / "o.nc"])}
    status, err = run_cli(capsys, *argv[command], flag, path, "--overwrite")  # --overwrite never reaches an input
    assert status == 2 and "never overwrites its inputs" in one_error(err)
    assert digest(victim) == before and not (tmp_path / "o.nc").exists()


def test_output_inside_an_input_zarr_store_is_refused(files, tmp_path, capsys):
    store = tmp_path / "in.zarr"
    xr.open_dataset(files["grid"]).to_zarr(store)
    status, err = run_cli(capsys, "predict", "--model", files["srcnn"], "--input", store, "--out", store / "x.nc")
    assert status == 2 and "never overwrites its inputs" in one_error(err)


def test_existing_outputs_are_kept_unless_overwrite(files, tmp_path, capsys):
    out = tmp_path / "out.nc"
    out.write_text("precious")
    for argv in (["predict", "--model", files["srcnn"], "--input", files["grid"], "--out", out], fill_args(files, out),
                 ["train", "--arch", "srcnn", "--data", files["grid"], "--model", out]):
        status, err = run_cli(capsys, *argv)
        assert status == 2 and "exists" in one_error(err) and "--overwrite" in err
        assert out.read_text() == "precious"
    with pytest.raises(GeonbError, match="exists"):  # the API too
        fill_file(files["cube"], "SST", out, mask_var="mask", model=files["dincae"])
    assert run_cli(capsys, *fill_args(files, out), "--overwrite")[0] == 0
    assert "SST_error" in xr.open_dataset(out)


def test_save_model_and_out_must_differ_and_work_dir_must_be_a_folder(files, tmp_path, capsys):
    status, err = run_cli(capsys, "fill", files["cube"], "--var", "SST", "--quick", "--out", tmp_path / "a.nc",
                          "--save-model", tmp_path / "a.nc")
    assert status == 2 and "also --out" in one_error(err)
    status, err = run_cli(capsys, *fill_args(files, tmp_path / "b.nc", "--work-dir", files["grid"]))
    assert status == 2 and "is a file, not a folder" in one_error(err)


def _writer(out, setup=""):
    """A process in the middle of writing ``out`` (``setup`` runs first); returns it and its temp file."""
    code = textwrap.dedent(f"""
        import signal, time
        from geonb import cli
        from geonb.outputs import atomic_path
        {setup}
        with atomic_path({str(out)!r}) as tmp:
            print(tmp, flush=True)
            time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    return proc, proc.stdout.readline().strip()


def test_a_killed_write_leaves_a_temp_file_that_the_next_write_removes(tmp_path):
    out = tmp_path / "out.nc"
    proc, tmp = _writer(out)
    os.kill(proc.pid, signal.SIGKILL)  # no finally clause runs
    proc.wait()
    assert os.path.exists(tmp)
    live = tmp_path / f".out.nc.geonb-{os.getpid()}-x.tmp"  # a live writer's temp file is kept
    live.touch()
    write_netcdf(xr.Dataset({"a": ("x", [1.0])}), out)
    assert not os.path.exists(tmp) and live.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, "out.nc"])


def test_sigterm_cleans_up_like_an_exception(tmp_path):
    out = tmp_path / "out.nc"
    proc, tmp = _writer(out, "signal.signal(signal.SIGTERM, cli._terminated)")
    proc.terminate()
    assert proc.wait() == 128 + signal.SIGTERM
    assert not os.path.exists(tmp) and not out.exists()


def test_stale_fill_temp_folders_are_removed(files, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f"geonb-fill.geonb-{dead.stdout.strip()}-abc"
    stale.mkdir()
    (stale / "last.pt").write_bytes(b"x" * 1000)
    live = tmp_path / f"geonb-fill.geonb-{os.getpid()}-abc"
    live.mkdir()
    ds = xr.open_dataset(files["cube"])
    fill(ds.SST, mask=ds.mask, quick=True, epochs=1)
    assert not stale.exists() and live.exists()
    assert [p.name for p in tmp_path.glob("geonb-fill*")] == [live.name]  # its own folder is gone too
    assert remove_stale(tmp_path, "geonb-fill") == []


# ---------------------------------------------------------------- silent wrong answers
@pytest.mark.parametrize("fmt,cut", [("NETCDF3_CLASSIC", 1000), ("NETCDF3_CLASSIC", 0.5), ("NETCDF3_64BIT", -1),
                                     ("NETCDF4", 0.5), ("NETCDF4", -10)])
def test_truncated_files_are_refused(tmp_path, capsys, fmt, cut):
    full = cube_file(tmp_path / "full.nc", fmt=fmt).read_bytes()
    n = cut if isinstance(cut, int) and cut > 0 else int(len(full) * cut) if isinstance(cut, float) else len(full) + cut
    (tmp_path / "t.nc").write_bytes(full[:n])
    status, err = run_cli(capsys, "fill", tmp_path / "t.nc", "--var", "SST", "--quick", "--out", tmp_path / "o.nc")
    assert status == 2 and "truncated or corrupt" in one_error(err)
    assert not (tmp_path / "o.nc").exists()


def test_a_damaged_zarr_chunk_is_refused(files, tmp_path, capsys):
    store = tmp_path / "c.zarr"
    xr.open_dataset(files["cube"]).to_zarr(store)
    chunk = next(p for p in (store / "SST").rglob("*") if p.is_file() and not p.name.startswith(("zarr", ".z")))
    chunk.write_bytes(chunk.read_bytes()[:7])
    status, err = run_cli(capsys, *fill_args(files, tmp_path / "o.nc", src=store))
    assert status == 2 and "truncated or corrupt" in one_error(err)


def test_a_damaged_zarr_chunk_is_refused_before_a_lazy_prediction(files, tmp_path, capsys):
    store = tmp_path / "g.zarr"
    xr.open_dataset(files["grid"]).chunk(8).to_zarr(store)  # geonb predict reads it lazily, chunk by chunk
    chunk = next(p for p in (store / "elevation").rglob("*") if p.is_file() and not p.name.startswith(("zarr", ".z")))
    chunk.write_bytes(chunk.read_bytes()[:7])
    status, err = run_cli(capsys, "predict", "--model", files["srcnn"], "--input", store, "--out", tmp_path / "o.nc")
    assert status == 2 and "a damaged chunk" in one_error(err)
    assert not (tmp_path / "o.nc").exists()


@pytest.mark.parametrize("bad", [1e30, -999.0, 99999.0, 4.2e7, np.inf, -np.inf])
def test_outliers_and_infinities_are_refused_with_count_and_position(files, tmp_path, capsys, bad):
    def poison(ds):
        ds["SST"][1, 20, 30] = bad
        return ds

    src = cube_file(tmp_path / "bad.nc", edit=poison)
    status, err = run_cli(capsys, *fill_args(files, tmp_path / "o.nc", src=src))
    line = one_error(err)
    assert status == 2 and "1 value(s)" in line and "time=2020-05-02" in line and "lat=" in line and "lon=" in line
    assert not (tmp_path / "o.nc").exists()
    status, err = run_cli(capsys, *fill_args(files, tmp_path / "o.nc", "--allow-outliers", src=src))
    assert status == (0 if np.isfinite(bad) else 2)  # told otherwise: allowed; infinities never are


def test_outliers_are_refused_before_training_downscaling(files, tmp_path, capsys):
    # a third of the grid holds an unflagged fill value: still far from the median of the rest
    src = grid_file(tmp_path / "g.nc", edit=lambda ds: ds.where(ds.x > ds.x[10], -9999.0))
    status, err = run_cli(capsys, "train", "--arch", "srcnn", "--data", src, "--model", tmp_path / "m.pt")
    assert status == 2 and "352 value(s) equal to -9999, a no-data number" in one_error(err)
    assert not (tmp_path / "m_checkpoints").exists()
    status, err = run_cli(capsys, "predict", "--model", files["srcnn"], "--input", src, "--out", tmp_path / "p.nc")
    assert status == 2 and "-9999, a no-data number" in one_error(err)
    spike = grid_file(tmp_path / "s.nc", edit=lambda ds: ds.where((ds.x != ds.x[3]) | (ds.y != ds.y[5]), 4.2e7))
    status, err = run_cli(capsys, "predict", "--model", files["srcnn"], "--input", spike, "--out", tmp_path / "p.nc")
    assert status == 2 and "1 value(s) far outside the field's robust range" in one_error(err)


@pytest.mark.parametrize("dim", ["lat", "time", "lon"])
def test_unsorted_coordinates_are_sorted_with_a_warning_and_the_answer_is_unchanged(files, tmp_path, dim):
    ds = xr.open_dataset(files["cube"]).load()
    order = np.arange(ds.sizes[dim])
    order[[0, 1]] = 1, 0  # one swap: not monotonic either way
    shuffled = ds.isel({dim: order})
    shuffled.to_netcdf(tmp_path / "shuffled.nc")
    right = fill_file(files["cube"], "SST", tmp_path / "a.nc", mask_var="mask", model=files["dincae"])
    with pytest.warns(UserWarning, match=f"coordinate '{dim}' was not in order; sorted"):
        got = fill_file(tmp_path / "shuffled.nc", "SST", tmp_path / "b.nc", mask_var="mask", model=files["dincae"])
    written = xr.open_dataset(tmp_path / "b.nc")
    np.testing.assert_array_equal(written[dim].values, shuffled[dim].values)  # the file keeps the input's order
    for out in (got, written):
        np.testing.assert_allclose(out.SST.sel({dim: right[dim]}).values, right.SST.values, rtol=1e-6)
    dup = ds.isel({dim: [0, 0, *range(1, ds.sizes[dim])]})
    with pytest.raises(GeonbError, match="repeats values"):
        fill(dup.SST, mask=dup.mask, model=files["dincae"])


def test_grids_with_two_stepped_axes_or_one_step_series_are_refused_by_downscaling(files, tmp_path, capsys):
    """A time series is downscaled step by step (tests/test_series.py); a second stepped axis (depth) is refused,
    and a 2-D grid is what load_grid gives unless asked for steps."""
    src = grid_file(tmp_path / "t3d2.nc", n_time=3,
                    edit=lambda ds: xr.concat([ds, ds + 1], "depth").assign_coords(depth=[0.0, 5.0]))
    for argv in (["train", "--arch", "srcnn", "--data", src, "--model", tmp_path / "m.pt"],
                 ["predict", "--model", files["srcnn"], "--input", src, "--out", tmp_path / "p.nc"]):
        status, err = run_cli(capsys, *argv)
        assert status == 2 and "2 steps along 'depth', 3 steps along 'time'; this takes one time axis" in one_error(err)
    with pytest.raises(GeonbError, match="10 steps along 'time'; this takes one 2-D grid"):
        load_grid("alboran")


def test_geonb_train_checkpoints_are_keyed_by_configuration(files, tmp_path, capsys):
    model = tmp_path / "m.pt"
    base = ["train", "--arch", "srcnn", "--data", files["grid"], "--model", model, "--epochs", 1, "--steps-per-epoch", 1,
            "--batch-size", 2, "--patch-lr", 4, "--factor", 2, "--overwrite"]
    other = grid_file(tmp_path / "other.nc", edit=lambda ds: ds * 2)
    for argv in (base, base, [*base, "--factor", 4], [*base[:4], other, *base[5:]]):
        assert run_cli(capsys, *argv)[0] == 0
    keys = sorted(p.name for p in (tmp_path / "m_checkpoints").iterdir())
    assert len(keys) == 3  # the repeated run resumed its own folder; other factor, other data: new folders


@pytest.mark.parametrize("argv,message", [
    (["predict", "--tile", "-5"], "'tile' = -5: must be at least 1"),
    (["predict", "--tile", "0"], "'tile' = 0: must be at least 1"),
    (["train", "--steps-per-epoch", "0"], "'steps_per_epoch' = 0: must be at least 1"),
    (["train", "--epochs", "-1"], "'epochs' = -1: must be at least 1"),
    (["train", "--batch-size", "0"], "'batch_size' = 0: must be at least 1"),
    (["train", "--patch-lr", "0"], "'patch_lr' = 0: must be at least 1"),
    (["train", "--lr", "nan"], "'lr' = nan: must be a finite number"),
    (["train", "--lr", "0"], "'lr' = 0.0: must be above 0"),
    (["train", "--lr", "abc"], "'abc' is not a float"),
    (["train", "--factor", "3"], "'factor' = 3: use one of 2, 4, 8, 16"),
    (["train", "--device", "tpu"], "'device' = 'tpu': unknown device"),
    (["fill", "--epochs", "0"], "'epochs' = 0: must be at least 1"),
    (["fill", "--window", "-3"], "'window' = -3: must be at least 1"),
    (["generate", "--per-class", "1000000000"], "'per_class' = 1000000000: must be at most 10000"),
    (["train", "--n-blocks", "100000"], "'n_blocks' = 100000: must be at most 64"),
    (["train", "--epochs", "1000000000000"], "'epochs' = 1000000000000: must be at most 100000"),
    (["predict", "--chunk", "10000000"], "'chunk' = 10000000: must be at most 65536"),
    (["generate", "--per-class", "0"], "'per_class' = 0: must be at least 1"),
])
def test_bad_command_line_values_are_refused_before_any_work(files, tmp_path, capsys, argv, message):
    command, *values = argv
    full = {"predict": ["--model", files["srcnn"], "--input", files["grid"], "--out", tmp_path / "o.nc"],
            "train": ["--arch", "srcnn", "--data", files["grid"], "--model", tmp_path / "m.pt"],
            "fill": [files["cube"], "--var", "SST", "--out", tmp_path / "o.nc"],
            "generate": ["--model", files["srcnn"], "--out", tmp_path / "o.nc"]}[command]
    status, err = run_cli(capsys, command, *full, *values)
    assert status == 2 and message in one_error(err)
    assert list(tmp_path.glob("o.nc")) == [] and list(tmp_path.glob("m*")) == []


def test_a_model_file_of_a_newer_format_says_to_upgrade_geonb(tmp_path, capsys):
    good = torch.load(srcnn_model(tmp_path / "good.pt"), weights_only=True)
    path = _saved(tmp_path / "m.pt", {**good, "format": "geonb-model/3"})
    status, err = run_cli(capsys, "predict", "--model", path, "--input", tmp_path / "x.nc", "--out", tmp_path / "o.nc")
    assert status == 2 and "written by a newer geonb" in one_error(err) and "upgrade geonb" in one_error(err)
    assert "retrain" not in one_error(err)


@pytest.mark.parametrize("scale", [float("nan"), -1.0, 0.0, 1e300])
def test_cloud_models_with_a_sigma_scale_out_of_range_are_refused(files, tmp_path, capsys, scale):
    saved = torch.load(files["dincae"], weights_only=True)
    path = _saved(tmp_path / "bad.pt", {**saved, "method_args": {**saved["method_args"], "sigma_scale": scale}})
    before = digest(files["cube"])
    status, err = run_cli(capsys, *fill_args(files, tmp_path / "o.nc")[:7], path, "--out", tmp_path / "o.nc")
    assert status == 2 and "method_args['sigma_scale']" in one_error(err)
    assert digest(files["cube"]) == before and not (tmp_path / "o.nc").exists()


def test_networks_too_large_for_memory_are_refused_before_they_are_built():
    start = time.perf_counter()
    with pytest.raises(GeonbError, match=r"srcnn generator .* parameters .* more than the 250,000,000"):
        get_arch("srcnn").build("generator", factor=2, cond_res=[], f1=200_000, f2=100_000)
    assert time.perf_counter() - start < 5


def test_an_output_larger_than_the_free_memory_is_refused_with_its_size(tmp_path):
    model = TrainedModel.load(srcnn_model(tmp_path / "m.pt", arch_args={"factor": 16, "cond_res": []},
                                          weights=[get_arch("srcnn").build("generator", factor=16,
                                                                           cond_res=[]).state_dict()]))
    huge = torch.zeros(1, 1, 1, 1).expand(1, 1, 60_000, 60_000)  # 3.6e9 cells ×16²: terabytes, never allocated
    with pytest.raises(GeonbError, match=r"output needs at least [\d,.]+ GB of memory .* GB is free"):
        Predictor(model)(huge)


def test_non_finite_outputs_of_a_finite_input_are_refused(tmp_path):
    net = get_arch("srcnn").build("generator", factor=2, cond_res=[])
    state = {k: torch.full_like(v, 3e38) for k, v in net.state_dict().items()}  # finite, but overflows
    model = TrainedModel.load(srcnn_model(tmp_path / "m.pt", weights=[state]))
    with pytest.raises(GeonbError, match="NaN or infinite outputs for a finite input"):
        Predictor(model)(torch.ones(1, 1, 8, 8))


@pytest.mark.parametrize("std", [float("nan"), 0.0, -1.0, float("inf")])
def test_model_files_with_bad_normalisation_are_refused(files, tmp_path, capsys, std):
    model = dincae_model(tmp_path / "bad.pt", std=std)
    status, err = run_cli(capsys, *fill_args(files, tmp_path / "o.nc")[:7], model, "--out", tmp_path / "o.nc")
    assert status == 2 and "not a geonb model file: normalisation 'field'" in one_error(err)


def _kelvin(units):
    return lambda ds: ds.assign(SST=(ds.SST + 273.15).assign_attrs(units=units) if units else (ds.SST + 273.15).drop_attrs())


def _km(units, scale=1e-3):
    return lambda ds: ds.assign(elevation=(ds.elevation * scale).assign_attrs(units=units) if units
                                else (ds.elevation * scale).drop_attrs())


OTHER_DATA = {  # (command, the input's edit, what the one line must say)
    "fill: kelvin, a degC model": ("fill", _kelvin("K"), r"is in 'K'; this dincae model was trained on data in 'degC'"),
    "fill: kelvin spelled out": ("fill", _kelvin("kelvin"), r"is in 'kelvin'; .* trained on data in 'degC'"),
    "fill: kelvin, no units": ("fill", _kelvin(None), r"values of variable 'SST' \(median 29\d, .* lie far outside .* \(mean 18, std 1 degC\)"),
    "predict: km, an m model": ("predict", _km("km"), r"is in 'km'; this srcnn model was trained on data in 'm'"),
    "predict: ×1e27, no units": ("predict", _km(None, 1e27), r"values of .*in.nc:elevation \(median [\d.]+e\+29.* lie far outside .* std 200 m\)"),
    "predict: mm, no units": ("predict", _km(None, 1e3), r"lie far outside .* other units or another variable"),
}


@pytest.mark.parametrize("case", OTHER_DATA)
def test_data_in_other_units_than_the_model_was_trained_on_is_refused(files, tmp_path, capsys, case):
    command, change, message = OTHER_DATA[case]
    out = tmp_path / "o.nc"
    if command == "fill":
        argv = fill_args(files, out, src=cube_file(tmp_path / "in.nc", edit=change))
    else:
        argv = ["predict", "--model", files["srcnn"], "--input", grid_file(tmp_path / "in.nc", edit=change), "--out", out]
    status, err = run_cli(capsys, *argv)
    assert status == 2 and re.search(message, one_error(err)) and not out.exists()


@pytest.mark.parametrize("edit", [lambda ds: ds.assign(SST=ds.SST.assign_attrs(units="degree Celsius")),  # CF spelling
                                  lambda ds: ds.assign(SST=ds.SST + 5),  # a warmer sea: 5 stds away, the same variable
                                  lambda ds: ds.assign(SST=ds.SST.drop_attrs())])  # units unknown, values fit
def test_the_same_units_spelled_otherwise_or_another_region_fill(files, tmp_path, capsys, edit):
    status, err = run_cli(capsys, *fill_args(files, tmp_path / "o.nc", src=cube_file(tmp_path / "in.nc", edit=edit)))
    assert status == 0, err


@pytest.mark.parametrize("flag,value", [("--cond", "grid.nc:elevation"), ("--mask-var", "mask"), ("--tile", "16")])
def test_options_a_model_does_not_use_are_refused(files, tmp_path, capsys, flag, value):
    model = files["srcnn"] if flag != "--tile" else files["dincae"]
    if flag == "--cond":
        value = f"{files['grid']}:elevation"
    status, err = run_cli(capsys, "predict", "--model", model, "--input", files["grid"], "--var", "elevation",
                          "--out", tmp_path / "o.nc", flag, value)
    line = one_error(err)
    assert status == 2 and (f"{flag} does not apply" in line or "drop --cond" in line)


def test_fill_options_that_do_not_apply_are_refused(files, tmp_path, capsys):
    status, err = run_cli(capsys, "fill", files["cube"], "--var", "SST", "--arch", "dineof", "--out", tmp_path / "o.nc",
                          "--save-model", tmp_path / "m.pt")
    assert status == 2 and "save_model (--save-model) does not apply to dineof (no network)" in one_error(err)
    status, err = run_cli(capsys, *fill_args(files, tmp_path / "o.nc", "--epochs", 3))
    assert status == 2 and "epochs (--epochs) does not apply to a saved model" in one_error(err)
    assert not list(tmp_path.glob("o.nc")) and not list(tmp_path.glob("m.pt"))


def test_a_variable_name_that_embedded_data_does_not_have_is_refused(tmp_path, capsys):
    with pytest.raises(GeonbError, match="one variable 'sst', not 'junk'"):
        load_field("hadisst", "junk")
    with pytest.raises(GeonbError, match="one variable 'elevation', not 'junk'"):
        load_grid("jacksboro", "junk")


def test_one_fill_at_a_time_per_work_dir(files, tmp_path):
    ds = xr.open_dataset(files["cube"])
    with locked(tmp_path / "work", "--work-dir"):
        with pytest.raises(GeonbError, match="in use by another geonb process"):
            fill(ds.SST, mask=ds.mask, quick=True, epochs=1, work_dir=tmp_path / "work")
    fill(ds.SST, mask=ds.mask, quick=True, epochs=1, work_dir=tmp_path / "work")  # free again


# ---------------------------------------------------------------- raw tracebacks → one GeonbError line
@pytest.mark.parametrize("where", ["dir", "parent_file", "missing_parents"])
def test_output_paths_are_checked_before_work(files, tmp_path, capsys, where):
    (tmp_path / "afile").write_text("x")
    out = {"dir": tmp_path, "parent_file": tmp_path / "afile" / "o.nc", "missing_parents": tmp_path / "a" / "b" / "o.nc"}
    status, err = run_cli(capsys, "train", "--arch", "srcnn", "--data", files["grid"], "--model", out[where],
                          "--epochs", 1, "--steps-per-epoch", 1, "--batch-size", 2, "--patch-lr", 4)
    if where == "missing_parents":  # created: not an error
        assert status == 0 and out[where].exists()
        return
    assert status == 2 and ("is a folder" in one_error(err) or "is a file, not a folder" in err)
    assert not list(tmp_path.glob("*_checkpoints"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_an_unwritable_output_folder_is_refused(files, tmp_path, capsys):
    (tmp_path / "ro").mkdir(mode=0o500)
    status, err = run_cli(capsys, *fill_args(files, tmp_path / "ro" / "o.nc"))
    assert status == 2 and "no permission to write" in one_error(err)


def test_a_subset_written_by_xarray_with_both_fill_values_fills(files, tmp_path, capsys):
    def float_days(ds):  # as the Alboran file: time in float days with a missing_value and no _FillValue
        ds = ds.assign_coords(time=np.arange(4, dtype="float32"))
        ds.time.attrs.update(units="days since 2017-01-01", missing_value=np.float32(99999.0))
        ds.time.encoding["_FillValue"] = None
        return ds

    src = cube_file(tmp_path / "full.nc", edit=float_days)
    subset = xr.open_dataset(src).isel(lat=slice(0, 32))
    subset.to_netcdf(tmp_path / "subset.nc")  # xarray adds _FillValue NaN beside missing_value 99999
    enc = xr.open_dataset(tmp_path / "subset.nc").time.encoding
    assert np.isnan(enc["_FillValue"]) and enc["missing_value"] == 99999
    status, err = run_cli(capsys, *fill_args(files, tmp_path / "o.nc", src=tmp_path / "subset.nc"))
    assert status == 0, err
    np.testing.assert_array_equal(xr.open_dataset(tmp_path / "o.nc").time.values, subset.time.values)


@pytest.mark.parametrize("params,message", [
    ({"batch_size": 0}, "'batch_size' = 0: must be at least 1"),
    ({"arch": "unet", "patch": 0}, "'patch' = 0: must be at least 16"),
    ({"arch": "dincae", "widths": [8, 0, 16, 24]}, "'widths' = [8, 0, 16, 24]: must be at least 1 in every item"),
    ({"arch": "segnet", "width": -4}, "'width' = -4: must be at least 1"),
    ({"lr": 0.0}, "'lr' = 0.0: must be above 0"),
    ({"lr": float("nan")}, "'lr' = nan: must be a finite number"),
    ({"epochs": 0}, "'epochs' = 0: must be at least 1"),
    ({"epochs": -3}, "'epochs' = -3: must be at least 1"),
    ({"epochs": "10"}, "'epochs' must be int"),
    ({"lr": "1e-3"}, "'lr' must be float"),
    ({"device": "tpu"}, "'device' = 'tpu': unknown device"),
    ({"arch": "srcnn", "factor": 3}, "'factor' = 3: use one of 2, 4, 8, 16"),
    ({"arch": "unet", "prefill": "mean"}, "'prefill' = 'mean': use one of"),
    ({"seed": 2 ** 40}, "'seed' = 1099511627776: must be at most 4.29497e+09"),
    ({"batch_size": 10 ** 9}, "'batch_size' = 1000000000: must be at most 4096"),
    ({"arch": "dincae", "widths": [16, 10 ** 6]}, "must be at most 1024 in every item"),
    ({"arch": "segnet", "val_location": 9}, "'val_location' = [9]: must be at most 7 in every item"),
    ({"arch": "acgan", "per_class": 10 ** 9}, "'per_class' = 1000000000: must be at most 10000"),
])
def test_bad_parameter_values_are_refused_naming_parameter_value_and_what_is_allowed(tmp_path, params, message):
    with pytest.raises(GeonbError) as exc:
        Run(tmp_path, **params)
    assert message in str(exc.value) and "\n" not in str(exc.value)
    assert not list(tmp_path.iterdir())  # before any work


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_refused_up_front(tmp_path, capsys):
    with pytest.raises(GeonbError, match="'device' = 'cuda': this machine has no CUDA GPU"):
        Run(tmp_path, device="cuda")
    status, err = run_cli(capsys, "run", "--quick", "--run-dir", tmp_path, "-p", "device", "cuda")
    assert status == 2 and "no CUDA GPU" in one_error(err) and not (tmp_path / "notebooks").exists()


def test_train_on_cube_options_are_checked(files):
    from geonb.cloudmodel import train_on_cube

    ds = xr.open_dataset(files["cube"])
    with pytest.raises(GeonbError, match="'batch_size' = 0"):
        train_on_cube(ds.SST.values, ds.lat, ds.lon, ds.time, ckpt_dir=None, batch_size=0)


class Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {tempfile.gettempdir()}/geonb-pwned",))


def _saved(path, obj):
    torch.save(obj, path)
    return path


@pytest.mark.parametrize("case,reason", [
    ("random", "torch cannot read it"),
    ("empty", "empty"),
    ("pickle", "torch cannot read it (a bare pickle"),
    ("torch_pickle", "Python objects (posix.system), not only tensors, numbers and strings"),
    ("wrong_state", "do not fit a srcnn network"),
    ("nan_weights", "NaN or infinite values"),
    ("string_arg", "network argument factor='2' is not a positive int"),
    ("negative_width", "network argument f1=-8 is not a positive int"),
    ("absurd_width", "more than the 250,000,000 geonb allows"),
    ("factor_4096", "scale factor 4096 is above the 16 geonb trains"),
    ("tiny_std", "normalisation 'target' is [500.0, 1e-300]"),
    ("huge_std", "normalisation 'target' is [500.0, 1e+300]"),
    ("std_below_float32_digits", "normalisation 'target' is [1000000000.0, 1.0]"),
    ("negative_sigma_scale", "method_args['sigma_scale'] is -1.0; it must be a finite number"),
    ("nan_sigma_scale", "method_args['sigma_scale'] is nan"),
    ("string_average", "method_args['average'] is 'median'"),
    ("string_tta", "method_args['tta'] is 'yes'; it must be true or false"),
    ("huge_valid_above", "inputs['valid_above'] is inf"),
    ("string_norm", "normalisation 'target'"),
    ("no_inputs", "inputs['variable']"),
    ("list_not_dict", "arch_args is a list"),
    ("unknown_task", "unknown task 'weather'"),
    ("halo_beyond_field", "info['effective_halo'] is 7; it must be an int from 0 to 6"),
    ("negative_halo", "info['effective_halo'] is -1; it must be an int from 0"),
    ("string_halo", "info['effective_halo'] is '3'"),
    ("halo_without_tol", "one of 'effective_halo' and 'halo_tol' without the other"),
    ("zero_halo_tol", "info['halo_tol'] is 0.0; it must be a finite number"),
])
def test_bad_model_files_are_not_geonb_model_files(tmp_path, capsys, case, reason):
    path = tmp_path / "m.pt"
    good = torch.load(srcnn_model(tmp_path / "good.pt"), weights_only=True)
    state = good["weights"][0]
    if case == "random":
        path.write_bytes(np.random.default_rng(0).bytes(5000))
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "pickle":
        path.write_bytes(pickle.dumps(Exploit()))
    elif case == "torch_pickle":
        _saved(path, {**good, "info": Exploit()})
    elif case == "wrong_state":
        _saved(path, {**good, "weights": [{k + "x": v for k, v in state.items()}]})
    elif case == "nan_weights":
        _saved(path, {**good, "weights": [{k: v * float("nan") for k, v in state.items()}]})
    elif case == "string_arg":
        _saved(path, {**good, "arch_args": {"factor": "2", "cond_res": []}})
    elif case == "negative_width":
        _saved(path, {**good, "arch_args": {"factor": 2, "cond_res": [], "f1": -8}})
    elif case == "absurd_width":
        _saved(path, {**good, "arch_args": {"factor": 2, "cond_res": [], "f1": 200_000, "f2": 100_000}})
    elif case == "factor_4096":
        _saved(path, {**good, "arch_args": {"factor": 4096, "cond_res": []}})
    elif case in ("tiny_std", "huge_std", "std_below_float32_digits"):
        pair = {"tiny_std": [500.0, 1e-300], "huge_std": [500.0, 1e300], "std_below_float32_digits": [1e9, 1.0]}[case]
        _saved(path, {**good, "norms": {"target": pair}})
    elif case in ("negative_sigma_scale", "nan_sigma_scale", "string_average", "string_tta"):
        value = {"negative_sigma_scale": -1.0, "nan_sigma_scale": float("nan"), "string_average": "median",
                 "string_tta": "yes"}[case]
        _saved(path, {**good, "method_args": {case.split("_", 1)[1]: value}})
    elif case == "huge_valid_above":
        _saved(path, {**good, "inputs": {**good["inputs"], "valid_above": float("inf")}})
    elif case == "string_norm":
        _saved(path, {**good, "norms": {"target": ["500", 200.0]}})
    elif case == "no_inputs":
        _saved(path, {**good, "inputs": {}})
    elif case == "list_not_dict":
        _saved(path, {**good, "arch_args": [2, []]})
    elif case == "unknown_task":
        _saved(path, {**good, "task": "weather"})
    elif case in ("halo_beyond_field", "negative_halo", "string_halo", "halo_without_tol", "zero_halo_tol"):
        halo = {"halo_beyond_field": {"effective_halo": 7, "halo_tol": 1e-3},  # srcnn ×2's receptive field: 6
                "negative_halo": {"effective_halo": -1, "halo_tol": 1e-3},
                "string_halo": {"effective_halo": "3", "halo_tol": 1e-3}, "halo_without_tol": {"effective_halo": 3},
                "zero_halo_tol": {"effective_halo": 3, "halo_tol": 0.0}}[case]
        _saved(path, {**good, "info": {**good["info"], **halo}})
    start = time.perf_counter()
    with pytest.raises(GeonbError) as exc:
        TrainedModel.load(path)
    assert time.perf_counter() - start < 5  # refused before anything big is allocated
    text = str(exc.value)
    assert "not a geonb model file" in text and reason in text and "weights_only" not in text
    assert not os.path.exists(f"{tempfile.gettempdir()}/geonb-pwned")
    status, err = run_cli(capsys, "predict", "--model", path, "--input", "x.nc", "--out", tmp_path / "o.nc")
    assert status == 2 and reason in one_error(err)


def test_geonb_run_shows_the_geonb_error_line_not_a_traceback(tmp_path, capsys):
    status, err = run_cli(capsys, "run", "--quick", "--run-dir", tmp_path, "-p", "arch", "nope")
    assert status == 2 and "unknown arch 'nope'; valid names" in one_error(err)
    status, err = run_cli(capsys, "run", "--quick", "--run-dir", tmp_path, "-p", "data", str(tmp_path / "none.nc"))
    line = one_error(err)
    assert status == 2 and "01_data_prep failed in cell" in line and "GeonbError" in line and "01_data_prep.ipynb" in line


def test_main_reports_an_unexpected_error_in_one_line_with_the_traceback_file(monkeypatch, capsys):
    def broken(args):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(cli, "_cmd_archs", broken)
    status, err = run_cli(capsys, "archs")
    assert status == 1 and len(err.strip().splitlines()) == 1 and "RuntimeError: boom" in err
    log = err.split("full traceback in ")[1].split(";")[0]
    assert "Traceback" in open(log).read() and "second line" in open(log).read()
    with pytest.raises(RuntimeError):
        cli.main(["archs", "--debug"])
    monkeypatch.setattr(cli, "_cmd_archs", lambda args: (_ for _ in ()).throw(GeonbError("bad thing; fix it")))
    with pytest.raises(GeonbError):
        cli.main(["--debug", "archs"])
    assert run_cli(capsys, "archs") == (2, "geonb: error: bad thing; fix it\n")
