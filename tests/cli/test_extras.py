"""A command that needs an extra the install lacks stops with one Error line naming the extra and pip.

The real check, in a venv without torch, is `.ci/user-install`; here the gate is pointed at a module
that no environment has, so the same code path runs in the full test environment.
"""

from pathlib import Path

import pytest
from click.testing import CliRunner

from modelreg import _extras
from modelreg.cli.main import cli
from modelreg.errors import ExtraNotInstalled


@pytest.fixture
def train_extra_missing(monkeypatch):
    monkeypatch.setitem(_extras.EXTRAS, "train", ("torch", "modelreg_no_such_module"))


@pytest.mark.parametrize(("args", "command"), [(["train-and-register"], "train-and-register"),
                                               (["audit", "replay", "some-model"], "audit replay")])
def test_a_command_needing_a_missing_extra_names_it_and_the_pip_command(train_extra_missing, tmp_path, args, command):
    result = CliRunner().invoke(cli, ["--home", str(tmp_path), *args])
    assert result.exit_code == 2
    assert result.output == (f"Error: {command} needs modelreg_no_such_module, which the modelreg[train] extra "
                             "installs; pip install 'modelreg[train]' (into the environment that runs modelreg)\n")
    assert not (tmp_path / "devnet").exists()  # refused before the chain was started


def test_the_python_api_raises_the_same_error(train_extra_missing):
    with pytest.raises(ExtraNotInstalled, match=r"modelreg\[train\] extra"):
        _extras.require("train", "modelreg.training")


def test_every_extra_the_gate_knows_is_declared_in_pyproject():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    declared = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    assert set(_extras.EXTRAS) <= set(declared["project"]["optional-dependencies"])
