"""Outputs never cost data (issue 24, part A): what ``--overwrite`` may replace, the rename swap under kills,
one run per run dir, and full disks. Every input is checksummed before and after."""
from __future__ import annotations

import errno
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import xarray as xr

import geonb
from geonb import checkpoints
from geonb.errors import GeonbError
from geonb.io import write_netcdf, write_zarr
from geonb.outputs import check_outputs
from geonb.workflow import Run

from .conftest import REPO
from .test_errors import files, one_error, run_cli  # noqa: F401  (files: a fixture)


def tree_digest(path: Path) -> str:
    """sha256 of a file, or of every file name and content under a folder."""
    h = hashlib.sha256()
    for f in sorted([path] if path.is_file() else path.rglob("*")):
        if f.is_file():
            h.update(str(f.relative_to(path.parent)).encode() + f.read_bytes())
    return h.hexdigest()


def small(value=1.0) -> xr.Dataset:
    return xr.Dataset({"a": ("x", np.full(4, value))})


def python(code: str, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *map(str, args)], stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(REPO)})


# ---------------------------------------------------------------- data lost: what --overwrite may replace
@pytest.mark.parametrize("depth", ["in.nc", "sub/in.nc", "sub/deeper/in.nc"])
def test_a_folder_holding_the_input_is_never_replaced(files, tmp_path, capsys, depth):
    box = tmp_path / "box.zarr"
    given = box / depth
    given.parent.mkdir(parents=True)
    shutil.copy(files["cube"], given)
    before = tree_digest(box)
    status, err = run_cli(capsys, "fill", given, "--var", "SST", "--mask-var", "mask", "--model", files["dincae"],
                          "--out", box, "--overwrite")
    assert status == 2 and f"--out {box} holds an input of this command" in one_error(err)
    assert tree_digest(box) == before


def test_predict_into_the_folder_of_its_input_is_refused(files, tmp_path, capsys):
    box = tmp_path / "box.zarr"
    box.mkdir()
    link = tmp_path / "link.nc"  # the input named through a link outside the folder
    shutil.copy(files["grid"], box / "grid.nc")
    link.symlink_to(box / "grid.nc")
    before = tree_digest(box)
    status, err = run_cli(capsys, "predict", "--model", files["srcnn"], "--input", link, "--out", box, "--overwrite")
    assert status == 2 and "holds an input" in one_error(err) and tree_digest(box) == before


@pytest.mark.parametrize("case", ["only_user_files", "zarr_plus_a_note", "zarr_with_a_symlink", "hidden_folder"])
def test_overwrite_never_replaces_a_folder_holding_anything_but_a_zarr_store(files, tmp_path, capsys, case):
    box, hidden = tmp_path / "X.zarr", tmp_path / "X.zarr" / ".ipynb_checkpoints"
    if case == "only_user_files":
        box.mkdir()
        (box / "thesis.tex").write_text("years of work")
    else:
        small().to_zarr(box)
        {"zarr_plus_a_note": lambda: (box / "NOTES.md").write_text("mine"),
         "zarr_with_a_symlink": lambda: (box / "a" / "0").symlink_to(files["cube"]),
         "hidden_folder": lambda: (hidden.mkdir(), (hidden / "x-checkpoint.ipynb").touch())}[case]()
    before = tree_digest(box)
    status, err = run_cli(capsys, *fill_out(files, box))
    assert status == 2 and "holds more than a zarr store" in one_error(err) and "--overwrite replaces only" in err
    assert tree_digest(box) == before


def fill_out(files, out):
    return ["fill", files["cube"], "--var", "SST", "--mask-var", "mask", "--model", files["dincae"], "--out", out,
            "--overwrite"]


@pytest.mark.parametrize("case", ["geonb_store", "xarray_store", "nested_chunks", "empty_folder", "file", "link"])
def test_overwrite_replaces_a_zarr_store_or_a_file(files, tmp_path, capsys, case):
    box, mine = tmp_path / "X.zarr", tmp_path / "mine"
    if case == "geonb_store":
        write_zarr(small(), box)
    elif case == "xarray_store":
        small().to_zarr(box)
    elif case == "nested_chunks":  # zarr 2 with "/" between chunk indices: b/0/1
        xr.Dataset({"b": (("x", "y"), np.ones((4, 4)))}).chunk(2).to_zarr(
            box, zarr_format=2, encoding={"b": {"chunk_key_encoding": {"name": "v2", "separator": "/"}}})
    elif case == "empty_folder":
        box.mkdir()
    elif case == "file":
        box.write_text("old")
    else:  # a link to the user's folder: the link is replaced, never what it points to
        mine.mkdir()
        (mine / "thesis.tex").write_text("years of work")
        box.symlink_to(mine)
    before = tree_digest(files["cube"]), case != "link" or tree_digest(mine)
    assert run_cli(capsys, *fill_out(files, box))[0] == 0
    assert "SST_error" in xr.open_zarr(box) and not box.is_symlink()
    assert (tree_digest(files["cube"]), case != "link" or tree_digest(mine)) == before
    assert [p.name for p in tmp_path.iterdir() if ".geonb-" in p.name] == []


