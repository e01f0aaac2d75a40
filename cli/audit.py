"""`modelreg audit`: read a model's history and lineage from contract events."""

from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from modelreg._extras import require
from modelreg.cli.options import (
    VERSION,
    console,
    depth_text,
    json_option,
    open_registry,
    print_json,
    read_options,
    short,
)
from modelreg.errors import InputInvalid
from modelreg.ipfs.store import describe_node
from modelreg.service import audit as audit_lib
from modelreg.service.report import EXPLORERS, render, visible


def _replays(home, client) -> dict:
    """Recorded replays; their module (diffs, seals, eth_abi) is loaded only by the commands that show them."""
    from modelreg.service import replay

    return replay.recorded(home, client)


def _table(title: str, columns: list[str], rows: list[list]) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        # A stranger's string is shown as text: no rich markup, no terminal control sequence.
        table.add_row(*["-" if cell is None else escape(visible(cell)) for cell in row])
    console().print(table)


@click.group()
def audit():
    """Read history, lineage and revocations from the chain; write reports."""


@audit.command("models")
@read_options
@json_option
def models_cmd(as_json):
    """List every registered model."""
    found = audit_lib.models(open_registry().events())
    if as_json:
        return print_json(found)
    _table("Models", ["id", "name", "owner", "versions", "revoked", "maintainers"],
           [[m["id"], m["name"], short(m["owner"]), m["versions"], m["revoked"],
             ", ".join(short(a) for a in m["maintainers"])]
            for m in found])


@audit.command("history")
@click.argument("model")
@click.option("--final-only", is_flag=True, help="Leave out versions younger than --confirmations (a reorg may "
                                                 "still take them back).")
@read_options
@json_option
def history_cmd(model, final_only, as_json):
    """List MODEL's versions: roots, parents, datasets, committer, block, depth, revocations (--json: and DP claims)."""
    registry = open_registry()
    events = registry.events()
    model_id = audit_lib.find_model(events, model)["id"]
    versions = audit_lib.history(events, model_id)
    for v, depth in zip(versions, registry.depths([v["block"] for v in versions]), strict=True):
        v["depth"] = depth
    if final_only:
        versions = [v for v in versions if v["depth"]["final"]]
    if as_json:
        for v in versions:  # each version's DP claim, from its manifest (checked against the chain)
            status, manifest = audit_lib.check_manifest(v, registry.ipfs.cat)
            v["privacy"] = (manifest or {}).get("privacy") if status == "manifest verified" else None
        return print_json(versions)
    _table(f"History of {model} (datasets and CIDs: audit show, or --json)",
           ["version", "parent", "weights root", "committer", "block", "depth", "tx", "revoked"],
           [[v["version"], _parent(v, model_id), short(v["weights_root"]), _committer(v), v["block"],
             depth_text(v["depth"]) + ("" if v["depth"]["final"] else " (not final)"),
             short(v["tx"]), (v["revoked"] or {}).get("reason")] for v in versions])


@audit.command("find-root")
@click.argument("root")
@read_options
@json_option
def find_root_cmd(root, as_json):
    """List every version, across models, that committed weights root ROOT, in chain order.

    The first row is the first on-chain commit, not proof of authorship: a copier who saw a commit in
    the mempool can be mined first. Every committer's account and block are shown in full. Exits 1
    when no version has it, so a script can tell."""
    found = audit_lib.find_root(open_registry().events(), root)
    if as_json:
        print_json(found)
    elif found:
        _table(f"Versions with weights root {short(root)}, in chain order: the first is the first on-chain commit "
               "(mined first; that names no author)",
               ["model", "version", "tensors", "committer", "block", "log in block", "tx", "revoked"],
               [[v["name"], v["version"], v["tensor_count"], v["committer"], v["block"], v["log_index"],
                 short(v["tx"]), "yes" if v["revoked"] else ""] for v in found])
    else:
        click.echo(f"No version on this registry has weights root {root}")
    if not found:
        raise SystemExit(1)


@audit.command("show")
@click.argument("model")
@click.argument("version", type=VERSION)
@read_options
@json_option
def show_cmd(model, version, as_json):
    """Show one version of MODEL, with its manifest checked against the chain."""
    registry = open_registry()
    events = registry.events()
    entry = audit_lib.find_version(events, audit_lib.find_model(events, model), version)
    status, manifest = audit_lib.check_manifest(entry, registry.ipfs.cat)
    replayed = _replays(registry.home, registry.client).get((entry["model_id"], version))
    shown = {**entry, "verification": status, "manifest": manifest, "replay": replayed}
    if as_json:
        return print_json(shown)
    lines = [(key, "none" if entry.get(key) is None else entry[key])
             for key in ("version", "weights_root", "tensor_count", "files_root", "dataset_root", "manifest_cid",
                         "committer", "block", "tx")]
    depth = registry.depth(entry["block"])
    lines += [("depth", depth_text(depth) + ("" if depth["final"] else " (not final)")),
              ("parent", _parent(entry, entry["model_id"]) or "none"), ("revoked", _revocation(entry["revoked"])),
              ("manifest", status), ("replay", audit_lib.replay_summary(replayed))]
    if manifest:
        metrics = ", ".join(f"{k} {_number(v)}" for k, v in sorted((manifest.get("metrics") or {}).items()))
        step = manifest.get("step")
        lines += [("step", "-" if step is None else step), ("code_revision", manifest.get("code_revision") or "-"),
                  ("metrics", metrics or "none"), ("note", manifest.get("note") or "-"),
                  ("tensors", len(manifest["leaves"]))]
        if manifest.get("derivation"):
            lines += _derivation_lines(manifest["derivation"])
        from modelreg.formats.privacy import describe

        lines.append(("privacy", describe(manifest.get("privacy"))))
    for key, value in lines:  # every value may be a stranger's: shown without control characters
        click.echo(f"{key:>14}: {visible(value)}")


