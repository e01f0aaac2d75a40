"""`modelreg audit lineage` and `audit report` name a version another account hung under a model."""

import json

import pytest

from modelreg.chain.client import RegistryClient
from modelreg.chain.signer import Signer
from modelreg.devnet.accounts import dev_accounts
from modelreg.records import VersionRef
from modelreg.service.config import load_config
from modelreg.service.connect import connect

CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"


@pytest.mark.slow
def test_lineage_and_report_label_a_child_committed_by_a_stranger_with_its_account(modelreg):
    modelreg("model", "register", "base")
    client = connect(modelreg.home, load_config(modelreg.home), write=True).client
    base = client.model_id("base")
    client.commit_version(base, "0x" + "5e" * 32, tensor_count=4, manifest_cid=CID)
    stranger = Signer.from_key(dev_accounts()[5].key)  # a funded devnet account that holds no role in base
    them = RegistryClient(client.w3, client.address, stranger, from_block=client.from_block)
    child, _ = them.register_model("copy")
    them.commit_version(child, "0x" + "77" * 32, tensor_count=4, parent=VersionRef(base, 1), manifest_cid=CID)
    graph = json.loads(modelreg("audit", "lineage", "base", "--json").output)
    assert {n["id"]: n["stranger"] for n in graph["nodes"]} == {"base:1": None, "copy:1": stranger.address}
    assert "stranger" in modelreg("audit", "lineage", "base").output
    report = modelreg("audit", "report", "base").output
    assert rf"base v1 → copy v1 \(by stranger {stranger.address}\) \(parent, across models\)" in report
    (own,) = json.loads(modelreg("audit", "history", "base", "--json").output)
    assert own["stranger"] is None
