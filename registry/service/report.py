"""Audit reports: one model's history and lineage rendered as Markdown, JSON or one self-contained HTML file.

The input is the plain dict that `modelreg.service.audit.build_report` assembles from contract events
and manifests; nothing here touches the chain or IPFS, so a report can be re-rendered offline. The
three formats carry the same facts: JSON is that dict, Markdown and HTML print every part of it.
"""

import html
import json
import math
import shlex
import unicodedata
from datetime import datetime, timezone
from urllib.parse import quote

# Explorers of public networks, by chain id: where a tx or address link goes when none is configured.
EXPLORERS = {
    1: "https://etherscan.io/{path}",
    11155111: "https://sepolia.etherscan.io/{path}",
    17000: "https://holesky.etherscan.io/{path}",
    560048: "https://hoodi.etherscan.io/{path}",
}

MANIFEST_CHECK = ("manifest check: the version's manifest was fetched by its CID and its Merkle root "
                  "compared with the weights root on-chain; 'manifest verified' means they are equal.")


def render(report: dict, fmt: str) -> str:
    if fmt == "json":
        from modelreg.formats.manifest import canonical_json  # (loads the Merkle code: for JSON reports only)

        return canonical_json({**report, "how_to_check": check_commands(report)}).decode("utf-8")
    if fmt == "md":
        return render_markdown(report)
    if fmt == "html":
        return render_html(report)
    raise ValueError(f"unknown report format {fmt!r}")


# ---------------------------------------------------------------------------- shared wording

