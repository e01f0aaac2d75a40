"""verifyFile against proofs made by @openzeppelin/merkle-tree itself over `modelreg-files-v1` leaves."""

import pytest

from modelreg.errors import RootMismatch
from tests.nodejs import run_node

TYPES = ["string", "uint256", "bytes32"]
VALUES = [
    ["config.json", "612", "0x" + "c1" * 32],
    ["tokenizer.json", "2113487", "0x" + "c2" * 32],
    ["tokenizer_config.json", "1024", "0x" + "c3" * 32],
    ["generation_config.json", "137", "0x" + "c4" * 32],
    ["special tokens/map.json", "0", "0x" + "c5" * 32],
]
WEIGHTS = "0x" + "ee" * 32


@pytest.fixture(scope="module")
def oz_tree():
    return run_node("oz_merkle.mjs", {"types": TYPES, "values": VALUES})


@pytest.fixture
def committed(registry, oz_tree):
    model_id, _ = registry.register_model("with-files")
    version, _ = registry.commit_version(model_id, WEIGHTS, tensor_count=7, files_root=oz_tree["root"],
                                         manifest_cid="bafyfiles")
    return registry, model_id, version


@pytest.mark.parametrize("index", range(len(VALUES)))
def test_every_openzeppelin_file_proof_passes_verify_file(committed, oz_tree, index):
    registry, model_id, version = committed
    assert registry.get_version(model_id, version).files_root == oz_tree["root"]
    assert registry.verify_file(model_id, version, VALUES[index], oz_tree["proofs"][index]) is True


@pytest.mark.parametrize("field, changed", [(0, "config.yaml"), (1, "613"), (2, "0x" + "ff" * 32)])
def test_a_changed_file_leaf_fails(committed, oz_tree, field, changed):
    registry, model_id, version = committed
    leaf = list(VALUES[0])
    leaf[field] = changed
    assert registry.verify_file(model_id, version, leaf, oz_tree["proofs"][0]) is False


def test_a_version_without_files_proves_no_file(committed, oz_tree):
    registry, model_id, _ = committed
    bare, _ = registry.commit_version(model_id, "0x" + "77" * 32, tensor_count=1, manifest_cid="bafybare")
    assert registry.get_version(model_id, bare).files_root is None
    assert registry.verify_file(model_id, bare, VALUES[0], oz_tree["proofs"][0]) is False


def test_a_file_proof_checked_against_other_roots_is_refused(committed, oz_tree):
    registry, model_id, version = committed
    leaf = (VALUES[0][0], int(VALUES[0][1]), bytes.fromhex(VALUES[0][2][2:]))
    proof = [bytes.fromhex(p[2:]) for p in oz_tree["proofs"][0]]
    lie = (bytes.fromhex(WEIGHTS[2:]), 7, bytes.fromhex("ab" * 32))  # a files root of the caller's choosing
    version_proof = list(registry._version_proof(model_id, version))
    version_proof[3] = (lie, *version_proof[3][1:])  # the true proof path, a record with other roots
    with pytest.raises(RootMismatch, match=f"not those committed for version {version}"):
        registry._call(registry.contract.functions.verifyFile(tuple(version_proof), leaf, proof))
