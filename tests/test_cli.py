import subprocess
import sys

import pytest

from geonb.cli import main, parse_value
from geonb.registry import list_archs


def test_archs_lists_every_architecture_with_its_task(capsys):
    assert main(["archs"]) == 0
    out = capsys.readouterr().out
    for arch in list_archs():
        assert arch.name in out and arch.task in out
    assert {"unet", "ctxgan", "srcnn", "rsrcnn", "srgan", "dincae"} <= {a.name for a in list_archs()}


def test_python_dash_m_works():
    out = subprocess.run([sys.executable, "-m", "geonb", "archs"], capture_output=True, text=True, check=True).stdout
    assert "unet" in out


def test_run_refuses_unknown_parameter(capsys, tmp_path):
    assert main(["run", "--quick", "--run-dir", str(tmp_path), "-p", "epoch", "3"]) == 2
    assert "unknown parameter(s) ['epoch']" in capsys.readouterr().err


@pytest.mark.parametrize("text,value", [("3", 3), ("0.5", 0.5), ("True", True), ("[1, 2]", [1, 2]), ("srgan", "srgan")])
def test_parameter_values_are_parsed(text, value):
    assert parse_value(text) == value