@pytest.mark.parametrize("kind", ["fifo", "socket", "device"])
def test_overwrite_never_replaces_a_fifo_a_socket_or_a_device(files, tmp_path, capsys, kind):
    out = tmp_path / "out.nc"
    if kind == "fifo":
        os.mkfifo(out)
    elif kind == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(out))
    else:
        out = Path("/dev/null")
    status, err = run_cli(capsys, *fill_out(files, out))
    assert status == 2 and f"is a {kind}" in one_error(err).lower() and "--overwrite replaces only" in err
    assert out.exists() and not out.is_file()


@pytest.mark.parametrize("alias", ["same", "symlink", "hardlink"])
def test_the_python_api_never_replaces_the_file_a_dataarray_came_from(files, tmp_path, alias):
    source = tmp_path / "mine.nc"
    shutil.copy(files["cube"], source)
    target = {"same": source, "symlink": tmp_path / "link.pt", "hardlink": tmp_path / "hard.pt"}[alias]
    if alias == "symlink":
        target.symlink_to(source)
    elif alias == "hardlink":
        os.link(source, target)
    before = tree_digest(source)
    ds = xr.open_dataset(source)
    with pytest.raises(GeonbError, match="never overwrites its inputs"):
        ds.SST.geonb.fill(model=files["dincae"], mask=ds.mask, save_model=target, overwrite=True)
    with pytest.raises(GeonbError, match="never overwrites its inputs"):
        geonb.fill(ds.SST.load(), quick=True, save_model=target, overwrite=True)
    ds.close()
    assert tree_digest(source) == before


def test_a_model_file_never_replaces_a_zarr_store(files, tmp_path, capsys):
    store = tmp_path / "cube.zarr"
    xr.open_dataset(files["cube"]).to_zarr(store)
    before = tree_digest(store)
    da = xr.open_zarr(store).SST  # a DataArray from zarr does not name its store: the rule still holds
    with pytest.raises(GeonbError, match="cube.zarr is a folder; give a file path"):
        da.geonb.fill(quick=True, save_model=store, overwrite=True)
    status, err = run_cli(capsys, "fill", files["cube"], "--var", "SST", "--quick", "--out", tmp_path / "o.nc",
                          "--save-model", store, "--overwrite")
    assert status == 2 and "is a folder; give a file path" in one_error(err) and tree_digest(store) == before


def test_the_python_api_refuses_what_the_cli_refuses(files, tmp_path):
    fifo = tmp_path / "fifo.pt"
    os.mkfifo(fifo)
    ds = xr.open_dataset(files["cube"])
    with pytest.raises(GeonbError, match="is a FIFO"):
        ds.SST.geonb.fill(quick=True, mask=ds.mask, save_model=fifo, overwrite=True)
    with pytest.raises(GeonbError, match="exists; geonb does not replace it"):
        ds.SST.geonb.fill(quick=True, mask=ds.mask, save_model=files["srcnn"])


# ---------------------------------------------------------------- the rename swap, killed at each phase
KILLER = """
    import os, shutil, signal, sys
    from pathlib import Path
    import numpy as np, xarray as xr
    from geonb import io
    
    out, kind, point = sys.argv[1:]
    real = {"rename": os.rename, "replace": os.replace, "rmtree": shutil.rmtree}

    def killing(name, when):
        def call(*args, **kwargs):
            if when(*args):
                if point == "after_replace":
                    real[name](*args, **kwargs)
                elif point == "delete_during":  # the old store half deleted
                    os.remove(next(p for p in Path(args[0]).rglob("*") if p.is_file()))
                os.kill(os.getpid(), signal.SIGKILL)
            return real[name](*args, **kwargs)
        return call

    # the phases of outputs.replace for a store: the old renamed aside, the new renamed in, the old deleted;
    # for a file: one os.replace
    os.rename = killing("rename", lambda src, dst, *_: (point == "before_aside" and str(src) == out)
                        or (point == "before_in" and str(dst) == out))
    shutil.rmtree = killing("rmtree", lambda p, *_: point in ("before_delete", "delete_during") and "-aside" in str(p))
    os.replace = killing("replace", lambda src, dst, *_: point.endswith("_replace") and str(dst) == out)
    if point == "write":  # killed while the new file is being written
        xr.Dataset.to_netcdf = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
    (io.write_zarr if kind == "zarr" else io.write_netcdf)(xr.Dataset({"a": ("x", np.full(4, 2.0))}), out)
"""
OLD = ("before_aside", "before_in", "write", "before_replace")  # killed before the new output is in: the old


