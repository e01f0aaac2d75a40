"""Audit reports: the Markdown, JSON and HTML renderings of one report carry the same facts, and text
from the chain (a revocation reason, a model name) cannot change the document's structure."""

import html
import json
import re

import numpy as np
import pytest
from safetensors.numpy import save_file

from modelreg.chain.client import RegistryClient
from modelreg.ipfs.store import open_ipfs
from modelreg.records import VersionRef
from modelreg.service import audit
from modelreg.service.commit import commit_checkpoint
from modelreg.service.report import check_commands, edges, render
from tests.conftest import eth_tester_chain

REASON = "leaked *data* | see <script>alert(1)</script> & [link](x)\nsecond line"
LINKS = {"gateway": "https://gw.example/ipfs/{cid}", "explorer": "https://scan.example/{path}"}


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A report on model "m" (two versions, the second revoked) with a fine-tune "n" from m v1."""
    tmp = tmp_path_factory.mktemp("report")
    with eth_tester_chain() as chain:
        client = RegistryClient.deploy(chain.w3, chain.signers[0])
        ipfs = open_ipfs(tmp / "home")
        m, _ = client.register_model("m")
        n, _ = client.register_model("n")
        client.add_maintainer(m, chain.signers[1].address)

        def commit(model_id, name, step, parent=None):
            path = tmp / f"{name}-{step}.safetensors"
            save_file({"w": np.full((2, 2), step, dtype=np.float32)}, str(path))
            return commit_checkpoint(client, ipfs, path, model_id=model_id, model_name=name, parent=parent,
                                     step=step, metrics={"val_loss": 1.0 / step, "train_loss": 1.1 / step})

        first = commit(m, "m", 1)
        commit(m, "m", 2, parent=first.ref)
        commit(n, "n", 3, parent=VersionRef(m, 1))
        client.revoke_version(m, 2, REASON, 1)
        chain_info = {"chain_id": client.chain_id, "contract": client.address, "deployment_block": client.from_block,
                      "latest_block": chain.w3.eth.block_number, "rpc": "http://node.example:8545"}

        def build(links):
            return audit.build_report([audit.normalize(e) for e in client.events()], m, chain_info, ipfs.cat,
                                      block_time=lambda b: int(chain.w3.eth.get_block(b)["timestamp"]),
                                      tool="modelreg test", links=links)

        empty, _ = client.register_model("empty")
        bare = audit.build_report([audit.normalize(e) for e in client.events()], empty, chain_info, ipfs.cat)
        yield build(LINKS), build({}), bare


def _html_text(page: str) -> str:
    """The text a browser shows, roughly: tags dropped, entities decoded (the browser test checks it for real)."""
    body = page.split("<body>", 1)[1].split('<script type="application/json"', 1)[0]
    return html.unescape(re.sub(r"<[^>]+>", " ", body))


def test_markdown_escapes_a_revocation_reason_so_it_stays_text(made):
    report, *_ = made
    md = render(report, "md")
    assert REASON not in md and "<script>" not in md
    assert r"leaked \*data\* \| see \<script\>alert\(1\)\</script\> & \[link\]\(x\) second line" in md
    (row,) = [line for line in md.splitlines() if line.startswith("| 2 | 2 | ")]  # version 2, step 2
    assert len(re.findall(r"(?<!\\)\|", row)) == 19  # 18 cells: the reason's | did not add a column


def test_html_escapes_a_revocation_reason_and_shows_it_whole(made):
    report, *_ = made
    page = render(report, "html")
    assert "<script>alert(1)</script>" not in page
    assert " ".join(REASON.split()) in " ".join(_html_text(page).split())


def test_the_three_formats_carry_the_same_facts(made):
    report, *_ = made
    md, page, data = render(report, "md"), render(report, "html"), json.loads(render(report, "json"))
    assert data == {**json.loads(json.dumps(report)), "how_to_check": check_commands(report)}
    text = " ".join(_html_text(page).split())
    facts = [v["tx"] for v in report["versions"]] + [v["manifest_cid"] for v in report["versions"]]
    facts += [r["tx"] for r in report["roles"]] + [report["versions"][1]["revoked"]["revoker"], "modelreg test"]
    facts += check_commands(report)
    for fact in facts:
        assert fact in text and fact in md, fact
    assert edges(report) == ["m v1 → m v2 (parent)", "m v1 → n v1 (parent, across models)"]
    for edge in edges(report):
        assert edge in text


def test_every_block_named_has_its_time(made):
    report, *_ = made
    blocks = {v["block"] for v in report["versions"]} | {r["block"] for r in report["roles"]}
    blocks |= {report["versions"][1]["revoked"]["block"], report["chain"]["latest_block"]}
    assert blocks <= {int(b) for b in report["times"]}
    assert all(t > 1_600_000_000 for t in report["times"].values())


def test_links_follow_the_templates_and_are_absent_without_them(made):
    report, bare, _ = made
    page = render(report, "html")
    cid = report["versions"][0]["manifest_cid"]
    assert f'href="https://gw.example/ipfs/{cid}"' in page
    assert f'href="https://scan.example/tx/{report["versions"][0]["tx"]}"' in page
    assert f"(<https://scan.example/address/{report['model']['owner']}>)" in render(report, "md")
    assert "<a " not in render(bare, "html") and "](<" not in render(bare, "md")


def test_check_commands_quote_a_model_name_for_the_shell(made):
    report, *_ = made
    commands = check_commands({**report, "model": {**report["model"], "name": "n m"}})
    assert commands[0] == (f"modelreg verify CHECKPOINT.safetensors --model 'n m' --version 1 "
                           f"--rpc-url http://node.example:8545 --registry {report['chain']['contract']}")


def test_a_model_without_versions_gets_a_report_that_says_so(made):
    *_, empty = made
    for fmt in ("md", "json", "html"):
        assert "empty" in render(empty, fmt)
    page = render(empty, "html")
    assert "No versions." in page and "No numeric metrics in the manifests." in page
    assert "0 versions, 0 revoked" in render(empty, "md")


def test_each_version_shows_its_checkpoint_cid_beside_its_manifest_cid_and_the_node_that_checked(made):
    report, unlinked, _ = made
    cids = [v["checkpoint_cid"] for v in report["versions"]]
    assert all(c and c.startswith("bafk") for c in cids) and len(set(cids)) == 2
    node = "kubo/0.42.0 (peer 12D3KooW) at /tmp/ipfs"
    md = render({**report, "ipfs_node": node}, "md")
    assert f"[{cids[0]}](<https://gw.example/ipfs/{cids[0]}>)" in md
    assert "Manifests were fetched and checked through kubo/0\\.42\\.0 \\(peer 12D3KooW\\) at /tmp/ipfs\\." in md
    page = render({**unlinked, "ipfs_node": node}, "html")
    assert cids[0] in page and f"/ipfs/{cids[0]}" not in page  # no gateway configured: printed, not linked
    assert "checked through kubo/0.42.0 (peer 12D3KooW) at /tmp/ipfs." in page


def test_each_version_says_how_deep_it_was_and_whether_final(made):
    report, _, _ = made
    versions = [{**v, "depth": {"confirmations": c, "required": 3, "final": c >= 3}}
                for v, c in zip(report["versions"], (5, 1))]
    deep = {**report, "versions": versions}
    md = render(deep, "md")
    assert "## Finality" in md
    assert f"version 1: block {versions[0]['block']}, 5 confirmations, final" in md
    assert "version 2" in md and "NOT FINAL yet \\(final at 3 confirmations\\)" in md
    page = render(deep, "html")
    assert "5 confirmations, final" in page and "NOT FINAL yet (final at 3 confirmations)" in page
    assert "Depth not read" in render(report, "md")  # a report built without a chain says so
