"""Every command, group and subcommand of `modelreg` explains itself with --help."""

import click
import pytest
from click.testing import CliRunner

from modelreg.cli.main import cli


def _walk(command: click.Command, path: tuple[str, ...] = ()):
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from _walk(sub, (*path, name))


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