def _derivation_lines(d: dict) -> list[tuple[str, str]]:
    from modelreg.service.derive import fidelity_summary

    s = d["source"]
    params = " ".join(f"{k}={v}" for k, v in d["transform"]["params"].items())
    lines = [("edge", f"{d['kind']}{' (' + params + ')' if params else ''} from model {s['model_id']} "
                      f"v{s['version']} (weights root {s['weights_root']})"),
             ("checkable", "yes, audit replay re-derives it" if d["checkable"] else "no, transform unknown"),
             ("fidelity", fidelity_summary(d["fidelity"]))]
    if d["tools"]:
        lines.append(("tools", ", ".join(f"{k} {v}" for k, v in sorted(d["tools"].items()))))
    return lines


def _number(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _revocation(revoked: dict | None) -> str:
    if not revoked:
        return "no"
    replacement = f"; use version {revoked['replacement']} instead" if revoked.get("replacement") else ""
    return (f"yes, by {revoked['revoker']} in block {revoked['block']} (tx {revoked['tx']}): "
            f"{revoked['reason']}{replacement}")


@audit.command("lineage")
@click.argument("model")
@read_options
@json_option
def lineage_cmd(model, as_json):
    """Show MODEL's lineage: every ancestor and descendant version across models, and the datasets."""
    from modelreg.service.derive import derivation_edges, fidelity_summary

    registry = open_registry()
    events = registry.events()
    graph = audit_lib.lineage(events, audit_lib.find_model(events, model)["id"])
    unverified: dict[str, str] = {}
    derived = derivation_edges(events, graph, registry.ipfs.cat, unverified)
    if as_json:
        return print_json({**graph, "derivations": derived})
    parents = {dst: src for src, dst in graph["edges"] if not src.startswith("dataset:")}
    data = {dst: src for src, dst in graph["edges"] if src.startswith("dataset:")}
    roots = {n["id"]: n.get("root") for n in graph["nodes"] if n["row"] == "datasets"}

    def edge(node_id: str) -> str | None:
        if node_id not in parents:
            return None
        if node_id in unverified:  # the manifest says which kind of edge it is, and it cannot be read
            return f"unknown ({unverified[node_id]})"
        d = derived.get(node_id)
        if d is None:
            return "trained"
        checkable = "" if d["checkable"] else ", not checkable"
        return f"{d['kind']}{checkable}: {fidelity_summary(d['fidelity'])}"

    _table(f"Lineage of {model}", ["version", "parent", "edge", "dataset root", "weights root", "revoked",
                                   "stranger"],
           [[n["id"], parents.get(n["id"]), edge(n["id"]), short(roots.get(data.get(n["id"]))),
             short(n["weights_root"]), "yes" if n["revoked"] else "", n["stranger"] or ""]
            for n in graph["nodes"] if n["row"] != "datasets"])


_EXAMPLES = {"{cid}": "https://ipfs.io/ipfs/{cid}", "{path}": "https://sepolia.etherscan.io/{path}"}


def _template(value: str | None, placeholder: str, option: str) -> str | None:
    if value and (placeholder not in value or not value.startswith(("http://", "https://"))):
        raise InputInvalid(f"{option} must be an http(s):// URL containing {placeholder}, got {value!r}; "
                           f"e.g. {option} '{_EXAMPLES[placeholder]}'")
    return value


@audit.command("report")
@click.argument("model")
@click.option("--format", "fmt", type=click.Choice(["md", "json", "html"]), default="md", show_default=True,
              help="Markdown, JSON for programs, or a self-contained HTML page with the graphs.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the report to this file instead of standard output.")
@click.option("--gateway-url", envvar="MODELREG_GATEWAY_URL",
              help="Where CID links point: a URL template with {cid}, e.g. https://ipfs.io/ipfs/{cid} [env "
                   "MODELREG_GATEWAY_URL; default: none, CIDs are printed and not linked].")
@click.option("--explorer-url", envvar="MODELREG_EXPLORER_URL",
              help="Where transaction and address links point: a URL template with {path} (tx/HASH, "
                   "address/ADDR), e.g. https://sepolia.etherscan.io/{path} [env MODELREG_EXPLORER_URL; "
                   "default: Etherscan on mainnet and the public testnets, no links elsewhere].")
@read_options
def report_cmd(model, fmt, output, gateway_url, explorer_url):
    """Write an audit report for MODEL: history, revocations, owners over time, lineage, loss curve, and
    the commands that check it."""
    from importlib.metadata import version

    gateway_url = _template(gateway_url, "{cid}", "--gateway-url")
    explorer_url = _template(explorer_url, "{path}", "--explorer-url")
    registry = open_registry()
    events = registry.events()
    chain = registry.chain_info()
    links = {"gateway": gateway_url, "explorer": explorer_url or EXPLORERS.get(chain["chain_id"])}
    report = audit_lib.build_report(events, audit_lib.find_model(events, model)["id"], chain, registry.ipfs.cat,
                                    block_time=registry.block_time, tool=f"modelreg {version('modelreg')}",
                                    links=links, replays=_replays(registry.home, registry.client))
    report["ipfs_node"] = describe_node(registry.ipfs, registry.home)
    blocks = [v["block"] for v in report["versions"]]
    for v, depth in zip(report["versions"], registry.depths(blocks) if blocks else [], strict=True):
        v["depth"] = depth  # how deep each version is as the report is written: final, or not yet
    from modelreg.service.derive import derivation_edges

    report["derivations"] = derivation_edges(events, report["lineage"], registry.ipfs.cat)
    text = render(report, fmt)
    if output is None:
        return click.echo(text)
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as e:
        raise InputInvalid(f"cannot write the report to {output}: {e.strerror}") from None
    click.echo(f"Wrote {output}")


@audit.command("replay")
@click.argument("model")
@click.option("--version", type=VERSION, help="The version whose training segment to replay [default: the newest].")
@click.option("--sample", is_flag=True, help="Replay one segment up to VERSION, chosen by the hash of the "
                                             "first block mined after VERSION was committed.")
@click.option("--tolerance", nargs=2, type=float, metavar="ATOL RTOL",
              help="Tolerance mode, for runs trained on a GPU: each tensor within ATOL + RTOL * its largest "
                   "value passes; the verdict says it is tolerance-based.")
@click.option("--device", default="cpu", show_default=True, help="torch device to replay on.")
@read_options
@json_option
def replay_cmd(model, version, sample, tolerance, device, as_json):
    """Re-execute a committed stretch of MODEL's training and compare the weights with the chain's.

    REPRODUCED exits 0. DIVERGED at step N exits 1 and names the first batch that differs from
    what the run committed, or the tensors that differ. The verdict is recorded in the data
    directory; audit show and audit report print it.
    """
    if device != "cpu" and not tolerance:
        raise click.UsageError("a replay on a GPU is never bit-exact; pass --tolerance ATOL RTOL")
    require("train", "audit replay")
    from modelreg.service import replay as replay_lib
    from modelreg.training import transforms
    from modelreg.training.replay import execute  # torch is slow to import

    tol = replay_lib.Tolerance(*tolerance) if tolerance else None
    report = replay_lib.replay(open_registry(), model, version, execute, sample=sample, tolerance=tol, device=device,
                               derive_engine=transforms)
    if as_json:
        print_json(report.to_dict())
    elif report.verdicts[0].mode == "re-derived":
        v = report.verdicts[0]
        click.echo(f"{v.status}: {visible(v.model)} v{v.version} (re-derived): {visible(v.reason)}")
        for t in v.tensors[:10]:
            click.echo(f"  {t['kind']} {t['name']}: {t['difference']}")
    else:
        for v in report.verdicts:
            at = f" at step {v.step}" if v.status == "DIVERGED" else ""
            click.echo(visible(f"{v.status}{at}: {v.model} v{v.version}, steps {v.first_step}..{v.last_step} "
                               f"({v.mode}): {v.reason}"))  # a reason quotes a stranger's paths and CIDs
            for t in v.tensors[:5] if v.status == "DIVERGED" else ():
                click.echo(visible(f"  {t['name']}" + (f": max abs {t['max_abs']:.3g}, max rel {t['max_rel']:.3g}"
                                                        if "max_abs" in t else "")))
        if report.sampling:
            s = report.sampling
            click.echo(f"sampled by block {s['block']} ({s['hash']}): version {s['chosen']} of {s['candidates']}")
        click.echo(f"replayed {report.share:.1%} of the {report.total_steps} steps up to the version")
    if report.status != "REPRODUCED":
        click.get_current_context().exit(1)


@audit.command("reindex")
@read_options
@json_option
def reindex_cmd(as_json):
    """Rebuild the local event cache from the chain."""
    events = open_registry().rebuild_index()
    if as_json:
        print_json({"events": len(events)})
    else:
        click.echo(f"Indexed {len(events)} events")


def _committer(v: dict) -> str:
    """The committer, and, when it was neither owner nor maintainer at that block, its whole account."""
    return f"stranger {v['stranger']}" if v.get("stranger") else short(v["committer"])


def _parent(v: dict, model_id: int | None = None) -> str | None:
    """v3 for a parent in the same model, model 2 v3 for one in another (a fine-tune)."""
    if not v["parent"]:
        return None
    p = v["parent"]
    return f"v{p['version']}" if p["model_id"] == model_id else f"model {p['model_id']} v{p['version']}"
