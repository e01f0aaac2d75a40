"""`modelreg verify`: is this weights file (or IPFS CID) exactly a registered version?"""

import click

from modelreg.cli.options import VERSION, json_option, open_registry, print_json, read_options
from modelreg.errors import VersionNotFound
from modelreg.service import audit as audit_lib
from modelreg.service.verify import MISMATCH, REVOKED


@click.command()
@click.argument("target")
@click.option("--model", "model", required=True, help="Model name (or id) to verify against.")
@click.option("--version", "version", type=VERSION, help="Version to compare with; default: find which version it is.")
@click.option("--tensor", "tensors", multiple=True,
              help="Also prove this tensor on-chain with a Merkle proof checked by the contract (repeatable).")
@read_options
@json_option
def verify(target, model, version, tensors, as_json):
    """Verify TARGET (a safetensors path or an IPFS CID) against MODEL's on-chain record.

    Exit codes: 0 verified, 1 mismatch or revoked, 2 usage or input error.
    """
    registry = open_registry()
    events = registry.events()
    found = audit_lib.find_model(events, model)
    if not found["versions"]:
        raise VersionNotFound(f"model {model!r} has no versions yet, so no file can match it; commit one "
                              "first, or check the name (`modelreg audit models` lists each model's versions)")
    model_id = found["id"]
    verdict = registry.verify(target, model_id, version=version, tensors=tensors)
    if as_json:
        print_json(verdict.to_dict())
    else:
        _print(model, verdict)
    if not verdict.ok:
        raise SystemExit(1)


def _print(model: str, v) -> None:
    where = f"{model} version {v.version}" if v.version else model
    if v.status == MISMATCH:
        click.echo(f"MISMATCH: the file (root {v.file_root}) is not {where} (on-chain root {v.chain_root})")
        if v.note:
            click.echo(f"  {v.note}")
        diff = v.differences
        if "unavailable" in diff:
            click.echo(f"  tensors that differ: unknown ({diff['unavailable']})")
        for name, parts in diff.get("changed", {}).items():
            click.echo(f"  changed: {name} ({', '.join(parts)})")
        for name in diff.get("added", []):
            click.echo(f"  added:   {name}")
        for name in diff.get("removed", []):
            click.echo(f"  removed: {name}")
    elif v.status == REVOKED:
        r = v.revocation
        click.echo(f"REVOKED: the file is {where} (root {v.file_root}), revoked by {r['revoker']}: "
                   f"{r['reason']!r}" + (f"; replacement version {r['replacement']}" if r["replacement"] else ""))
    else:
        click.echo(f"VERIFIED: the file is {where} (root {v.file_root}, {v.tensors} tensors)")
    for name, ok in v.tensor_proofs.items():
        click.echo(f"  tensor {name}: {'proven on-chain' if ok else 'PROOF REJECTED by the contract'}")
