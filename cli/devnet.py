"""`modelreg devnet up|down|status|reset`: the embedded chain of this data directory."""

import click

from modelreg.cli.options import home_of, json_option, print_json
from modelreg.devnet import manager


@click.group()
def devnet():
    """The embedded Ethereum devnet (chain id 1337) kept under <home>/devnet/."""


@devnet.command()
@click.option("--port", type=click.IntRange(0, 65535), default=manager.DEFAULT_PORT,
              show_default=True, help="Port on 127.0.0.1 (0 picks a free one).")
@click.option("--foreground", is_flag=True, help="Run in this terminal until Ctrl-C.")
@click.option("--idle-timeout", type=click.FloatRange(0), default=None,
              help=f"Stop after this many seconds without a request; 0: never [env {manager.IDLE_TIMEOUT_ENV}; "
                   f"default {manager.DEFAULT_IDLE_TIMEOUT:g}].")
@json_option
def up(port, foreground, idle_timeout, as_json):
    """Start the devnet in the background (or the foreground); no-op if it runs."""
    home = home_of()
    if foreground:
        from modelreg.devnet.__main__ import main

        idle = str(0 if idle_timeout is None else idle_timeout)  # in a terminal: until Ctrl-C unless asked
        raise SystemExit(main(["--home", str(home), "--port", str(port), "--idle-timeout", idle]))
    state = manager.up(home, port, idle_timeout=idle_timeout)
    if as_json:
        return print_json(state.to_json())
    click.echo(f"Devnet running at {state.url} (pid {state.pid}, block {state.block_number}); {state.stops_when()}")


@devnet.command()
def down():
    """Stop the devnet; its chain stays on disk."""
    stopped = manager.down(home_of())
    click.echo("Devnet stopped." if stopped else "No devnet was running.")


@devnet.command()
@json_option
def status(as_json):
    """Say whether the devnet runs, where, and at which block."""
    state = manager.status(home_of())
    if as_json:
        return print_json(state.to_json())
    if state.running:
        click.echo(f"Devnet running at {state.url} (pid {state.pid}, block {state.block_number}); "
                   f"chain in {state.directory}; {state.stops_when()}")
    else:
        click.echo(f"Devnet not running; chain in {state.directory}")


@devnet.command()
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def reset(yes):
    """Stop the devnet and delete its chain (every block, contract and record)."""
    home = home_of()
    if not yes:
        click.confirm(f"Delete the devnet chain in {home.devnet}? "
                      "Every deployed contract and committed version on it is lost", abort=True)
    manager.reset(home)
    click.echo("Devnet chain deleted; the next start begins at genesis.")
