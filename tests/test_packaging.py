"""environment.yml (conda users) and pyproject.toml (pip) must list the same dependencies."""
import re
import tomllib

import yaml

from .conftest import REPO

CONDA_NAMES = {"pytorch": "torch"}


def _norm(spec: str) -> str:
    name = re.split(r"[<>=!~ ]", spec.strip(), maxsplit=1)[0].lower().replace("_", "-")
    return CONDA_NAMES.get(name, name) + spec.strip()[len(name):].replace(" ", "")


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pip_side = {_norm(d) for d in project["dependencies"] + project["optional-dependencies"]["test"]}
    env = yaml.safe_load((REPO / "environment.yml").read_text())["dependencies"]
    conda_side = set()
    for dep in env:
        if isinstance(dep, dict):
            conda_side |= {_norm(d) for d in dep["pip"]}
        elif not dep.startswith(("python=", "pip")):
            conda_side.add(_norm(dep))
    assert conda_side == pip_side
