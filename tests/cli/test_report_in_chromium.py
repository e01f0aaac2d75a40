"""The HTML audit report as a reader sees it: rendered by headless Chromium (Debian's `chromium`,
driven by npm's playwright-core), every version, edge, revocation reason and link visible."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from modelreg.service.report import edges
from tests.cli import audit_scenario
from tests.cli.audit_scenario import REASON
from tests.cli.conftest import _home

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
SCRIPT = Path(__file__).with_name("report_in_chromium.mjs")
EXPLORER = "https://explorer.example/{path}"
GATEWAY = "https://gateway.example/ipfs/{cid}"

pytestmark = pytest.mark.slow


def _browser_or_skip() -> None:
    missing = [str(p) for p in (CHROMIUM, ROOT / "node_modules" / "playwright-core") if not p.exists()]
    if shutil.which("node") is None:
        missing.append("node")
    if missing and os.environ.get("CI"):
        pytest.fail(f"CI must run the browser test, but {', '.join(missing)} is missing; `make setup` installs them")
    if missing:
        pytest.skip(f"{', '.join(missing)} missing: `apt-get install chromium` and `npm ci`")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """(the report as JSON, what Chromium shows of the HTML report, the screenshot's path)."""
    _browser_or_skip()
    work = tmp_path_factory.mktemp("report")
    for run in _home(work / "home"):
        audit_scenario.build(run, work)
        flags = ["--explorer-url", EXPLORER, "--gateway-url", GATEWAY]
        run("audit", "report", "base", "--format", "html", "-o", work / "report.html", *flags)
        run("audit", "report", "base", "--format", "json", "-o", work / "report.json", *flags)
    screenshot = work / "report.png"
    shown = subprocess.run(["node", str(SCRIPT), str(work / "report.html"), str(screenshot), str(CHROMIUM)],
                           cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr[-3000:]
    return json.loads((work / "report.json").read_text()), json.loads(shown.stdout), screenshot


def test_every_version_is_visible_with_its_time_and_manifest_check(rendered):
    report, seen, _ = rendered
    assert [v["version"] for v in report["versions"]] == [1, 2, 3]
    for v in report["versions"]:
        assert v["weights_root"] in seen["text"] and v["tx"] in seen["text"]
        assert v["verification"] == "manifest verified"
    assert seen["text"].count("manifest verified") >= 3
    assert len(report["times"]) >= 5 and " UTC" in seen["text"]
    assert "modelreg " in seen["text"] and f"up to block {report['chain']['latest_block']}" in seen["text"]


def test_every_lineage_edge_is_listed_and_drawn(rendered):
    report, seen, _ = rendered
    sentences = edges(report)
    assert any("(parent, across models)" in s for s in sentences)  # base v2 -> tuned v1
    assert sum("(trained on)" in s for s in sentences) == 4  # each version to its dataset
    for sentence in sentences:
        assert sentence in seen["text"]
    assert sorted(seen["edges_drawn"]) == sorted(f"{a} {b}" for a, b in report["lineage"]["edges"])


def test_the_revocation_is_shown_in_full(rendered):
    report, seen, _ = rendered
    revoked = report["versions"][2]["revoked"]
    assert REASON in seen["text"]  # as written: no Markdown escapes, no HTML entities
    for value in (revoked["revoker"], revoked["tx"], "version 2"):
        assert value in seen["text"]


def test_every_dataset_in_the_lineage_is_listed_with_its_versions(rendered):
    report, seen, _ = rendered
    assert [d["used_by"] for d in report["datasets"]] == [["base v1", "base v2", "base v3"], ["tuned v1"]]
    for d in report["datasets"]:
        assert d["root"] in seen["text"] and d["verification"] in seen["text"]


def test_owners_and_maintainers_over_time_are_shown(rendered):
    _, seen, _ = rendered
    for change in ("registered, owned by", "maintainer added:", "maintainer removed:", "ownership offered to",
                   "ownership accepted by"):
        assert change in seen["text"]


def test_links_go_to_the_configured_gateway_and_explorer_and_are_visible(rendered):
    report, seen, _ = rendered
    hrefs = {link["href"] for link in seen["links"] if link["visible"]}
    for v in report["versions"]:
        assert GATEWAY.replace("{cid}", v["manifest_cid"]) in hrefs
        assert EXPLORER.replace("{path}", f"tx/{v['tx']}") in hrefs
    assert EXPLORER.replace("{path}", f"address/{report['model']['owner']}") in hrefs
    assert EXPLORER.replace("{path}", f"tx/{report['versions'][2]['revoked']['tx']}") in hrefs


def test_the_report_loads_nothing_but_itself(rendered):
    _, seen, _ = rendered
    assert len(seen["requests"]) == 1 and seen["requests"][0].startswith("file://")


def test_the_loss_chart_has_axis_titles_and_the_check_box_gives_commands(rendered):
    report, seen, _ = rendered
    assert seen["axis_titles"] == ["training step", "loss (from each manifest)"]
    assert seen["check_box_visible"]
    address = report["chain"]["contract"]
    assert f"modelreg verify CHECKPOINT.safetensors --model base --version 2 --rpc-url RPC_URL --registry {address}" \
        in seen["text"]


def test_a_screenshot_is_saved(rendered):
    _, _, screenshot = rendered
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert screenshot.stat().st_size > 20_000
