"""`geonb --version` and `geonb doctor`: what a bug report needs, read from the real environment."""
from __future__ import annotations

from importlib import metadata

import torch

import geonb
from geonb.cli import COMMAND_MODULES, main
from geonb import datasets
from geonb.doctor import report


def test_version_flag_prints_the_package_version(capsys):
    assert main(["--version"]) == 0  # answered before the parser is built
    assert capsys.readouterr().out.strip() == f"geonb {geonb.__version__}"
    assert geonb.__version__ == metadata.version("geonb")  # one version: the package metadata agrees


def _doctor(capsys, run_dir) -> dict[str, str]:
    rows = dict(report(run_dir))
    assert main(["doctor", "--run-dir", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert all(name in out and value in out for name, value in rows.items())  # the command prints every row
    return rows


def test_doctor_reports_versions_device_data_and_run_dir(capsys, monkeypatch, tmp_path):
    assert "geonb.doctor" in COMMAND_MODULES
    run_dir = tmp_path / "new" / "run"
    rows = _doctor(capsys, run_dir)
    assert rows["torch"] == torch.__version__ and rows["xarray"] == metadata.version("xarray")
    assert rows["geonb"].startswith(geonb.__version__)
    assert rows["device geonb trains on"].startswith("cuda" if torch.cuda.is_available() else "cpu")
    assert all(rows[f"dataset {name}"] == f"checked ({datasets.DATA_DIR / d.path})" for name, d in datasets.DATASETS.items())
    assert rows["coastlines (Natural Earth)"] == "found"
    assert rows[f"run dir {run_dir} writable"] == f"yes (would be created inside {tmp_path})"
    assert not (tmp_path / "new").exists()  # checked, not created

    monkeypatch.setattr(datasets, "DATA_DIR", tmp_path)  # an install that lost its data
    datasets.path.cache_clear()
    (tmp_path / "a_file").write_text("")
    rows = _doctor(capsys, tmp_path / "a_file" / "run")
    assert "is missing from this install" in rows["dataset alboran"]
    datasets.path.cache_clear()
    assert rows[f"run dir {tmp_path / 'a_file' / 'run'} writable"] == f"no: {tmp_path / 'a_file'} is not a folder"


def test_help_lists_every_command_of_the_full_parser_without_importing_torch(capsys):
    """`geonb --help` reads the command table alone (fast); the table must name every command the full
    parser builds, with the same help, or the quick help would hide or misdescribe one."""
    import subprocess
    import sys

    from geonb.cli import build_parser
    from geonb.commands import COMMANDS

    full = build_parser([])._subparsers._group_actions[0]
    assert list(full.choices) == list(COMMANDS)
    assert {a.dest: a.help for a in full._choices_actions} == COMMANDS
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS) and "--debug" in out
    probe = "import sys; from geonb.cli import main; main(['--help']); print('torch' in sys.modules)"
    ran = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert ran.stdout.strip().endswith("False")
