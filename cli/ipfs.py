"""`modelreg ipfs`: add, get, pin and move UnixFS files and directories, embedded or through a Kubo daemon."""

from pathlib import Path

import click
from rich.table import Table

from modelreg.cli.options import (
    console,
    follow_symlinks_option,
    home_of,
    json_option,
    print_json,
)
from modelreg.ipfs.store import Ipfs, clear_cache, open_ipfs
from modelreg.ipfs.unixfs import DEFAULT_PROFILE, PROFILES
from modelreg.service.config import load_config

profile_option = click.option(
    "--profile", type=click.Choice(list(PROFILES)), default=None,
    help=f"UnixFS profile: chunk size, leaf type, links per node, CID version "
         f"[default: the configured ipfs.profile, else {DEFAULT_PROFILE}].")


def _ipfs(profile: str | None = None) -> Ipfs:
    """The store the configuration names (file, environment, then these flags)."""
    ctx = click.get_current_context()
    flags = {("ipfs", "api"): ctx.meta.get("ipfs_api"), ("ipfs", "profile"): profile,
             ("ipfs", "cache_mib"): ctx.meta.get("ipfs_cache_mib"),
             ("network", "timeout"): ctx.meta.get("timeout")}
    config = load_config(home_of(ctx), flags=flags)
    return open_ipfs(home_of(ctx), api=config.ipfs.api or None, profile=config.ipfs.profile,
                     timeout=config.network.timeout, cache_bytes=config.ipfs.cache_mib << 20)


_API_HELP = ("Kubo RPC API: a URL, a multiaddr, or the daemon's repo directory (IPFS_PATH, whose api file "
             "is read on each call) [env MODELREG_IPFS_API; default: the embedded store in the data directory].")
_TIMEOUT_HELP = "Deadline for each call to the daemon, in seconds [env MODELREG_TIMEOUT; default 120]."
_CACHE_HELP = "Keep content fetched from Kubo, unpinned, up to this size [env MODELREG_IPFS_CACHE_MIB; default 1024]."


def _remember(name):
    def callback(ctx, param, value):
        if value is not None:  # given after the subcommand: it wins over the group's
            ctx.meta[name] = value
        return value

    return callback


def _settings(command):
    """The group's settings, accepted after the subcommand too (`modelreg ipfs add --ipfs-api ...`)."""
    for flag, name, kind, text in (("--ipfs-api", "ipfs_api", None, _API_HELP),
                                   ("--timeout", "timeout", click.IntRange(1), _TIMEOUT_HELP),
                                   ("--ipfs-cache-mib", "ipfs_cache_mib", click.IntRange(0), _CACHE_HELP)):
        command = click.option(flag, name, type=kind, expose_value=False, callback=_remember(name),
                               help=text)(command)
    return command


class _Group(click.Group):
    def command(self, *args, **kwargs):
        decorator = super().command(*args, **kwargs)
        return lambda f: decorator(_settings(f))


@click.group(cls=_Group)
@click.option("--ipfs-api", metavar="URL|IPFS_PATH", help=_API_HELP)
@click.option("--timeout", type=click.IntRange(1), help=_TIMEOUT_HELP)
@click.option("--ipfs-cache-mib", type=click.IntRange(0), help=_CACHE_HELP)
@click.pass_context
def ipfs(ctx, ipfs_api, timeout, ipfs_cache_mib):
    """Store files as UnixFS DAGs with the CIDs Kubo gives them."""
    ctx.meta.update(ipfs_api=ipfs_api, timeout=timeout, ipfs_cache_mib=ipfs_cache_mib)


@ipfs.command()
@click.argument("path", type=click.Path(exists=True))
@profile_option
@click.option("--only-hash", is_flag=True, help="Compute the CID only; store nothing.")
@click.option("--no-pin", is_flag=True, help="Store without pinning (gc may remove it).")
@follow_symlinks_option
@json_option
def add(path, profile, only_hash, no_pin, follow_symlinks, as_json):
    """Add a file, or a directory with everything under it (as `ipfs add -r --hidden`), and print its CID."""
    store = _ipfs(profile)
    if only_hash:
        cid = store.cid_of(path, follow_symlinks=follow_symlinks)
    else:
        cid = store.add(path, pin=not no_pin, follow_symlinks=follow_symlinks)
    if as_json:
        print_json({"cid": cid, "path": path, "profile": store.profile.name, "size": _size(Path(path)),
                    "directory": Path(path).is_dir(), "stored": not only_hash,
                    "pinned": not (only_hash or no_pin)})
    else:
        click.echo(f"{cid}  {path}")


