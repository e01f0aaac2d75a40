"""The `modelreg` command: the root group, shared options, and the one place errors become `Error:` lines."""

import os

import click

from modelreg.errors import ModelregError


class Group(click.Group):
    """A click group that turns library errors into one `Error:` line and the error's exit code."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ModelregError as e:
            click.echo(f"Error: {e}", err=True)
            ctx.exit(e.exit_code)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as e:  # a bug: still one line for the user, the traceback on request
            if os.environ.get("MODELREG_DEBUG"):
                raise
            click.echo(f"Error: unexpected {type(e).__name__}: {e} (MODELREG_DEBUG=1 shows the traceback)",
                       err=True)
            ctx.exit(2)


@click.group(cls=Group)
@click.option("--home", type=click.Path(file_okay=False), envvar="MODELREG_HOME",
              help="Data directory holding every piece of local state [env MODELREG_HOME; default ~/.modelreg].")
@click.pass_context
def cli(ctx, home):
    """modelreg: train, seal, pin and commit model checkpoints; verify and audit them."""
    ctx.obj = {"home_flag": home}


def main():
    cli(prog_name="modelreg")


def _register_commands() -> None:
    # Imported here, after `cli` exists, because the command modules import cli.options.
    from modelreg.cli import audit, config, devnet, ipfs, model, seal, train, verify

    for command in (config.init, config.config, train.train_and_register, verify.verify, audit.audit,
                    model.model, model.deploy, seal.seal, seal.dataset, seal.diff, devnet.devnet, ipfs.ipfs):
        cli.add_command(command)


_register_commands()
