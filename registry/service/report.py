"""Audit reports: one model's history and lineage rendered as Markdown, JSON or one self-contained HTML file.

The input is the plain dict that `registry.audit.build_report` assembles from contract events and
manifests; nothing here touches the chain or IPFS, so a report can be re-rendered offline.
"""

import html
import json

from modelreg.formats.manifest import canonical_json


def render(report: dict, fmt: str) -> str:
    if fmt == "json":
        return canonical_json(report).decode("utf-8")
    if fmt == "md":
        return render_markdown(report)
    if fmt == "html":
        return render_html(report)
    raise ValueError(f"unknown report format {fmt!r}")


def _short(value: str | None, keep: int = 10) -> str:
    if not value:
        return "-"
    return value if len(value) <= 2 * keep + 1 else f"{value[:keep]}…{value[-6:]}"


def _loss(version: dict) -> str:
    loss = (version.get("metrics") or {}).get("val_loss")
    return f"{loss:.4f}" if isinstance(loss, (int, float)) else "-"


def _status(version: dict) -> str:
    if version.get("revoked"):
        return "REVOKED"
    return version.get("verification", "-")


def _parent(version: dict) -> str:
    parent = version.get("parent")
    return f"{parent['model_id']}:{parent['version']}" if parent else "-"


HISTORY_COLUMNS = ("version", "step", "val loss", "weights root", "dataset root", "parent",
                   "manifest CID", "committer", "block", "tx", "status")


def _history_row(v: dict, short: bool) -> list[str]:
    cut = _short if short else (lambda x: x or "-")
    return [str(v["version"]), str(v.get("step", "-")), _loss(v), cut(v["weights_root"]),
            cut(v.get("dataset_root")), _parent(v), cut(v.get("manifest_cid")), cut(v.get("committer")),
            str(v["block"]), cut(v["tx"]), _status(v)]


def render_markdown(report: dict) -> str:
    model = report["model"]
    lines = [
        f"# Audit report: {model['name']} (model {model['id']})",
        "",
        f"- chain id {report['chain']['chain_id']}, contract `{report['chain']['contract']}`, "
        f"read up to block {report['chain']['latest_block']}",
        f"- owner `{model['owner']}`; maintainers: {', '.join(f'`{m}`' for m in model['maintainers']) or 'none'}",
        f"- {len(report['versions'])} versions, {sum(1 for v in report['versions'] if v.get('revoked'))} revoked",
        "",
        "## History",
        "",
        "| " + " | ".join(HISTORY_COLUMNS) + " |",
        "|" + " --- |" * len(HISTORY_COLUMNS),
    ]
    lines += ["| " + " | ".join(_history_row(v, short=False)) + " |" for v in report["versions"]]
    revoked = [v for v in report["versions"] if v.get("revoked")]
    if revoked:
        lines += ["", "## Revocations", ""]
        for v in revoked:
            r = v["revoked"]
            lines.append(f"- version {v['version']}: {r['reason']!r} by `{r['revoker']}` in block "
                         f"{r['block']} (tx `{r['tx']}`), replacement: {r.get('replacement') or 'none'}")
    lines += ["", "## Datasets", ""]
    for d in report["datasets"]:
        lines.append(f"- `{d['root']}`: manifest `{d.get('manifest_cid') or '-'}`, "
                     f"{d.get('files', '?')} files, registered in block {d.get('block', '-')}")
    lines += ["", "## Lineage", ""]
    for parent, child in report["lineage"]["edges"]:
        lines.append(f"- {parent} → {child}")
    return "\n".join(lines) + "\n"


