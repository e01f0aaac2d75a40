"""Audit from events: the cached index, history and lineage across models, and a cache that lies."""

import json
import sqlite3

import numpy as np
import pytest
from safetensors.numpy import save_file

from modelreg.chain.client import RegistryClient
from modelreg.formats.seal import seal_checkpoint
from modelreg.service import audit
from modelreg.service import index as index_module
from modelreg.service.verify import MISMATCH, VERIFIED, verify_checkpoint
from tests.conftest import eth_tester_chain

ROOTS = ["0x" + f"{i:02x}" * 32 for i in range(1, 6)]


@pytest.fixture
def client():
    with eth_tester_chain() as chain:
        yield RegistryClient.deploy(chain.w3, chain.signers[0])


def test_the_index_fetches_only_new_blocks_and_keeps_what_it_had(client, tmp_path):
    index = audit.EventIndex.of(tmp_path, client)
    fetched = []
    fetch = index.fetch
    index.fetch = lambda first, last: fetched.append((first, last)) or fetch(first, last)
    client.register_model("a")
    assert [e["event"] for e in index.events()] == ["ModelRegistered"]
    seen = client.w3.eth.block_number
    client.register_model("b")
    events = index.events()
    assert [e["args"]["name"] for e in events] == ["a", "b"]
    assert fetched[-1] == (seen + 1, client.w3.eth.block_number)  # only the new blocks
    with sqlite3.connect(index.path) as db:
        assert db.execute("SELECT max(block) FROM checkpoints").fetchone()[0] == client.w3.eth.block_number
        assert db.execute("SELECT count(*) FROM events").fetchone()[0] == 2


def test_the_index_rebuilds_itself_when_the_block_it_saw_changed(client, tmp_path):
    index = audit.EventIndex.of(tmp_path, client)
    client.register_model("a")
    index.events()
    index.close()
    with sqlite3.connect(index.path) as db:
        db.execute("UPDATE checkpoints SET hash = ?", ("0x" + "00" * 32,))  # as after a reorg
        db.execute("INSERT INTO events VALUES (1, 0, x'00', 'ModelRegistered', 9, NULL, NULL, NULL, ?)",
                   (json.dumps({"modelId": 9, "name": "ghost", "owner": "x", "metadata": ""}),))
    assert [m["name"] for m in audit.models(index.events())] == ["a"]


def test_logs_are_read_in_ranges(client, tmp_path, monkeypatch):
    monkeypatch.setattr(index_module, "LOG_RANGE", 1)
    for name in "abc":
        client.register_model(name)
    assert [m["name"] for m in audit.models(audit.EventIndex.of(tmp_path, client).events())] == ["a", "b", "c"]


def test_lineage_follows_parents_across_models_and_links_datasets(client, tmp_path):
    base, _ = client.register_model("base")
    tuned, _ = client.register_model("tuned")
    client.register_dataset(ROOTS[4], "bafkqaaa")
    client.commit_version(base, ROOTS[0], tensor_count=1, dataset_root=ROOTS[4], manifest_cid="cid1")
    client.commit_version(base, ROOTS[1], tensor_count=1, dataset_root=ROOTS[4], parent=(base, 1),
                          manifest_cid="cid2")
    client.commit_version(tuned, ROOTS[2], tensor_count=1, parent=(base, 2), manifest_cid="cid3")  # a fine-tune of base v2
    events = audit.EventIndex.of(tmp_path, client).events()
    graph = audit.lineage(events, tuned)
    edges = {tuple(e) for e in graph["edges"]}
    assert {("base:1", "base:2"), ("base:2", "tuned:1")} <= edges
    assert {n["id"] for n in graph["nodes"] if n["row"] != "datasets"} == {"base:1", "base:2", "tuned:1"}
    assert [v["parent"] for v in audit.history(events, tuned)] == [{"model_id": base, "version": 2}]


def test_a_forged_cache_entry_cannot_make_a_file_verify(client, tmp_path):
    model, _ = client.register_model("m")
    real = tmp_path / "real.safetensors"
    save_file({"w": np.zeros(4, dtype=np.float32)}, str(real))
    client.commit_version(model, seal_checkpoint(real).root, tensor_count=1, manifest_cid="cid")
    forged = tmp_path / "forged.safetensors"
    save_file({"w": np.ones(4, dtype=np.float32)}, str(forged))
    events = audit.EventIndex.of(tmp_path, client).events()
    assert verify_checkpoint(real, client, events, model).status == VERIFIED
    lie = json.loads(json.dumps(list(events)))
    lie[-1]["args"]["weightsRoot"] = seal_checkpoint(forged).root  # the local cache claims the forged root
    verdict = verify_checkpoint(forged, client, lie, model)
    assert verdict.status == MISMATCH and verdict.chain_root == seal_checkpoint(real).root
    hidden = [e for e in events if e["event"] != "VersionCommitted"]  # a cache that drops the version
    assert verify_checkpoint(real, client, hidden, model).status == VERIFIED
