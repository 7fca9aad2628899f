"""Typed run parameters: another task's parameter and a wrong type are refused by name (in Python and on
the command line, before any notebook runs); quick values and the arch's learning rate apply unless given."""
from __future__ import annotations

import pytest

import geonb
from geonb.cli import main
from geonb.errors import GeonbError
from geonb.params import COMMON, NOT_SET, STEPS
from geonb.tasks import get_task
from geonb.workflow import task_names


def test_a_parameter_of_another_task_names_its_owner(tmp_path):
    with pytest.raises(GeonbError, match=r"parameter 'factor' belongs to task downscale .*not to inpaint"):
        geonb.Run(tmp_path, arch="unet", factor=4)
    # downscaling's training tile is patch_lr; `patch` is inpainting's patch size
    with pytest.raises(GeonbError, match=r"parameter 'patch' belongs to task inpaint"):
        geonb.Run(tmp_path, arch="srcnn", patch=8)
    assert geonb.Run(tmp_path, arch="srcnn", patch_lr=8)["patch_lr"] == 8
    assert not (tmp_path / "inpaint").exists() and not (tmp_path / "downscale").exists()  # no work done


def test_a_value_of_the_wrong_type_names_the_parameter_and_type(tmp_path):
    with pytest.raises(GeonbError, match=r"parameter 'epochs' must be int .*got 'abc' \(str\)"):
        geonb.Run(tmp_path, arch="unet", epochs="abc")
    with pytest.raises(GeonbError, match=r"parameter 'epochs' must be int"):
        geonb.Run(tmp_path, arch="unet", epochs=True)  # a bool is not a number of epochs
    with pytest.raises(GeonbError, match=r"parameter 'transect_start' must be list"):
        geonb.Run(tmp_path, arch="unet", transect_start="30.5,-79.5")
    with pytest.raises(GeonbError, match=r"parameter 'lr' must be float"):
        geonb.Run(tmp_path, arch="srcnn", lr="fast")
    run = geonb.Run(tmp_path, arch="srcnn", lr=1, transect_start=(30.5, -79.5))
    assert run["lr"] == 1.0 and isinstance(run["lr"], float)  # an int is a fine float
    assert run["transect_start"] == [30.5, -79.5]  # a tuple is a fine [lat, lon]
    with pytest.raises(GeonbError, match=r"parameter 'tta' must be bool .*got 'yes' \(str\)"):
        geonb.Run(tmp_path, arch="unet_seg", tta="yes")


def test_a_switch_takes_true_and_false_in_any_case_from_papermill_and_the_command_line(tmp_path):
    from geonb.cli import parse_value

    assert geonb.Run(tmp_path, arch="unet_seg", tta="true")["tta"] is True  # papermill -p tta true passes a string
    assert geonb.Run(tmp_path, arch="unet_seg", tta="False")["tta"] is False
    assert [parse_value(t) for t in ("true", "FALSE", "True", "3", "[2, 6]", "srgan")] == [True, False, True, 3, [2, 6],
                                                                                           "srgan"]


def test_the_command_line_refuses_before_any_notebook_runs(tmp_path, capsys, monkeypatch):
    import papermill

    ran = []
    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **k: ran.append(a))
    code = main(["run", "--run-dir", str(tmp_path), "-p", "arch", "unet", "-p", "factor", "4"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("geonb: error: ") and "Traceback" not in err
    assert "'factor'" in err and "downscale" in err
    assert ran == [] and not (tmp_path / "notebooks").exists()
    assert main(["run", "--run-dir", str(tmp_path), "-p", "arch", "unet", "-p", "epochs", "abc"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'epochs'" in err and "int" in err and ran == []


def test_quick_values_apply_unless_given(tmp_path):
    assert geonb.Run(tmp_path, arch="unet")["epochs"] == 100
    assert geonb.Run(tmp_path, arch="unet", quick=True)["epochs"] == 5
    assert geonb.Run(tmp_path, arch="unet", quick=True, epochs=3)["epochs"] == 3
    assert geonb.Run(tmp_path, arch="unet", quick=False, epochs=3)["epochs"] == 3
    quick_sr = geonb.Run(tmp_path, arch="srgan", quick=True)
    assert (quick_sr["epochs"], quick_sr["patch_lr"], quick_sr["n_blocks"], quick_sr["synthetic"]) == (2, 8, 1, 0)
    assert geonb.Run(tmp_path, arch="srgan", quick=True, n_blocks=4)["n_blocks"] == 4
    assert geonb.Run(tmp_path, arch="srgan")["n_blocks"] == 12


def test_lr_none_is_the_archs(tmp_path):
    assert geonb.Run(tmp_path, arch="srgan")["lr"] == pytest.approx(1.7e-4)
    assert geonb.Run(tmp_path, arch="srgan", lr=None)["lr"] == pytest.approx(1.7e-4)
    assert geonb.Run(tmp_path, arch="srcnn")["lr"] == pytest.approx(1e-3)
    assert geonb.Run(tmp_path, arch="srgan", lr=1e-3)["lr"] == pytest.approx(1e-3)


def test_transect_ends_are_lat_lon_lists_in_every_task(tmp_path):
    for name in task_names():
        params = get_task(name).params
        for end in ("transect_start", "transect_end"):
            assert params[end].type is list and params[end].default is None, (name, end)


def test_every_task_takes_the_common_parameters_with_known_steps():
    for name in task_names():
        params = get_task(name).params
        assert {p.name for p in COMMON} <= {p.name for p in params}, name
        assert all(p.step is None or p.step in STEPS for p in params), name
        for p in params:  # each default and quick value passes its own type check
            assert p.check(p.default) == p.default, (name, p.name)
            if p.quick is not NOT_SET:
                assert p.check(p.quick) == p.quick, (name, p.name)