def _svg_loss_curve(versions: list[dict], width: int = 640, height: int = 260) -> str:
    series = {}
    for key in ("train_loss", "val_loss"):
        pts = [(v.get("step"), (v.get("metrics") or {}).get(key)) for v in versions]
        pts = [(s, y) for s, y in pts if isinstance(s, int) and isinstance(y, (int, float))]
        if pts:
            series[key] = sorted(pts)
    if not series:
        return "<p>No loss values in the manifests.</p>"
    xs = [s for pts in series.values() for s, _ in pts]
    ys = [y for pts in series.values() for _, y in pts]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y0, y1 = min(ys), max(ys) if max(ys) > min(ys) else min(ys) + 1
    pad = 50

    def px(s, y):
        return (pad + (s - x0) / (x1 - x0) * (width - 2 * pad),
                height - pad - (y - y0) / (y1 - y0) * (height - 2 * pad))

    colors = {"train_loss": "#888", "val_loss": "#c0392b"}
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'role="img" aria-label="loss curve">',
             f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#000"/>',
             f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="#000"/>',
             f'<text x="{width / 2}" y="{height - 8}" text-anchor="middle" font-size="12">step</text>',
             f'<text x="{pad - 4}" y="{pad + 4}" font-size="11" text-anchor="end">{y1:.3f}</text>',
             f'<text x="{pad - 4}" y="{height - pad}" font-size="11" text-anchor="end">{y0:.3f}</text>',
             f'<text x="{pad}" y="{height - pad + 14}" font-size="11" text-anchor="middle">{x0}</text>',
             f'<text x="{width - pad}" y="{height - pad + 14}" font-size="11" text-anchor="middle">{x1}</text>']
    for i, (key, pts) in enumerate(series.items()):
        coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in (px(s, v) for s, v in pts))
        parts.append(f'<polyline fill="none" stroke="{colors[key]}" stroke-width="2" points="{coords}"/>')
        for x, y in (px(s, v) for s, v in pts):
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colors[key]}"/>')
        parts.append(f'<text x="{width - pad - 90}" y="{pad + 14 * i}" font-size="12" '
                     f'fill="{colors[key]}">{key}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _svg_lineage(lineage: dict) -> str:
    """Versions as boxes, one row per model, ordered left to right; datasets on the top row."""
    nodes = lineage["nodes"]
    if not nodes:
        return "<p>No versions.</p>"
    rows = sorted({n["row"] for n in nodes}, key=lambda r: (r != "datasets", r))
    cols: dict[str, int] = {}
    pos = {}
    for n in sorted(nodes, key=lambda n: n.get("order", 0)):
        col = cols.get(n["row"], 0)
        cols[n["row"]] = col + 1
        pos[n["id"]] = (20 + col * 150, 30 + rows.index(n["row"]) * 90)
    width = 40 + max(cols.values()) * 150
    height = 40 + len(rows) * 90
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             'role="img" aria-label="lineage graph">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" '
             'markerHeight="6" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>']
    parent_of = {dst: src for src, dst in lineage["edges"] if not src.startswith("dataset:")}
    data_of = {dst: src for src, dst in lineage["edges"] if src.startswith("dataset:")}
    for src, dst in lineage["edges"]:
        # A dataset arrow only where a version's data differs from its parent's: less ink, same facts.
        inherited = src.startswith("dataset:") and data_of.get(parent_of.get(dst)) == src
        if src in pos and dst in pos and not inherited:
            (x1, y1), (x2, y2) = pos[src], pos[dst]
            if src.startswith("dataset:"):  # down from the data row, dashed
                ends, dash = (x1 + 60, y1 + 36, x2 + 60, y2), ' stroke-dasharray="4 3"'
            else:
                ends, dash = (x1 + 120, y1 + 18, x2, y2 + 18), ""
            if ends[1] > ends[3]:  # a parent in a lower row: from its top edge instead
                ends = (ends[0], y1, ends[2], y2 + 36)
            parts.append('<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#555"'.format(*ends)
                         + f'{dash} marker-end="url(#arrow)"/>')
    for n in nodes:
        x, y = pos[n["id"]]
        fill = "#fde2e2" if n.get("revoked") else ("#eef" if n["row"] == "datasets" else "#e8f5e9")
        parts.append(f'<rect x="{x}" y="{y}" width="120" height="36" rx="5" fill="{fill}" stroke="#333"/>'
                     f'<text x="{x + 60}" y="{y + 22}" text-anchor="middle" font-size="11">'
                     f"{html.escape(n['label'])}</text>")
    parts.append("</svg>")
    return "".join(parts)


def render_html(report: dict) -> str:
    """One self-contained file: nothing external (styles, fonts, images); the data is embedded as JSON."""
    model = report["model"]
    esc = html.escape
    rows = "".join(
        "<tr>" + "".join(f'<td class="{"hash" if len(cell) > 20 else ""}">{esc(cell)}</td>'
                         for cell in _history_row(v, short=False)) + "</tr>"
        for v in report["versions"]
    )
    datasets = "".join(
        f"<tr><td>{esc(d['root'])}</td><td>{esc(d.get('manifest_cid') or '-')}</td>"
        f"<td>{esc(str(d.get('files', '?')))}</td><td>{esc(str(d.get('block', '-')))}</td></tr>"
        for d in report["datasets"]
    )
    head = "".join(f"<th>{esc(c)}</th>" for c in HISTORY_COLUMNS)
    embedded = json.dumps(report, sort_keys=True).replace("</", "<\\/")  # cannot close the script tag
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>modelreg audit: {esc(model['name'])}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; font-size: 12px; }}
td, th {{ border: 1px solid #ccc; padding: 3px 6px; font-family: ui-monospace, monospace; white-space: nowrap; }}
td.hash {{ white-space: normal; word-break: break-all; }}
th {{ background: #f3f3f3; }}
</style></head><body>
<h1>Audit report: {esc(model['name'])} (model {model['id']})</h1>
<p>Chain id {report['chain']['chain_id']}, contract <code>{esc(report['chain']['contract'])}</code>,
read up to block {report['chain']['latest_block']}. Owner <code>{esc(model['owner'])}</code>.
Every value below was read from contract events and IPFS manifests; anyone with an RPC endpoint
gets the same answer.</p>
<h2>History</h2>
<table><tr>{head}</tr>{rows}</table>
<h2>Lineage</h2>
{_svg_lineage(report['lineage'])}
<h2>Loss curve (from the manifests)</h2>
{_svg_loss_curve(report['versions'])}
<h2>Datasets</h2>
<table><tr><th>root</th><th>manifest CID</th><th>files</th><th>block</th></tr>{datasets}</table>
<script type="application/json" id="report-data">{embedded}</script>
</body></html>
"""
