"""Proofs from a sealed checkpoint pass the ModelRegistry contract's verifyTensor and verifyTensors on py-evm."""

import random

import pytest
from web3 import EthereumTesterProvider, Web3

from modelreg.contracts.artifact import load_artifact
from modelreg.formats.seal import seal_checkpoint
from tests.registry.formats.seal_helpers import random_tensors, safetensors_bytes


@pytest.fixture(scope="module")
def committed(tmp_path_factory):
    """A sealed checkpoint whose root is committed as version 1 of model 1."""
    tensors = {**random_tensors(random.Random(9), 6), "名前.🙂": ("F32", [], bytes(4)), "empty": ("I8", [0], b"")}
    path = tmp_path_factory.mktemp("onchain") / "m.safetensors"
    path.write_bytes(safetensors_bytes(tensors))
    sealed = seal_checkpoint(path)
    w3 = Web3(EthereumTesterProvider())
    w3.eth.default_account = w3.eth.accounts[0]
    artifact = load_artifact()
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    address = w3.eth.wait_for_transaction_receipt(factory.constructor().transact()).contractAddress
    registry = w3.eth.contract(address=address, abi=artifact["abi"])
    registry.functions.registerModel("gpt", "").transact()
    content = (bytes.fromhex(sealed.root[2:]), len(sealed.leaves), b"\0" * 32)
    registry.functions.commitVersion(1, content, 0, 0, 0, "cid").transact()
    return sealed, registry, content


def _leaf(leaf):
    return (leaf.name, leaf.dtype, list(leaf.shape), bytes.fromhex(leaf.sha256[2:]))


def test_every_single_tensor_proof_passes_verify_tensor(committed):
    sealed, registry, content = committed
    for leaf in sealed.leaves:
        _, proof = sealed.proof(leaf.name)
        assert registry.functions.verifyTensor(1, 1, content, _leaf(leaf), proof).call()


def test_a_proof_for_another_tensor_fails_verify_tensor(committed):
    sealed, registry, content = committed
    first, second = sealed.leaves[:2]
    assert not registry.functions.verifyTensor(1, 1, content, _leaf(first), sealed.proof(second.name)[1]).call()


def test_a_multiproof_passes_verify_tensors(committed):
    sealed, registry, content = committed
    names = [leaf.name for leaf in sealed.leaves[::3]]
    leaves, proof, flags = sealed.multiproof(names)
    assert registry.functions.verifyTensors(1, 1, content, [_leaf(leaf) for leaf in leaves], proof, flags).call()
