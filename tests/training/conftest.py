"""Fixtures for the training tests: a two-file dataset and a config that trains in about a second;
for the replay and DP tests, a four-file dataset and a registry over an in-process chain."""

import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from modelreg.chain.client import RegistryClient
from modelreg.service.config import Config
from modelreg.service.connect import Registry
from modelreg.training.config import PRESETS
from modelreg.training.data import CORPUS_DIR as CORPUS
from modelreg.training.data import seal_directory
from tests.conftest import eth_tester_chain


@pytest.fixture
def dataset_dir(tmp_path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    for name in ("sonnets_gut.txt", "tempest_gut.txt"):
        shutil.copy(CORPUS / name, d / name)
    return d


@pytest.fixture
def manifest(dataset_dir) -> dict:
    return seal_directory(dataset_dir)


@pytest.fixture
def small_config():
    return replace(PRESETS["tiny"], n_layer=1, n_head=2, n_embd=32, block_size=32, vocab_size=300,
                   batch_size=4, max_steps=6, warmup_steps=2, eval_interval=3, eval_iters=2)


@pytest.fixture
def data(tmp_path) -> Path:
    """Two large files and two small ones, so that a small file is first read after step 1."""
    d = tmp_path / "data"
    d.mkdir()
    for i, source in enumerate(sorted(CORPUS.glob("*.txt"))[:4]):
        (d / source.name).write_bytes(source.read_bytes()[:30_000 if i % 2 == 0 else 3_000])
    return d


def in_process(home: Path, client) -> Registry:
    """A Registry over an in-process chain (no JSON-RPC URL is used) and the embedded IPFS store of `home`."""
    return Registry(home, Config(), rpc_url="http://127.0.0.1:1", chain_id=client.chain_id, embedded_chain=False,
                    client=client)


@pytest.fixture
def registry(tmp_path):
    """A Registry over a freshly deployed contract on py-evm, in this process (`in_process`)."""
    with eth_tester_chain() as chain:
        client = RegistryClient.deploy(chain.w3, chain.signers[0])
        yield in_process(tmp_path / "home", client)
