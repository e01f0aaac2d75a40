"""The registrar and its journal: order, parents, idempotent retries, torn journal lines."""

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from modelreg.chain.client import RegistryClient
from modelreg.formats.manifest import load_manifest
from modelreg.formats.seal import seal_checkpoint
from modelreg.ipfs.store import open_ipfs
from modelreg.records import CheckpointSaved
from modelreg.service.journal import Journal
from modelreg.service.registrar import Registrar
from modelreg.training.checkpoint import saved_checkpoints
from tests.conftest import eth_tester_chain


@pytest.fixture
def setup(tmp_path):
    with eth_tester_chain() as chain:
        client = RegistryClient.deploy(chain.w3, chain.signers[0])
        model_id, _ = client.register_model("m")
        dataset = "0x" + "11" * 32
        client.register_dataset(dataset, "bafkqaaa")
        yield client, open_ipfs(tmp_path / "home"), model_id, dataset, tmp_path


def _checkpoint(directory: Path, step: int) -> Path:
    path = directory / f"ckpt-{step:06d}.safetensors"
    save_file({"w": np.full((4, 4), step, dtype=np.float32)}, str(path))
    return path


def _registrar(setup, journal):
    client, ipfs, model_id, dataset, _ = setup
    return Registrar(client=client, ipfs=ipfs, journal=journal, model_name="m", model_id=model_id,
                     dataset_root=dataset)


def test_checkpoints_are_committed_in_order_each_with_the_previous_as_parent(setup):
    client, ipfs, model_id, dataset, tmp = setup
    registrar = _registrar(setup, Journal(tmp / "journal.jsonl"))
    for step in (1, 2, 3):
        registrar.submit(CheckpointSaved(_checkpoint(tmp, step), step, metrics={"val_loss": 4.0 - step}))
    commits = registrar.close()
    assert [c.version for c in commits] == [1, 2, 3]
    assert [client.get_version(model_id, v).parent for v in (1, 2, 3)] == [None, (model_id, 1), (model_id, 2)]
    manifest = load_manifest(ipfs.cat(commits[2].manifest_cid))
    assert manifest["root"] == seal_checkpoint(tmp / "ckpt-000003.safetensors").root
    assert manifest["parent"] == {"model_id": model_id, "version": 2}
    assert manifest["dataset_root"] == dataset
    assert manifest["metrics"] == {"val_loss": 1.0}


def test_a_commit_the_chain_already_holds_is_taken_as_done(setup):
    client, _, model_id, dataset, tmp = setup
    path = _checkpoint(tmp, 1)
    # A run killed after its transaction was mined but before the journal recorded it.
    client.commit_version(model_id, seal_checkpoint(path).root, tensor_count=1, dataset_root=dataset,
                          manifest_cid="bafkqaaa")
    journal = Journal(tmp / "journal.jsonl")
    journal.append("seen", step=1, path=str(path), metrics={}, config={}, environment={})
    registrar = _registrar(setup, journal)
    assert registrar.recover(saved_checkpoints(tmp)) == 1
    (commit,) = registrar.close()
    assert commit.version == 1
    assert client.version_count(model_id) == 1
    assert journal.state().pending_steps() == []


def test_recover_queues_unjournaled_checkpoints_on_disk(setup):
    _, _, _, _, tmp = setup
    journal = Journal(tmp / "journal.jsonl")
    registrar = _registrar(setup, journal)
    registrar.submit(CheckpointSaved(_checkpoint(tmp, 1), 1))
    registrar.close()
    _checkpoint(tmp, 2)  # written, then killed before the hook journaled it
    again = _registrar(setup, journal)
    assert again.recover(saved_checkpoints(tmp)) == 1
    (commit,) = again.close()
    assert (commit.step, commit.version) == (2, 2)
    assert again.recover(saved_checkpoints(tmp)) == 0  # nothing left


def test_a_worker_error_is_raised_on_close_and_the_work_stays_pending(setup):
    _, _, _, _, tmp = setup
    journal = Journal(tmp / "journal.jsonl")
    registrar = _registrar(setup, journal)
    broken = tmp / "ckpt-000001.safetensors"
    broken.write_bytes(b"not a checkpoint")
    registrar.submit(CheckpointSaved(broken, 1))
    with pytest.raises(Exception, match="ckpt-000001"):
        registrar.close()
    assert journal.state().pending_steps() == [1]


def test_a_torn_last_journal_line_is_dropped(tmp_path):
    path = tmp_path / "journal.jsonl"
    Journal(path).append("seen", step=1, path="a")
    with open(path, "a") as f:
        f.write('{"kind": "committed", "st')  # the process died mid-write
    journal = Journal(path)
    assert journal.state().pending_steps() == [1]
    journal.append("committed", step=1, version=1)
    assert [json.loads(line)["kind"] for line in path.read_text().splitlines()] == ["seen", "committed"]
