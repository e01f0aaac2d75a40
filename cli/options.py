"""Options and output helpers shared by every command."""

import json

import click

from registry.home import resolve_home


def home_of(ctx: click.Context | None = None):
    """The resolved data directory for this invocation (--home, $MODELREG_HOME, ~/.modelreg)."""
    ctx = ctx or click.get_current_context()
    return resolve_home((ctx.find_root().obj or {}).get("home_flag"))


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for programs instead of text.")


def print_json(obj) -> None:
    click.echo(json.dumps(obj, indent=2, sort_keys=True, default=str))
