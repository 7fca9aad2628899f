"""The pinned environment: geonb/requirements.lock is what the README's commands install, it honours
pyproject.toml's ranges, `geonb doctor` says whether the installed versions match it, and the regression
notebook's tolerance check (Report.compare) passes last-digit changes and fails real ones."""
import math
import tomllib

import pandas as pd
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from geonb.doctor import LOCK, lock_mismatches, report
from geonb.report import Report

from .conftest import REPO


def _pins(path=LOCK) -> dict[str, Requirement]:
    reqs = (Requirement(line) for line in path.read_text().splitlines() if line.strip() and not line.startswith("#"))
    return {canonicalize_name(r.name): r for r in reqs}


def test_this_environment_is_the_locked_one():
    """CI builds a fresh venv from the lock (scripts/setup.sh): every pin must be what is installed."""
    n, differ = lock_mismatches()
    assert n > 100 and differ == []
    assert dict(report("runs/default"))["versions vs lock"] == f"match all {n} pins of requirements.lock"


def test_the_lock_pins_every_dependency_exactly_within_pyproject_ranges():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = _pins()
    assert all(len(p.specifier) == 1 and next(iter(p.specifier)).operator == "==" for p in pins.values())
    for dep in map(Requirement, project["dependencies"] + project["optional-dependencies"]["test"]):
        pinned = next(iter(pins[canonicalize_name(dep.name)].specifier)).version
        assert dep.specifier.contains(pinned), f"{dep.name}: lock {pinned} outside pyproject's {dep.specifier}"


def test_setup_and_the_conda_lock_install_from_the_lock():
    setup = (REPO / "scripts" / "setup.sh").read_text()
    assert "LOCK=geonb/requirements.lock" in setup and '-c "$LOCK" -e ".[test]"' in setup
    pip = next(d["pip"] for d in yaml.safe_load((REPO / "environment.lock.yml").read_text())["dependencies"]
               if isinstance(d, dict))
    assert pip == ["-c geonb/requirements.lock", "-e .[test]"]


def test_doctor_names_each_version_that_differs_from_the_lock(tmp_path):
    lock = tmp_path / "requirements.lock"
    lock.write_text("# a lock\nnumpy==0.0.1\ntorch==" + _pins()["torch"].specifier.__str__()[2:] + "\nno-such-pkg==1.0\n")
    n, differ = lock_mismatches(lock)
    assert n == 3 and len(differ) == 2  # torch's local build (+cpu) matches its release pin
    assert differ[0].startswith("numpy ") and differ[0].endswith("(lock 0.0.1)")
    assert differ[1] == "no-such-pkg not installed (lock 1.0)"


def _report(square_unet: float, square_bih=0.28, many_raw=float("nan"), n_many=4557) -> Report:
    index = pd.MultiIndex.from_tuples([("square", "unet"), ("square", "biharmonic"), ("many", "unet")],
                                      names=["hole set", "method"])
    table = pd.DataFrame({"n holes": [1181, 1181, n_many], "rmse_raw": [0.3, math.nan, many_raw],
                          "rmse_holes": [square_unet, square_bih, 0.55]}, index=index)
    return Report("t", tables={"RMSE per hole set": table})


def test_compare_passes_last_digit_changes_and_names_real_ones():
    reference = _report(0.44).numbers()
    assert reference["RMSE per hole set | square / unet | rmse_holes"] == 0.44
    assert reference["RMSE per hole set | square / biharmonic | rmse_raw"] is None
    assert type(reference["RMSE per hole set | square / unet | n holes"]) is int
    tol = {"atol": 0.02, "rtol": 0.05}
    ok = _report(0.455, square_bih=0.2801).compare(reference, **tol)  # a rounding edge crossed: 0.44 → 0.46 at 2 dp
    assert ok == "9 numbers vs the reference (counts exact, others within 0.02 + 5%): all within"
    moved = _report(0.50).compare(reference, **tol)  # 0.06 °C worse: beyond 0.02 + 0.022
    assert moved.splitlines()[1:] == ["RMSE per hole set | square / unet | rmse_holes: 0.5 vs reference 0.44 "
                                      "(beyond ±0.042)"]
    nan = _report(0.44, many_raw=0.1).compare(reference, **tol)
    assert nan.splitlines()[1] == "RMSE per hole set | many / unet | rmse_raw: 0.1 where the reference has None"
    count = _report(0.44, n_many=4558).compare(reference, **tol)
    assert count.splitlines()[1] == "RMSE per hole set | many / unet | n holes: 4558 where the reference has 4557"
    fewer = dict(reference, extra=1.0)
    assert "extra: missing (reference 1.0)" in _report(0.44).compare(fewer, **tol)