def _when(report: dict, block: int | None) -> str:
    stamp = report.get("times", {}).get(str(block))
    if stamp is None:
        return "-"
    return datetime.fromtimestamp(stamp, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _parent(version: dict, names: dict[int, str]) -> str:
    parent = version.get("parent")
    if not parent:
        return "-"
    return f"{names.get(parent['model_id'], parent['model_id'])} v{parent['version']}"


def _revoked(version: dict) -> str:
    return f"REVOKED: {version['revoked']['reason']}" if version.get("revoked") else "no"


def _names(report: dict) -> dict[int, str]:
    """Model id -> name for every model the lineage reaches (ids of other models are all a version has)."""
    names = {report["model"]["id"]: report["model"]["name"]}
    for node in report["lineage"]["nodes"]:
        if "model_id" in node:
            names[node["model_id"]] = node["row"]
    return names


def _labels(report: dict) -> dict[str, str]:
    return {n["id"]: (f"dataset {_cut(n['root'])}" if n["row"] == "datasets" else n["label"] + _stranger(n))
            for n in report["lineage"]["nodes"]}


def _stranger(entry: dict) -> str:
    """" (by stranger 0x…)" for a version committed by an account with no role in the audited model."""
    return f" (by stranger {entry['stranger']})" if entry.get("stranger") else ""


def edges(report: dict) -> list[str]:
    """Every lineage edge as a sentence: dataset -> version, parent -> child, marked across models."""
    labels, rows = _labels(report), {n["id"]: n["row"] for n in report["lineage"]["nodes"]}
    out = []
    derived = report.get("derivations") or {}  # node id -> service.derive.derivation_edges
    for src, dst in report["lineage"]["edges"]:
        if rows.get(src) != "datasets" and dst in derived:
            kind = _derivation(derived[dst])
        elif rows.get(src) == "datasets":
            kind = "trained on"
        elif rows.get(src) != rows.get(dst):
            kind = "parent, across models"
        else:
            kind = "parent"
        out.append(f"{labels.get(src, src)} → {labels.get(dst, dst)} ({kind})")
    return out


def _derivation(d: dict) -> str:
    from modelreg.service.derive import fidelity_summary

    params = " ".join(f"{k}={v}" for k, v in d["params"].items())
    checked = "checkable by audit replay" if d["checkable"] else "not checkable: the transform is unknown"
    return f"{d['kind']}{' ' + params if params else ''}; {checked}; fidelity: {fidelity_summary(d['fidelity'])}"


def _cut(value: str | None, keep: int = 10) -> str:
    if not value:
        return "-"
    return value if len(value) <= 2 * keep + 1 else f"{value[:keep]}…{value[-6:]}"


def check_commands(report: dict) -> list[str]:
    """The exact commands a reader runs to check the report's claims against the chain themselves."""
    rpc = report["chain"].get("rpc", "")
    rpc = rpc if rpc.startswith(("http://", "https://")) else "RPC_URL"
    flags = f"--rpc-url {shlex.quote(rpc)} --registry {report['chain']['contract']}"
    name = shlex.quote(report["model"]["name"])
    # What to verify is what the version holds: a model directory when it has a files root, else one file.
    commands = [f"modelreg verify {'MODEL_DIR/' if v.get('files_root') else 'CHECKPOINT.safetensors'} "
                f"--model {name} --version {v['version']} {flags}" for v in report["versions"]]
    commands += [f"modelreg audit history {name} {flags}",
                 f"modelreg audit report {name} --format html -o report.html {flags}"]
    return commands


def valid_cid(cid) -> bool:
    """Whether a string read from the chain parses as a CID; the contract checks only its length."""
    from modelreg.errors import CidInvalid
    from modelreg.ipfs.unixfs import parse_cid

    try:
        return isinstance(cid, str) and cid == cid.strip() and parse_cid(cid) is not None
    except CidInvalid:
        return False


def shown_cid(cid: str | None) -> str:
    """A CID as a report shows it: itself, or marked invalid (and then never linked)."""
    if not cid:
        return "-"
    return cid if valid_cid(cid) else f"invalid CID {cid!r}"


def cid_url(report: dict, cid: str | None) -> str | None:
    template = report.get("links", {}).get("gateway")
    return template.replace("{cid}", cid) if template and cid and valid_cid(cid) else None


def visible(text, keep: str = "") -> str:
    """Text with every control or format character (ESC, NUL, a line break, bidi overrides, zero-width)
    but those in `keep` shown as \\uXXXX: a stranger's string cannot move a terminal's cursor, start a
    line of its own, or reorder what a reader sees."""
    return "".join(f"\\u{ord(c):04x}" if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") and c not in keep
                   else c for c in str(text))


def explorer_url(report: dict, kind: str, value) -> str | None:
    """A link to a tx, an address or a block on the configured explorer, or None without one."""
    template = report.get("links", {}).get("explorer")
    return template.replace("{path}", f"{kind}/{value}") if template and value is not None else None


def _intro(report: dict) -> str:
    chain, model = report["chain"], report["model"]
    latest = chain["latest_block"]
    return (f"Read from chain {chain['chain_id']}, contract {chain['contract']} (deployed in block "
            f"{chain.get('deployment_block', '-')}), up to block {latest} ({_when(report, latest)}), "
            f"by {report.get('tool') or 'modelreg'}. Model {model['name']} (id {model['id']}) was registered in "
            f"block {model['block']} ({_when(report, model['block'])})."
            + (f" Manifests were fetched and checked through {report['ipfs_node']}." if report.get("ipfs_node") else ""))


# ---------------------------------------------------------------------------- Markdown

_MD_SPECIAL = "\\`*_{}[]<>()#+-.!|~"


def _md(text) -> str:
    """Text as Markdown shows it literally: every special character escaped, line breaks as spaces."""
    text = visible(" ".join(str(text).split()))
    return "".join(f"\\{c}" if c in _MD_SPECIAL else c for c in text)


def _md_link(text: str, url: str | None) -> str:
    # Inside <...> only <, > and line breaks end the destination; percent-encoded they cannot.
    return f"[{_md(text)}](<{quote(url, safe=_URL_SAFE)}>)" if url else _md(text)


_URL_SAFE = "/:?#@!$&'*+,;=-._~%"  # RFC 3986's reserved and unreserved characters: all else is encoded


def depth_lines(report: dict) -> list[str]:
    """One line a version on how deep its block was when the report was written (final or not yet)."""
    lines = []
    for v in report["versions"]:
        d = v.get("depth")
        if d is None:
            continue
        required = d["required"] if isinstance(d["required"], str) else f"{d['required']} confirmations"
        state = "final" if d["final"] else f"NOT FINAL yet (final at {required}): a reorg may still remove it"
        lines.append(f"version {v['version']}: block {v['block']}, {d['confirmations']} confirmations, {state}")
    return lines or ["Depth not read (no chain connection for this report)."]


def privacy_lines(report: dict) -> list[str]:
    """One line a version on its differential privacy, or one line saying no version was trained with DP."""
    from modelreg.formats.privacy import describe

    stated = [v for v in report["versions"] if v.get("privacy")]
    if not stated:
        return ["No version of this model states a differential-privacy guarantee: it was not trained with DP "
                "(or says nothing about it)."]
    return [f"version {v['version']}: {describe(v.get('privacy'))}" for v in report["versions"]]


def render_markdown(report: dict) -> str:
    model, names = report["model"], _names(report)
    revoked = [v for v in report["versions"] if v.get("revoked")]
    lines = [
        f"# Audit report: {_md(model['name'])} (model {model['id']})", "",
        _md(_intro(report)), "",
        f"- owner: {_md_link(model['owner'], explorer_url(report, 'address', model['owner']))}",
        f"- maintainers now: {', '.join(_md_link(m, explorer_url(report, 'address', m)) for m in model['maintainers']) or 'none'}",
        f"- metadata: {_md(model.get('metadata') or '-')}",
        f"- {len(report['versions'])} versions, {len(revoked)} revoked", "",
        "## How to check this yourself", "",
        "Each command reads the chain itself; `verify` seals your copy of the weights and compares its "
        "Merkle root with the version's root on-chain.", "",
        "```", *check_commands(report), "```", "",
        "## History", "",
        _md(MANIFEST_CHECK), "",
        "| version | step | metrics | note | weights root | tensors | files root | dataset root | parent | "
        "manifest CID | checkpoint CID | committer | block | time | tx | manifest check | replay | revoked |",
        "|" + " --- |" * 18,
    ]
    for v in report["versions"]:
        cells = [str(v["version"]), str(v.get("step") if v.get("step") is not None else "-"), _md(metrics_text(v)),
                 _md(v.get("note") or "-"), _md(v["weights_root"]), str(v.get("tensor_count", "-")),
                 _md(v.get("files_root") or "-"), _md(v.get("dataset_root") or "-"), _md(_parent(v, names)),
                 _md_link(shown_cid(v.get("manifest_cid")), cid_url(report, v.get("manifest_cid"))),
                 _md_link(shown_cid(v.get("checkpoint_cid")), cid_url(report, v.get("checkpoint_cid"))),
                 _md_link(v["committer"], explorer_url(report, "address", v["committer"])) + _md(_stranger(v)),
                 str(v["block"]),
                 _md(_when(report, v["block"])), _md_link(v["tx"], explorer_url(report, "tx", v["tx"])),
                 _md(v.get("verification", "-")), _md(v.get("replay", "-")), _md(_revoked(v))]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Revocations", ""]
    for v in revoked:
        r = v["revoked"]
        lines += [f"- version {v['version']}, revoked in block {r['block']} ({_md(_when(report, r['block']))})",
                  f"  - reason: {_md(r['reason'])}",
                  f"  - revoker: {_md_link(r['revoker'], explorer_url(report, 'address', r['revoker']))}",
                  f"  - replacement: {'version ' + str(r['replacement']) if r.get('replacement') else 'none'}",
                  f"  - transaction: {_md_link(r['tx'], explorer_url(report, 'tx', r['tx']))}"]
    if not revoked:
        lines.append("none")
    lines += ["", "## Owners and maintainers over time", "", "| block | time | change | account | tx |",
              "| --- | --- | --- | --- | --- |"]
    for r in report.get("roles", []):
        lines.append(f"| {r['block']} | {_md(_when(report, r['block']))} | {_md(r['change'])} | "
                     f"{_md_link(r['account'] or '-', explorer_url(report, 'address', r['account']))} | "
                     f"{_md_link(r['tx'], explorer_url(report, 'tx', r['tx']))} |")
    lines += ["", "## Finality", ""] + [f"- {_md(line)}" for line in depth_lines(report)]
    lines += ["", "## Differential privacy", ""] + [f"- {_md(line)}" for line in privacy_lines(report)]
    lines += ["", "## Lineage", ""] + [f"- {_md(edge)}" for edge in edges(report)]
    lines += ["", "## Datasets", ""]
    for d in report["datasets"]:
        lines.append(f"- {_md(d['root'])} (record {d.get('id', '-')}): used by {_md(', '.join(d.get('used_by', [])))}; "
                     f"manifest {_md_link(shown_cid(d.get('manifest_cid')), cid_url(report, d.get('manifest_cid')))} "
                     f"({_md(d.get('verification', '-'))}), {_md(d.get('files', '?'))} files; registered by "
                     f"{_md_link(d.get('registrant') or '-', explorer_url(report, 'address', d.get('registrant')))} "
                     f"in block {d.get('block', '-')} ({_md(_when(report, d.get('block')))})")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- HTML

def _esc(text) -> str:
    return html.escape(visible(text, keep="\n\t"))  # HTML shows a line break or a tab as a space


def _a(text, url: str | None, cls: str = "") -> str:
    """Escaped text, a link when there is a URL; hashes get the class that lets them wrap."""
    body = _esc(text)
    attr = f' class="{cls}"' if cls else ""
    if cls == "hash":  # shown cut to one line; the whole value is in the text (select, copy) and the tooltip
        attr += f' title="{body}"'
    return f'<a href="{html.escape(url)}"{attr}>{body}</a>' if url else f"<span{attr}>{body}</span>"


def numeric_metrics(version: dict) -> dict[str, float]:
    """A version's metrics that are finite numbers (a manifest may carry anything: strings are not charted)."""
    return {k: v for k, v in sorted((version.get("metrics") or {}).items())
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


def metrics_text(version: dict) -> str:
    return ", ".join(f"{k} {v:.6g}" for k, v in numeric_metrics(version).items()) or "-"


def metric_series(versions: list[dict]) -> tuple[str, dict[str, list[tuple[int, float]]]]:
    """Every numeric metric's points, against the training step when every version has one, else the
    version number; and which of the two the x axis is."""
    by_step = all(isinstance(v.get("step"), int) for v in versions)
    series: dict[str, list[tuple[int, float]]] = {}
    for v in versions:
        for name, value in numeric_metrics(v).items():
            series.setdefault(name, []).append((v["step"] if by_step else v["version"], value))
    return ("training step" if by_step else "version"), {k: sorted(pts) for k, pts in sorted(series.items())}


def metric_charts(versions: list[dict]) -> str:
    """One chart of the loss series together, one per other metric; only series of two or more points
    are drawn (one point on an axis of its own says nothing), and the others are named as not drawn."""
    x_title, series = metric_series(versions)
    if not series:
        return "<p>No numeric metrics in the manifests.</p>"
    drawn = {k: pts for k, pts in series.items() if len(pts) >= 2}
    losses = {k: pts for k, pts in drawn.items() if k.endswith("loss")}
    parts = [_svg_chart(losses, x_title, "loss (from each manifest)")] if losses else []
    parts += [_svg_chart({k: pts}, x_title, k) for k, pts in drawn.items() if k not in losses]
    few = [f"{html.escape(k)} ({len(pts)} point: {pts[0][1]:.6g} at {x_title} {pts[0][0]})"
           for k, pts in series.items() if len(pts) < 2]
    if few:
        parts.append(f'<p class="note" id="not-charted">Not charted, fewer than two points: {"; ".join(few)}.</p>')
    return "\n".join(parts)


_COLORS = {"train_loss": "#777", "val_loss": "#c0392b"}
_PALETTE = ("#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


def _svg_chart(series: dict[str, list[tuple[int, float]]], x_title: str, y_title: str, width: int = 680,
               height: int = 280) -> str:
    xs = [s for pts in series.values() for s, _ in pts]
    ys = [y for pts in series.values() for _, y in pts]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y0, y1 = min(ys), max(ys) if max(ys) > min(ys) else min(ys) + 1
    left, pad = 70, 50

    def px(s, y):
        return (left + (s - x0) / (x1 - x0) * (width - left - pad),
                height - pad - (y - y0) / (y1 - y0) * (height - 2 * pad))

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'role="img" aria-label="{html.escape(y_title)} by {x_title}">',
             f'<line x1="{left}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#000"/>',
             f'<line x1="{left}" y1="{pad}" x2="{left}" y2="{height - pad}" stroke="#000"/>',
             f'<text class="axis-title" x="{(left + width - pad) / 2}" y="{height - 10}" text-anchor="middle" '
             f'font-size="12">{x_title}</text>',
             f'<text class="axis-title" x="16" y="{height / 2}" text-anchor="middle" font-size="12" '
             f'transform="rotate(-90 16 {height / 2})">{html.escape(y_title)}</text>',
             f'<text x="{left - 4}" y="{pad + 4}" font-size="11" text-anchor="end">{y1:.4g}</text>',
             f'<text x="{left - 4}" y="{height - pad}" font-size="11" text-anchor="end">{y0:.4g}</text>',
             f'<text x="{left}" y="{height - pad + 14}" font-size="11" text-anchor="middle">{x0}</text>',
             f'<text x="{width - pad}" y="{height - pad + 14}" font-size="11" text-anchor="middle">{x1}</text>']
    for i, (key, pts) in enumerate(series.items()):
        color = _COLORS.get(key, _PALETTE[i % len(_PALETTE)])
        coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in (px(s, v) for s, v in pts))
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{coords}"/>')
        for x, y in (px(s, v) for s, v in pts):
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}"/>')
        parts.append(f'<text x="{width - pad - 90}" y="{pad + 14 * i}" font-size="12" '
                     f'fill="{color}">{html.escape(key)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _svg_lineage(lineage: dict) -> str:
    """Versions as boxes, one row per model, ordered left to right; datasets on the top row; every edge drawn."""
    nodes = lineage["nodes"]
    if not nodes:
        return "<p>No versions.</p>"
    rows = sorted({n["row"] for n in nodes}, key=lambda r: (r != "datasets", r))
    parent_of = {dst: src for src, dst in lineage["edges"] if not src.startswith("dataset:")}
    cols: dict[str, int] = {}  # the next free column of each row
    col_of: dict[str, int] = {}
    pos = {}
    for n in sorted(nodes, key=lambda n: n.get("order", 0)):
        # Right of its parent, even in another row, so that every arrow points forward in time.
        col = max(cols.get(n["row"], 0), col_of.get(parent_of.get(n["id"]), -1) + 1)
        cols[n["row"]], col_of[n["id"]] = col + 1, col
        pos[n["id"]] = (20 + col * 150, 30 + rows.index(n["row"]) * 90)
    width = 40 + max(cols.values()) * 150
    height = 40 + len(rows) * 90
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             'role="img" aria-label="lineage graph">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" '
             'markerHeight="6" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>']
    for src, dst in lineage["edges"]:
        if src not in pos or dst not in pos:
            continue
        (x1, y1), (x2, y2) = pos[src], pos[dst]
        if src.startswith("dataset:"):  # down from the data row, dashed
            ends, dash = (x1 + 60, y1 + 36, x2 + 60, y2), ' stroke-dasharray="4 3"'
        elif y1 == y2:  # the next version in the same model
            ends, dash = (x1 + 120, y1 + 18, x2, y2 + 18), ""
        else:  # a parent in another model's row
            ends, dash = (x1 + 60, y1 + (36 if y2 > y1 else 0), x2 + 60, y2 + (0 if y2 > y1 else 36)), ""
        parts.append(f'<line class="edge" data-edge="{html.escape(src)} {html.escape(dst)}" '
                     'x1="{}" y1="{}" x2="{}" y2="{}" stroke="#555"'.format(*ends)
                     + f'{dash} marker-end="url(#arrow)"/>')
    for n in nodes:
        x, y = pos[n["id"]]
        fill = "#fde2e2" if n.get("revoked") else ("#eef" if n["row"] == "datasets" else "#e8f5e9")
        parts.append(f'<rect x="{x}" y="{y}" width="120" height="36" rx="5" fill="{fill}" stroke="#333"/>'
                     f'<text x="{x + 60}" y="{y + 22}" text-anchor="middle" font-size="11">'
                     f"{html.escape(n['label'])}</text>")
    parts.append("</svg>")
    return "".join(parts)