@pytest.mark.parametrize("kind, point", [("zarr", "before_aside"), ("zarr", "before_in"), ("zarr", "before_delete"),
                                         ("zarr", "delete_during"), ("nc", "write"), ("nc", "before_replace"),
                                         ("nc", "after_replace")])
def test_a_replacement_killed_at_any_phase_leaves_the_old_or_the_new_output(tmp_path, kind, point):
    out = tmp_path / f"out.{kind}"
    write, opened = (write_zarr, xr.open_zarr) if kind == "zarr" else (write_netcdf, xr.open_dataset)
    write(small(1.0), out)
    proc = python(KILLER, out, kind, point)
    assert proc.wait() == -signal.SIGKILL
    if point != "before_in":  # there the old waits complete aside, put back by the next geonb command
        assert float(opened(out)["a"].values[0]) == (1.0 if point in OLD else 2.0)
    check_outputs({"--out": out}, overwrite=True)  # what the next geonb command does first
    assert float(opened(out)["a"].values[0]) == (1.0 if point in OLD else 2.0)
    write(small(3.0), out)  # and the next write leaves nothing of the killed one behind
    assert float(opened(out)["a"].values[0]) == 3.0
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]


# ---------------------------------------------------------------- one run per run dir
HOLDER = """
    import sys, time
    from geonb.workflow import Run
    with Run(sys.argv[1], quick=True).hold():
        print("held", flush=True)
        time.sleep(60)
"""


def test_a_second_run_in_a_locked_run_dir_is_refused_naming_the_holder(tmp_path, capsys):
    run_dir = tmp_path / "run"
    holder = python(HOLDER, run_dir)
    try:
        assert holder.stdout.readline().strip() == "held"
        status, err = run_cli(capsys, "run", "--run-dir", run_dir, "--quick", "-p", "epochs", 2)
        line = one_error(err)
        assert status == 2 and f"run dir {run_dir} is in use by another geonb process (pid {holder.pid}:" in line
        assert not (run_dir / "notebooks").exists()
        with pytest.raises(GeonbError, match="in use by another geonb process"):  # Run.step too
            Run(run_dir, arch="srcnn", quick=True).step("data_prep")
        with pytest.raises(GeonbError, match="in use"):  # after a different parameter too
            Run(run_dir, quick=True, seed=3).step("simulate")
    finally:
        holder.kill()
        holder.wait()
    with Run(run_dir, quick=True).hold():  # a killed holder's lock dies with it
        # steps nested in a held run, and the processes it starts (notebook kernels, ddp workers), share its hold
        with Run(run_dir, quick=True).hold():
            child = python(HOLDER, run_dir)
            assert child.stdout.readline().strip() == "held"
            child.kill()
            child.wait()


# ---------------------------------------------------------------- full disks
def _full(monkeypatch, free=0):
    monkeypatch.setattr(shutil, "disk_usage", lambda path: SimpleNamespace(total=10**9, used=10**9 - free, free=free))


def test_not_enough_free_space_is_refused_before_filling(files, tmp_path, capsys, monkeypatch):
    _full(monkeypatch, free=1000)
    monkeypatch.setattr(sys.modules["geonb.filling"], "fill_dataset", lambda *a, **k: pytest.fail("filled first"))
    out = tmp_path / "o.nc"
    status, err = run_cli(capsys, "fill", files["cube"], "--var", "SST", "--quick", "--out", out)
    line = one_error(err)
    assert status == 2 and f"{out}: not enough free space (1000 bytes free on its disk, it needs about" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["cube.nc", "dincae.pt", "grid.nc", "srcnn.pt"])


def test_a_model_or_checkpoint_larger_than_the_free_space_is_refused_before_writing(tmp_path, monkeypatch):
    _full(monkeypatch, free=1000)
    with pytest.raises(GeonbError, match=r"m.pt: not enough free space \(1000 bytes free on its disk, it needs about "
                                         r"3.9 kB\)"):
        checkpoints.save_checkpoint(tmp_path / "m.pt", {"w": torch.zeros(1000), "meta": {"epoch": 3, "b": [torch.ones(2)]}})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left on device"),
                                   RuntimeError("NetCDF: HDF error"), OSError(errno.EDQUOT, "Disk quota exceeded")])
