"""`modelreg init` and `modelreg config show`: the configuration file in the data directory."""

import click

from modelreg.cli.options import config_of, connection_options, home_of, json_option, print_json
from modelreg.errors import InputInvalid
from modelreg.service.config import Config, save_config


@click.command()
@connection_options
@click.option("--force", is_flag=True, help="Overwrite an existing configuration file.")
@click.pass_context
def init(ctx, force):
    """Write the configuration file: chain, signer and IPFS, from these flags (secrets are never written)."""
    home = home_of(ctx)
    if home.config.exists() and not force:
        raise InputInvalid(f"{home.config} already exists; pass --force to overwrite it")
    flags = ctx.meta.get("modelreg.flags", {})
    path = save_config(home, Config().with_overrides(flags))
    click.echo(f"Wrote {path}")


@click.group()
def config():
    """Read the effective configuration."""


@config.command("show")
@connection_options
@json_option
def show(as_json):
    """Print the effective configuration (file, then environment, then flags), without secrets."""
    view = config_of().public_view()
    if as_json:
        print_json(view)
        return
    for section, values in view.items():
        click.echo(f"[{section}]")
        for key, value in values.items():
            click.echo(f"  {key} = {value}")