def _table(head: list[str], rows: list[list[str]], cls: str = "") -> str:
    """`rows` are HTML already (escaped by the caller)."""
    attr = f' class="{cls}"' if cls else ""
    return (f"<table{attr}><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"
            + "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows) + "</table>")


def render_html(report: dict) -> str:
    """One self-contained file: nothing is loaded from elsewhere (styles, fonts, images, scripts); links
    to a gateway or an explorer are only followed when clicked. The data is embedded as JSON."""
    model, names, esc = report["model"], _names(report), _esc
    addr = lambda a: _a(a or "-", explorer_url(report, "address", a), "hash")  # noqa: E731
    tx = lambda t: _a(t, explorer_url(report, "tx", t), "hash")  # noqa: E731
    cid = lambda c: _a(shown_cid(c), cid_url(report, c), "hash")  # noqa: E731
    history = _table(
        ["version", "step", "metrics", "note", "weights root", "tensors", "files root", "dataset root", "parent",
         "manifest CID", "checkpoint CID", "committer", "block", "time", "tx", "manifest check", "replay", "revoked"],
        [[str(v["version"]), esc(str(v.get("step") if v.get("step") is not None else "-")), esc(metrics_text(v)),
          f'<span class="version-note">{esc(v.get("note") or "-")}</span>',
          _a(v["weights_root"], None, "hash"), esc(str(v.get("tensor_count", "-"))),
          _a(v.get("files_root") or "-", None, "hash"), _a(v.get("dataset_root") or "-", None, "hash"),
          esc(_parent(v, names)), cid(v.get("manifest_cid")), cid(v.get("checkpoint_cid")),
          addr(v["committer"]) + esc(_stranger(v)),
          str(v["block"]), esc(_when(report, v["block"])), tx(v["tx"]), esc(v.get("verification", "-")),
          esc(v.get("replay", "-")),
          f'<span class="revoked">{esc(_revoked(v))}</span>' if v.get("revoked") else "no"]
         for v in report["versions"]], "history")
    revoked = [v for v in report["versions"] if v.get("revoked")]
    revocations = _table(
        ["version", "reason", "revoker", "replacement", "block", "time", "transaction"],
        [[str(v["version"]), f'<span class="reason">{esc(v["revoked"]["reason"])}</span>',
          addr(v["revoked"]["revoker"]),
          f"version {v['revoked']['replacement']}" if v["revoked"].get("replacement") else "none",
          str(v["revoked"]["block"]), esc(_when(report, v["revoked"]["block"])), tx(v["revoked"]["tx"])]
         for v in revoked]) if revoked else "<p>None.</p>"
    roles = _table(["block", "time", "change", "account", "tx"],
                   [[str(r["block"]), esc(_when(report, r["block"])), esc(r["change"]), addr(r["account"]),
                     tx(r["tx"])] for r in report.get("roles", [])])
    datasets = _table(["root", "used by", "manifest CID", "manifest check", "files", "registrant", "block", "time"],
                      [[_a(d["root"], None, "hash"), esc(", ".join(d.get("used_by", []))), cid(d.get("manifest_cid")),
                        esc(d.get("verification", "-")), esc(str(d.get("files", "?"))), addr(d.get("registrant")),
                        esc(str(d.get("block", "-"))), esc(_when(report, d.get("block")))]
                       for d in report["datasets"]])
    edge_list = "".join(f"<li>{esc(e)}</li>" for e in edges(report))
    commands = esc("\n".join(check_commands(report)))
    maintainers = ", ".join(addr(m) for m in model["maintainers"]) or "none"
    # No <, > or & survive as themselves: the data cannot close the script tag or open a comment.
    embedded = (json.dumps(report, sort_keys=True).replace("<", "\\u003c").replace(">", "\\u003e")
                .replace("&", "\\u0026"))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>modelreg audit: {esc(model['name'])}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1400px; }}