@pytest.mark.parametrize("kind", ["nc", "zarr"])
def test_a_full_disk_while_writing_is_one_line_and_keeps_the_old_output(files, tmp_path, capsys, monkeypatch, kind,
                                                                        error):
    out = tmp_path / f"o.{kind}"
    (write_zarr if kind == "zarr" else write_netcdf)(small(), out)
    before = tree_digest(out)

    def fills_up(self, path, *args, **kwargs):
        Path(path, "part").write_bytes(b"x" * 100) if kind == "zarr" else Path(path).write_bytes(b"x" * 100)
        _full(monkeypatch)
        raise error

    monkeypatch.setattr(xr.Dataset, "to_zarr" if kind == "zarr" else "to_netcdf", fills_up)
    status, err = run_cli(capsys, *fill_out(files, out))
    line = one_error(err)
    assert status == 2 and f"{out}: the disk is full (0 bytes free); this output needs" in line
    assert "Nothing was written" in line
    assert tree_digest(out) == before and [p for p in tmp_path.iterdir() if ".geonb-" in p.name] == []


def test_a_library_error_with_room_left_is_not_called_a_full_disk(tmp_path, monkeypatch):
    def fails(self, path, *args, **kwargs):
        raise RuntimeError("NetCDF: HDF error")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", fails)
    with pytest.raises(RuntimeError, match="HDF error"):
        write_netcdf(small(), tmp_path / "o.nc")
    assert list(tmp_path.iterdir()) == []


def test_the_file_size_limit_while_writing_is_one_line_and_keeps_the_old_output(files, tmp_path):
    """A real ``ulimit -f`` (EFBIG; netCDF says only "HDF error"): the old output stays, nothing is left behind."""
    import resource

    out = tmp_path / "o.nc"
    write_netcdf(small(), out)
    before = tree_digest(out)
    limit = 40_000  # the filled cube is about 49 kB
    done = subprocess.run([sys.executable, "-m", "geonb", *map(str, fill_out(files, out))], capture_output=True, text=True,
                          preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)), timeout=300)
    line = one_error(done.stderr)
    assert done.returncode == 2 and f"{out}: a file would pass this process's file-size limit (39.1 kB" in line
    assert tree_digest(out) == before and [p for p in tmp_path.iterdir() if ".geonb-" in p.name] == []


def test_a_full_disk_while_saving_a_model_is_one_line(files, tmp_path, capsys, monkeypatch):
    def fills_up(obj, path, *args, **kwargs):
        Path(path).write_bytes(b"x" * 64)
        _full(monkeypatch)
        raise RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 64 vs 0")

    monkeypatch.setattr(torch, "save", fills_up)
    model = tmp_path / "m.pt"
    status, err = run_cli(capsys, "train", "--arch", "srcnn", "--data", files["grid"], "--model", model,
                          "--epochs", 1, "--steps-per-epoch", 1, "--batch-size", 2, "--patch-lr", 4)
    line = one_error(err)
    assert status == 2 and "the disk is full" in line and "this output needs about" in line
    assert not model.exists() and [p for p in tmp_path.rglob("*.geonb-*")] == []


def test_a_full_disk_anywhere_else_is_one_line_not_a_bug_report(files, tmp_path, capsys, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x"))

    monkeypatch.setattr(sys.modules["geonb.filling"], "open_dataset", full)  # any write outside outputs.atomic_path
    status, err = run_cli(capsys, *fill_out(files, tmp_path / "o.nc"))
    line = one_error(err)
    assert status == 2 and f"the disk is full ([Errno 28] No space left on device: '{tmp_path / 'x'}')" in line


def _run_one_cell(tmp_path, cell: str) -> Path:
    """A one-cell notebook run by `geonb run`'s runner; the executed copy's path."""
    import nbformat

    from geonb.cli import run_notebooks

    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell)],
                                        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                 "language": "python"}})
    nbformat.write(notebook, tmp_path / "tiny.ipynb")
    (written,) = run_notebooks(tmp_path / "run", quick=True, notebooks=("tiny",), notebook_dir=tmp_path)
    return written


def test_the_notebooks_of_a_geonb_run_share_its_hold(tmp_path):
    cell = "from geonb.workflow import Run\nwith Run(run_dir, quick=True).hold():\n    print('shared')"
    assert "shared" in _run_one_cell(tmp_path, cell).read_text()


def test_geonb_run_kernels_listen_on_private_sockets_without_the_tcp_warning(tmp_path, capfd):
    """The kernels of `geonb run` use IPC sockets in a temporary folder (removed after), not TCP ports:
    nothing else can reach them, and ipykernel prints no "running over TCP without encryption" per notebook."""
    import nbformat

    cell = "from ipykernel.kernelapp import IPKernelApp; print(IPKernelApp.instance().transport)"
    written = _run_one_cell(tmp_path, cell)
    out = nbformat.read(written, as_version=4).cells[-1].outputs[0]["text"]
    assert out.strip() == "ipc"
    assert "without encryption" not in capfd.readouterr().err