def _size(path: Path) -> int:
    """A file's size, or the bytes of every file under a directory."""
    if not path.is_dir():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


@ipfs.command()
@click.argument("cid")
@click.option("-o", "--output", required=True, type=click.Path(),
              help="File or directory to write (it must not exist yet); only written once every "
                   "block has been verified.")
def get(cid, output):
    """Write a file's bytes, or a directory tree, checking every block against its CID.

    CID may name a path inside a directory: CID/config.json.
    """
    _ipfs().get(cid, output)
    click.echo(f"{cid} -> {output}")


@ipfs.command()
@click.argument("cid")
def cat(cid):
    """Print a file's bytes (CID, or CID/path inside a directory), every block checked."""
    click.echo(_ipfs().cat(cid), nl=False)


@ipfs.command()
@click.argument("cid")
def pin(cid):
    """Pin a DAG so gc keeps it (every block must be present)."""
    _ipfs().pin(cid)
    click.echo(f"pinned {cid}")


@ipfs.command()
@click.argument("cid")
def unpin(cid):
    """Remove a pin; the blocks go at the next gc."""
    _ipfs().unpin(cid)
    click.echo(f"unpinned {cid}")


@ipfs.command(name="ls")
@click.argument("cid", required=False)
@json_option
def ls_(cid, as_json):
    """List pinned CIDs, or with CID the entries of that directory."""
    if cid is not None:
        entries = _ipfs().ls(cid)
        if as_json:
            print_json({"cid": cid, "entries": [{"name": e.name, "cid": str(e.cid), "tsize": e.tsize}
                                                for e in entries]})
            return
        table = Table("name", "CID", "size (DAG bytes)")
        for e in entries:
            table.add_row(e.name, str(e.cid), str(e.tsize))
        console().print(table)
        return
    pins = _ipfs().pins()
    if as_json:
        print_json({"pins": pins})
        return
    table = Table("pinned CID")
    for pinned in pins:
        table.add_row(pinned)
    console().print(table)


@ipfs.command()
@json_option
def gc(as_json):
    """Remove every block no pin reaches."""
    removed = _ipfs().gc()
    if as_json:
        print_json({"removed": removed})
    else:
        click.echo(f"removed {removed} blocks")


@ipfs.command()
@json_option
def check(as_json):
    """Re-hash every block against its CID and check that every pinned DAG is complete."""
    store = _ipfs()
    if not hasattr(store, "check"):
        raise click.ClickException("`ipfs check` checks the embedded store; for a Kubo daemon run "
                                   "`ipfs repo verify` there")
    report = store.check()
    if as_json:
        print_json({"blocks": report.blocks, "pins": report.pins, "problems": report.problems,
                    "ok": not report.problems})
    else:
        for problem in report.problems:
            click.echo(problem)
        click.echo(f"checked {report.blocks} blocks and {report.pins} pins: "
                   + ("all good" if not report.problems else f"{len(report.problems)} problems"))
    if report.problems:
        raise click.ClickException(
            "the store has problems: re-add or `ipfs import-car` the files of each incomplete pin, "
            "or `ipfs unpin` it; then run `ipfs gc` to drop corrupted unpinned blocks")


@ipfs.command(name="export-car")
@click.argument("cid")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="CARv1 file to write (`ipfs dag import` accepts it).")
def export_car(cid, output):
    """Export the DAG under CID as a CARv1 file."""
    _ipfs().export_car(cid, output)
    click.echo(f"{cid} -> {output}")


@ipfs.command(name="import-car")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@json_option
def import_car(file, as_json):
    """Import a CARv1 file, checking every block, and pin its roots."""
    roots = _ipfs().import_car(file)
    if as_json:
        print_json({"roots": roots})
    else:
        for root in roots:
            click.echo(f"imported and pinned {root}")


@ipfs.command(name="clear-cache")
@json_option
def clear_cache_(as_json):
    """Drop content kept only because it was fetched to verify or read (Kubo: the local cache in
    the data directory, not the daemon's store; embedded: unpinned blocks)."""
    removed = clear_cache(_ipfs())
    if as_json:
        print_json({"removed": removed})
    else:
        click.echo(f"removed {removed} cached blocks")
