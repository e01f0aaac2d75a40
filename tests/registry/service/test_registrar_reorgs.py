"""The registrar across reorgs, on a real anvil: a commit whose block is taken back is sent again, once."""

import threading

import pytest

from modelreg.chain.client import RegistryClient
from modelreg.chain.sending import ChainOps
from modelreg.ipfs.store import open_ipfs
from modelreg.records import CheckpointSaved
from modelreg.service.journal import Journal
from modelreg.service.registrar import Registrar
from tests.conftest import anvil_chain
from tests.registry.service.test_registrar import _checkpoint


@pytest.fixture
def anvil():
    with anvil_chain() as chain:
        yield chain


@pytest.fixture
def setup(anvil, tmp_path):
    client = RegistryClient.deploy(anvil.connect(), anvil.signers[0])
    model_id, _ = client.register_model("m")
    return client, open_ipfs(tmp_path / "home"), model_id, tmp_path


class Miner:
    """Mines a block every `period` seconds, as a chain with a block time does."""

    def __init__(self, anvil, period=0.1):
        self.anvil, self.period, self.stop = anvil, period, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop.wait(self.period):
            self.anvil.w3.provider.make_request("evm_mine", [])

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def registrar(client, ipfs, model_id, journal, told, **kwargs):
    client.ops = ChainOps(confirmations=3, poll=0.05)
    return Registrar(client=client, ipfs=ipfs, journal=journal, model_name="m", model_id=model_id,
                     dataset_root=None, on_reorg=told.append, **kwargs)


def test_a_commit_reorged_out_while_running_is_sent_again_before_its_child(anvil, setup):
    client, ipfs, model_id, tmp = setup
    journal, told = Journal(tmp / "journal.jsonl"), []
    worker = registrar(client, ipfs, model_id, journal, told, wait_final=True)
    worker.submit(CheckpointSaved(_checkpoint(tmp, 1), 1))
    worker.drain()
    first_block = client.get_version(model_id, 1).block_number
    anvil.w3.provider.make_request("anvil_reorg", [1, []])  # version 1's block is replaced by an empty one
    assert client.version_count(model_id) == 0
    worker.submit(CheckpointSaved(_checkpoint(tmp, 2), 2))
    with Miner(anvil):
        commits = worker.close()
    assert [c.version for c in commits] == [1, 2] and client.version_count(model_id) == 2
    assert client.get_version(model_id, 2).parent == (model_id, 1)
    assert client.get_version(model_id, 1).block_number > first_block
    assert [r["step"] for r in told] == [1]  # said once
    state = journal.state()
    assert state.final == {1, 2} and state.committed[1]["block"] == client.get_version(model_id, 1).block_number


def test_a_commit_reorged_out_while_no_run_was_going_is_sent_again_on_the_next_start(anvil, setup):
    client, ipfs, model_id, tmp = setup
    journal, told = Journal(tmp / "journal.jsonl"), []
    worker = registrar(client, ipfs, model_id, journal, told)
    worker.submit(CheckpointSaved(_checkpoint(tmp, 1), 1))
    worker.close()
    assert [r["step"] for r in journal.state().unfinal()] == [1]
    anvil.w3.provider.make_request("anvil_reorg", [1, []])
    assert client.version_count(model_id) == 0

    restarted = RegistryClient(anvil.connect(), client.address, anvil.signers[0], from_block=client.from_block)
    with Miner(anvil):
        registrar(restarted, ipfs, model_id, journal, told, wait_final=True).close()
    assert client.version_count(model_id) == 1
    assert [r["step"] for r in told] == [1]
    assert journal.state().final == {1} and journal.state().unfinal() == []


def test_registrations_reorged_out_are_sent_again_before_the_first_commit_reads_them(anvil, tmp_path):
    client = RegistryClient.deploy(anvil.connect(), anvil.signers[0])
    client.ops = ChainOps(confirmations=3, poll=0.05)
    dataset = "0x" + "11" * 32
    client.register_dataset(dataset, "bafkqaaa")
    model_id, _ = client.register_model("m")
    anvil.w3.provider.make_request("anvil_reorg", [2, []])  # both registrations' blocks are replaced
    assert client.model_count() == 0
    worker = Registrar(client=client, ipfs=open_ipfs(tmp_path / "home"), journal=Journal(tmp_path / "journal.jsonl"),
                       model_name="m", model_id=model_id, dataset_root=dataset, wait_final=True)
    worker.submit(CheckpointSaved(_checkpoint(tmp_path, 1), 1))  # its commit reads the model and the dataset first
    with Miner(anvil):
        (commit,) = worker.close()
    assert (client.model_count(), client.version_count(model_id), commit.version) == (1, 1, 1)
    assert client.get_version(model_id, 1).dataset_root == dataset
    assert client.sender.stats.recommits == 2
