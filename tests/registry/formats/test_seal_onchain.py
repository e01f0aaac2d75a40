"""Proofs from a sealed checkpoint pass the ModelRegistry contract's verifyTensor and verifyTensors on py-evm."""

import random

import pytest
from web3 import EthereumTesterProvider, Web3

from modelreg.chain.client import RegistryClient
from modelreg.chain.signer import Signer
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
    client = RegistryClient.deploy(w3, Signer.from_key((1).to_bytes(32, "big")))  # a key eth-tester funds
    model_id, _ = client.register_model("gpt", "")
    client.commit_version(model_id, sealed.root, tensor_count=len(sealed.leaves), manifest_cid="cid")
    return sealed, client.contract, client._version_proof(model_id, 1)


def _leaf(leaf):
    return (leaf.name, leaf.dtype, list(leaf.shape), bytes.fromhex(leaf.sha256[2:]))


def test_every_single_tensor_proof_passes_verify_tensor(committed):
    sealed, registry, version_proof = committed
    for leaf in sealed.leaves:
        _, proof = sealed.proof(leaf.name)
        assert registry.functions.verifyTensor(version_proof, _leaf(leaf), proof).call()


def test_a_proof_for_another_tensor_fails_verify_tensor(committed):
    sealed, registry, version_proof = committed
    first, second = sealed.leaves[:2]
    assert not registry.functions.verifyTensor(version_proof, _leaf(first), sealed.proof(second.name)[1]).call()


def test_a_multiproof_passes_verify_tensors(committed):
    sealed, registry, version_proof = committed
    names = [leaf.name for leaf in sealed.leaves[::3]]
    leaves, proof, flags = sealed.multiproof(names)
    assert registry.functions.verifyTensors(version_proof, [_leaf(leaf) for leaf in leaves], proof, flags).call()