table {{ border-collapse: collapse; font-size: 12px; margin: 0.5em 0; }}
td, th {{ border: 1px solid #ccc; padding: 3px 6px; font-family: ui-monospace, monospace; vertical-align: top; }}
th {{ background: #f3f3f3; white-space: nowrap; }}
.hash {{ display: inline-block; max-width: 13ch; overflow: hidden; text-overflow: ellipsis; white-space: nowrap;
         vertical-align: bottom; }}
table.history td {{ max-width: 16em; }}
.revoked, .reason {{ color: #a00; font-weight: bold; }}
aside {{ border: 2px solid #2c6e49; background: #f3faf5; padding: 0.5em 1em; margin: 1em 0; }}
pre {{ white-space: pre-wrap; word-break: break-all; font-size: 12px; }}
.note {{ font-size: 12px; color: #555; }}
</style></head><body>
<h1>Audit report: {esc(model['name'])} (model {model['id']})</h1>
<p id="provenance">{esc(_intro(report))}</p>
<p>Owner {addr(model['owner'])}; maintainers now: {maintainers}; metadata: {esc(model.get('metadata') or '-')};
{len(report['versions'])} versions, {len(revoked)} revoked. Every value below was read from contract events
and IPFS manifests; anyone with an RPC endpoint gets the same answer.</p>
<aside id="check"><h2>How to check this yourself</h2>
<p>Each command reads the chain itself; <code>verify</code> seals your copy of the weights and compares its
Merkle root with the version's root on-chain (exit 0 verified, 1 mismatch or revoked).</p>
<pre>{commands}</pre></aside>
<h2>History</h2>
<p class="note">{esc(MANIFEST_CHECK)}</p>
{history}
<h2>Revocations</h2>
{revocations}
<h2>Owners and maintainers over time</h2>
{roles}
<h2>Finality</h2>
<ul id="finality">{"".join(f"<li>{esc(line)}</li>" for line in depth_lines(report))}</ul>
<h2>Differential privacy</h2>
<ul id="privacy">{"".join(f"<li>{esc(line)}</li>" for line in privacy_lines(report))}</ul>
<h2>Lineage</h2>
{_svg_lineage(report['lineage'])}
<ul id="edges">{edge_list}</ul>
<h2>Metrics (from the manifests)</h2>
{metric_charts(report['versions'])}
<h2>Datasets</h2>
{datasets}
<script type="application/json" id="report-data">{embedded}</script>
</body></html>
"""
