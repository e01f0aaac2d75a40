"""The `modelreg` command: the root group, shared options, and the one place errors become `Error:` lines.

Command modules are imported only when their command runs (or its --help is asked for), so
`modelreg --help` loads click and nothing else: torch and web3 are imported by the commands
that need them.
"""

import errno
import importlib
import logging
import os
import sys

import click

from modelreg.cli.hints import hint_for
from modelreg.errors import DiskFull, ModelregError

# name -> (module, attribute, the one-line help `modelreg --help` lists, which becomes the command's
# short_help, so the list and the commands cannot disagree).
COMMANDS = {
    "init": ("modelreg.cli.config", "init", "Write the configuration file: chain, signer and IPFS."),
    "config": ("modelreg.cli.config", "config", "Read the effective configuration."),
    "train-and-register": ("modelreg.cli.train", "train_and_register",
                           "Train a GPT language model from scratch and register every checkpoint."),
    "commit": ("modelreg.cli.commit", "commit", "Commit any model, a safetensors file or a directory."),
    "verify": ("modelreg.cli.verify", "verify", "Prove TARGET is exactly a registered version."),
    "derive": ("modelreg.cli.derive", "derive", "Derive a cast, int8 or ONNX version and commit it with its edge."),
    "audit": ("modelreg.cli.audit", "audit", "Read history, lineage and revocations from the chain."),
    "model": ("modelreg.cli.model", "model", "Register models and manage who may commit to them."),
    "deploy": ("modelreg.cli.model", "deploy", "Deploy a ModelRegistry on the configured chain."),
    "seal": ("modelreg.cli.seal", "seal", "Seal a model, a file or a directory: its roots."),
    "dataset": ("modelreg.cli.seal", "dataset", "Datasets: seal a directory of files into a root, register it."),
    "diff": ("modelreg.cli.seal", "diff", "Which tensors and files two models or manifests differ in."),
    "devnet": ("modelreg.cli.devnet", "devnet", "The embedded Ethereum devnet of the data directory."),
    "ipfs": ("modelreg.cli.ipfs", "ipfs", "Store files as UnixFS DAGs with the CIDs Kubo gives them."),
}


def _home_here(ctx: click.Context, _param, value) -> None:
    """`--home` after a subcommand, where users type it too: it wins over the one before."""
    if value is not None:
        ctx.find_root().obj["home_flag"] = value


def _with_home_option(command: click.Command) -> click.Command:
    if not any(p.name == "home_here" for p in command.params):
        command.params.append(click.Option(
            ["--home", "home_here"], type=click.Path(file_okay=False), expose_value=False, is_eager=True,
            callback=_home_here, help="Data directory (as `modelreg --home`)."))
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _with_home_option(sub)
    return command


class Group(click.Group):
    """The root group: commands loaded on demand; library errors become one `Error:` line and their exit code."""

    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module, attribute, short_help = COMMANDS[name]
        command = getattr(importlib.import_module(module), attribute)
        command.short_help = short_help
        return _with_home_option(command)

    def format_commands(self, ctx, formatter):
        with formatter.section("Commands"):
            formatter.write_dl([(name, COMMANDS[name][2]) for name in self.list_commands(ctx)])

    args: list[str] = []  # the command line as typed, so an error can show the command to run next

    def main(self, args=None, *rest, **kwargs):
        self.args = list(sys.argv[1:] if args is None else args)
        return super().main(args, *rest, **kwargs)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ModelregError as e:
            hint = hint_for(e)
            click.echo(f"Error: {e}" + (f"; {hint}" if hint else ""), err=True)
            ctx.exit(e.exit_code)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as e:  # a bug: still one line for the user, the traceback on request
            if os.environ.get("MODELREG_DEBUG"):
                raise
            if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):  # a full disk no layer named
                full = DiskFull(f"no space left on the device writing {e.filename or 'the data directory'}")
                click.echo(f"Error: {full}; {hint_for(full)}", err=True)
                ctx.exit(full.exit_code)
            click.echo(f"Error: unexpected {type(e).__name__}: {e} (MODELREG_DEBUG=1 shows the traceback)",
                       err=True)
            ctx.exit(2)


@click.group(cls=Group)
@click.version_option(package_name="modelreg", prog_name="modelreg", message="%(prog)s %(version)s")
@click.option("--home", type=click.Path(file_okay=False), envvar="MODELREG_HOME",
              help="Data directory holding every piece of local state [env MODELREG_HOME; default ~/.modelreg].")
@click.pass_context
def cli(ctx, home):
    """modelreg: train, seal, pin and commit model checkpoints; verify and audit them."""
    ctx.obj = {"home_flag": home}
    _notices_to_stderr()


class _Notices(logging.Handler):
    """The library's INFO lines (a devnet started, a commit made in the background) on stderr: stdout
    stays what the command prints, so `--json` output is still one JSON document."""

    def emit(self, record):
        if os.environ.get("MODELREG_NOTICES", "1") != "0":  # read now: one process may run many commands
            click.echo(record.getMessage(), err=True)


def _notices_to_stderr() -> None:
    logger = logging.getLogger("modelreg")
    if not any(isinstance(h, _Notices) for h in logger.handlers):
        logger.addHandler(_Notices())
        logger.setLevel(logging.INFO)


def main():
    cli(prog_name="modelreg")
