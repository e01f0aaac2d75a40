"""`modelreg verify`: is this model (a file, a directory, or an IPFS CID) exactly a registered version?"""

from pathlib import Path

import click

from modelreg.cli.options import (
    VERSION,
    config_of,
    depth_text,
    follow_symlinks_option,
    home_of,
    json_option,
    open_registry,
    print_json,
    read_options,
)
from modelreg.errors import VersionNotFound
from modelreg.service import audit as audit_lib
from modelreg.service.report import visible
from modelreg.service.verify import MISMATCH, REVOKED, VERIFIED


@click.command()
@click.argument("target")
@click.option("--model", "model", required=True, help="Model to verify against: its name, or #ID for its id.")
@click.option("--version", "version", type=VERSION, help="Version to compare with; default: find which version it is.")
@click.option("--tensor", "tensors", multiple=True,
              help="Also prove this tensor on-chain with a Merkle proof checked by the contract (repeatable).")
@click.option("--file", "files", multiple=True, metavar="PATH",
              help="Also prove this file of a model directory (config.json) on-chain, likewise (repeatable).")
@follow_symlinks_option
@read_options
@json_option
def verify(target, model, version, tensors, files, follow_symlinks, as_json):
    """Verify TARGET against MODEL's on-chain record: a safetensors file, a model directory, or the
    IPFS CID of either.

    The weights root, the tensor count and the files root (config, tokenizer, every other file
    of a directory) must all match. Exit codes: 0 verified, 1 mismatch or revoked, 2 usage or input error.
    """
    registry = open_registry()
    events = registry.events()
    found = audit_lib.find_model(events, model)
    if not found["versions"]:
        raise VersionNotFound(f"model {model!r} has no versions yet, so no file can match it; commit one "
                              "first, or check the name (`modelreg audit models` lists each model's versions)")
    verdict = registry.verify(target, found["id"], version=version, tensors=tensors, files=files,
                              follow_symlinks=follow_symlinks)
    depth = None
    if verdict.status == VERIFIED and verdict.version:
        depth = registry.depth(registry.client.get_version(found["id"], verdict.version).block_number)
    if as_json:
        print_json({**verdict.to_dict(), "depth": depth})
    else:
        _print(model, verdict)
        _print_cache_note(target)
        if depth is not None:
            click.echo(f"  depth: {depth_text(depth)}" + (", final" if depth["final"] else ""))
    if not verdict.ok:
        raise SystemExit(1)
    if depth is not None and not depth["final"]:
        # Younger than --confirmations asks: a reorg may still take it back, so it does not count yet.
        click.echo(f"NOT FINAL: version {verdict.version} is {depth['confirmations']} block(s) deep, short of "
                   f"--confirmations {depth['required']}; verify again later, or lower --confirmations", err=True)
        raise SystemExit(1)


def _print_cache_note(target: str) -> None:
    """Where a CID fetched from a Kubo daemon went, and how to get the space back."""
    ipfs = config_of().ipfs
    if ipfs.api and not Path(target).exists():
        click.echo(f"  fetched from {ipfs.api} into a cache in {home_of().ipfs} (not pinned, trimmed past "
                   f"{ipfs.cache_mib} MiB, --ipfs-cache-mib); `modelreg ipfs clear-cache` empties it")


def _print(model: str, v) -> None:
    model = v.model or model
    where = f"{model} version {v.version}" if v.version else model
    what = f"the {v.kind}"
    if v.status == MISMATCH:
        if v.file_root != v.chain_root:
            _echo(f"MISMATCH: {what} (root {v.file_root}) is not {where} (on-chain root {v.chain_root})")
        else:
            _echo(f"MISMATCH: {what} has the tensors of {where} but not its files (files root "
                  f"{v.files_root or 'none'}, on-chain {v.chain_files_root or 'none'})")
        if v.note:
            _echo(f"  {v.note}")
        _print_differences(v.differences)
    elif v.status == REVOKED:
        r = v.revocation
        replacement = ""
        if r["replacement"]:
            revoked_too = " (itself REVOKED since: do not use it either)" if r.get("replacement_revoked") else ""
            replacement = f"; replacement version {r['replacement']}{revoked_too}"
        _echo(f"REVOKED: {what} is {where} (root {v.file_root}), revoked by {r['revoker']}: "
              f"{r['reason']!r}{replacement}")
    else:
        files = f", files root {v.files_root}" if v.files_root else ""
        _echo(f"VERIFIED: {what} is {where} (root {v.file_root}, {v.tensors} tensors{files})")
        for e in v.earlier:
            _echo(f"  also committed earlier by model {e['model']} (version {e['version']}, account "
                       f"{e['committer']}, block {e['block']}): `modelreg audit find-root {v.file_root}` lists all")
    for name, ok in v.tensor_proofs.items():
        _echo(f"  tensor {name}: {'proven on-chain' if ok else 'PROOF REJECTED by the contract'}")
    for path, ok in v.file_proofs.items():
        _echo(f"  file {path}: {'proven on-chain' if ok else 'PROOF REJECTED by the contract'}")


def _print_differences(diff: dict) -> None:
    if "unavailable" in diff:
        _echo(f"  what differs: unknown ({diff['unavailable']})")
    for name, parts in diff.get("changed", {}).items():
        _echo(f"  changed: {name} ({', '.join(parts)})")
    for name in diff.get("added", []):
        _echo(f"  added:   {name}")
    for name in diff.get("removed", []):
        _echo(f"  removed: {name}")
    files = diff.get("files", {})
    for path, parts in files.get("changed", {}).items():
        _echo(f"  changed file: {path} ({', '.join(parts)})")
    for path in files.get("added", []):
        _echo(f"  added file:   {path}")
    for path in files.get("removed", []):
        _echo(f"  removed file: {path}")


def _echo(line: str) -> None:
    """Names, paths and reasons may be a stranger's: printed without control characters."""
    click.echo(visible(line))
