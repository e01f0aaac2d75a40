"""An auditor with an RPC URL and a registry address, nothing else: a registry is deployed and used
from one data directory, and audited from a second one that holds no record, no config and no key."""

import json

import pytest
from web3 import Web3

from tests.cli import audit_scenario
from tests.cli.audit_scenario import ALICE, BOB, REASON
from tests.cli.conftest import Modelreg
from tests.cli.test_errors import fails
from tests.conftest import CHAIN_FACTORIES

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=["devnet", "anvil"])
def world(request, tmp_path_factory):
    """(owner, auditor, the auditor's flags, what the owner built), on each chain."""
    with CHAIN_FACTORIES[request.param]() as chain:
        work = tmp_path_factory.mktemp(f"audit-{request.param}")
        owner = Modelreg(work / "owner")
        built = audit_scenario.build(owner, work, "--rpc-url", chain.rpc_url)
        auditor = Modelreg(work / "auditor")
        yield owner, auditor, ["--rpc-url", chain.rpc_url, "--registry", built["registry"]], built


def _json(run, *args):
    return json.loads(run(*args, "--json").output)


def test_the_auditor_reads_what_the_owner_reads(world):
    owner, auditor, flags, _ = world
    rpc = flags[:2]
    assert _json(auditor, "audit", "models", *flags) == _json(owner, "audit", "models", *rpc)
    for model in ("base", "tuned"):
        for command in ("history", "lineage"):
            assert _json(auditor, "audit", command, model, *flags) == _json(owner, "audit", command, model, *rpc)


def test_the_auditor_data_directory_holds_no_record_no_config_and_starts_no_devnet(world):
    _, auditor, flags, _ = world
    auditor("audit", "models", *flags)
    # The event cache, and the empty IPFS store `audit lineage` opened to read the manifests (which say
    # whether an edge is a derivation): no deployments.json, no config.toml, no devnet.
    assert sorted(p.name for p in auditor.home.iterdir()) == ["index", "ipfs"]


def test_init_records_the_registry_for_every_later_command(world, tmp_path):
    owner, _, flags, _ = world
    auditor = Modelreg(tmp_path / "auditor")
    auditor("init", *flags)
    assert _json(auditor, "audit", "history", "base") == _json(owner, "audit", "history", "base", *flags[:2])


def test_reading_never_asks_for_a_signer(world, monkeypatch):
    _, auditor, flags, _ = world
    monkeypatch.setenv("MODELREG_SIGNER", "keystore")  # with no keystore file it could sign nothing
    assert len(_json(auditor, "audit", "models", *flags)) == 2
    fails(auditor, "model", "register", "mine", *flags, match=r"no keystore file is configured")


def test_the_registry_address_can_come_from_the_environment(world, monkeypatch):
    _, auditor, flags, built = world
    monkeypatch.setenv("MODELREG_REGISTRY", built["registry"])
    assert [m["name"] for m in _json(auditor, "audit", "models", *flags[:2])] == ["base", "tuned"]


def test_the_auditor_sees_owners_maintainers_and_the_revocation(world):
    _, auditor, flags, _ = world
    base = _json(auditor, "audit", "models", *flags)[0]
    assert (base["owner"], base["maintainers"], base["versions"], base["revoked"]) == (BOB, [], 3, 1)
    shown = auditor("audit", "show", "base", "3", *flags).output
    assert f"revoked: yes, by {ALICE} in block" in shown
    assert f"{REASON}; use version 2 instead" in shown
    assert "None" not in shown and "{" not in shown  # no Python reprs
    assert "parent: v2" in shown


def test_the_lineage_crosses_models_and_links_each_dataset(world):
    _, auditor, flags, _ = world
    edges = {tuple(e) for e in _json(auditor, "audit", "lineage", "tuned", *flags)["edges"]}
    assert {("base:1", "base:2"), ("base:2", "base:3"), ("base:2", "tuned:1")} <= edges
    assert len({src for src, _ in edges if src.startswith("dataset:")}) == 2
    # Without the manifests (the auditor's IPFS store holds none) no edge is called trained or derived.
    table = auditor("audit", "lineage", "tuned", *flags).output
    assert "unknown (manifest" in table and "trained" not in table


def test_the_auditor_verifies_a_file_against_the_chain(world):
    _, auditor, flags, built = world
    verdict = _json(auditor, "verify", built["checkpoint"], "--model", "base", *flags)
    assert (verdict["status"], verdict["version"]) == ("VERIFIED", 2)


def test_the_auditor_report_says_where_the_manifests_are_missing(world, tmp_path):
    _, auditor, flags, built = world
    out = tmp_path / "report.json"
    auditor("audit", "report", "base", "--format", "json", "-o", out, *flags)
    report = json.loads(out.read_text())
    assert [v["version"] for v in report["versions"]] == [1, 2, 3]
    assert report["versions"][2]["revoked"]["reason"] == REASON
    # Its own IPFS store does not hold the owner's manifests: said per version, not fatal.
    assert all(v["verification"].startswith("manifest unavailable") for v in report["versions"])


def test_a_wrong_registry_address_is_named(world):
    _, auditor, flags, _ = world
    stranger = "0x" + "ab" * 20
    fails(auditor, "audit", "models", *flags[:2], "--registry", stranger,
          match=r"^Error: no contract code at 0x[aA][bB]")


def test_a_contract_that_is_no_registry_is_refused(world):
    _, auditor, flags, _ = world
    w3 = Web3(Web3.HTTPProvider(flags[1]))
    # Init code that deploys a one-byte runtime (STOP): code is there, but no version() answers.
    tx = w3.eth.send_transaction({"from": w3.eth.accounts[0], "data": "0x6001600c60003960016000f300"})
    other = w3.eth.wait_for_transaction_receipt(tx)["contractAddress"]
    fails(auditor, "audit", "models", *flags[:2], "--registry", other,
          match=f"^Error: the code at {other} on chain \\d+ is not a released ModelRegistry.*pass --registry")


def test_a_second_deploy_is_refused_and_a_forced_one_keeps_the_first_address(world):
    """Last in the module: it moves the owner's record to a new, empty registry."""
    owner, auditor, flags, built = world
    rpc = flags[:2]
    fails(owner, "deploy", *rpc, match=f"already recorded for chain \\d+: {built['registry']}.*pass --force")
    new = _json(owner, "deploy", *rpc, "--force")["address"]
    assert _json(owner, "audit", "models", *rpc) == []  # the new registry starts empty
    assert len(_json(owner, "audit", "models", *rpc, "--registry", built["registry"])) == 2
    record = json.loads((owner.home / "deployments.json").read_text())
    (entry,) = record.values()
    assert entry["ModelRegistry"]["address"] == new
    assert [e["address"] for e in entry["ModelRegistry.earlier"]] == [built["registry"]]
    assert entry["ModelRegistry.earlier"][0]["block"] > 0
