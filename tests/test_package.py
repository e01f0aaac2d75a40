"""The package as a user imports it: its version, its public names."""

from importlib.metadata import version

from click.testing import CliRunner

import modelreg
from modelreg.cli.main import cli


def test_modelreg_version_is_the_installed_distributions():
    assert modelreg.__version__ == version("modelreg")
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and result.output == f"modelreg {version('modelreg')}\n"


def test_every_name_in_all_resolves_and_background_committer_is_listed():
    assert {"seal", "connect", "commit", "BackgroundCommitter", "ModelregError", "ExtraNotInstalled"} <= set(
        modelreg.__all__)
    for name in modelreg.__all__:
        assert getattr(modelreg, name) is not None
    assert "BackgroundCommitter" in dir(modelreg)
