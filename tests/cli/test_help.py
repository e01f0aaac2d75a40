"""Every command, group and subcommand of `modelreg` explains itself with --help."""

import click
import pytest
from click.testing import CliRunner

from modelreg.cli.main import cli


def _walk(command: click.Command, path: tuple[str, ...] = ()):
    yield path, command
    if isinstance(command, click.Group):
        ctx = click.Context(command)
        for name in command.list_commands(ctx):  # the root loads its commands on demand
            yield from _walk(command.get_command(ctx, name), (*path, name))


COMMANDS = list(_walk(cli))


def _words(text: str) -> str:
    return " ".join(text.split())


def _id(path: tuple[str, ...]) -> str:
    return " ".join(path) or "modelreg"


def test_the_tree_holds_every_top_level_command_and_its_subcommands():
    names = {_id(path) for path, _ in COMMANDS}
    assert {"init", "config show", "train-and-register", "verify", "deploy", "model register",
            "model revoke", "audit history", "audit show", "seal", "dataset seal", "diff",
            "devnet up", "ipfs add"} <= names


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[_id(p) for p, _ in COMMANDS])
def test_every_command_has_help_text(path, command):
    assert (command.help or "").strip(), f"`{_id(path)}` has no help text"
    assert command.get_short_help_str().strip(), f"`{_id(path)}` has no short help for its group's listing"


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[_id(p) for p, _ in COMMANDS])
def test_every_option_has_help_text(path, command):
    bare = [p.name for p in command.params if isinstance(p, click.Option) and not (p.help or "").strip()
            and p.name != "help"]
    assert not bare, f"`{_id(path)}`: options without help: {bare}"


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[_id(p) for p, _ in COMMANDS])
def test_help_exits_0_and_prints_the_usage_and_the_help_text(path, command):
    result = CliRunner().invoke(cli, [*path, "--help"], prog_name="modelreg")
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Usage: modelreg {' '.join(path)}".rstrip())
    assert _words(command.help.strip().splitlines()[0]) in _words(result.output)  # help wraps lines
    assert "Traceback" not in result.output


def test_help_and_read_commands_do_not_import_torch_or_web3(tmp_path):
    import subprocess
    import sys

    code = ("import sys\nfrom click.testing import CliRunner\nfrom modelreg.cli.main import cli\n"
            "for args in (['--help'], ['audit', '--help'], ['verify', '--help'], ['seal', '--help']):\n"
            "    assert CliRunner().invoke(cli, args).exit_code == 0, args\n"
            "print(sorted(m for m in ('torch', 'web3', 'eth_tester') if m in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_home_may_come_after_the_subcommand(tmp_path):
    from click.testing import CliRunner

    result = CliRunner().invoke(cli, ["init", "--home", str(tmp_path / "h"), "--rpc-url", "http://127.0.0.1:8545"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "h" / "config.toml").exists()
    result = CliRunner().invoke(cli, ["--home", str(tmp_path / "other"), "config", "show", "--home", str(tmp_path / "h"),
                                      "--json"])
    assert '"rpc_url": "http://127.0.0.1:8545"' in result.output


@pytest.mark.parametrize("path", [("verify",), ("audit", "history"), ("audit", "report"), ("audit", "models")],
                         ids=_id)
def test_read_only_commands_offer_no_signer_options(path):
    command = dict((p, c) for p, c in COMMANDS)[path]
    flags = {opt for param in command.params for opt in getattr(param, "opts", [])}
    assert "--rpc-url" in flags
    assert not flags & {"--signer", "--keystore", "--key-env", "--dev-account"}
