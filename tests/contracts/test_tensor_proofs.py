"""verifyTensor and verifyTensors against proofs made by @openzeppelin/merkle-tree itself."""

import pytest

from modelreg.errors import VersionNotFound
from tests.nodejs import run_node

TYPES = ["string", "string", "uint256[]", "bytes32"]
VALUES = [
    ["transformer.h.0.attn.c_attn.weight", "F32", ["64", "192"], "0x" + "01" * 32],
    ["transformer.h.0.attn.c_attn.bias", "F32", ["192"], "0x" + "02" * 32],
    ["transformer.wte.weight", "BF16", ["65", "64"], "0x" + "03" * 32],
    ["transformer.ln_f.weight", "F32", ["64"], "0x" + "04" * 32],
    ["lm_head.weight", "BF16", ["65", "64"], "0x" + "05" * 32],
    ["step", "I64", [], "0x" + "06" * 32],
]


@pytest.fixture(scope="module")
def oz_tree():
    return run_node("oz_merkle.mjs", {"types": TYPES, "values": VALUES, "multiproof": [0, 2, 5]})


@pytest.fixture
def committed(registry, oz_tree):
    model_id, _ = registry.register_model("proofs")
    version, _ = registry.commit_version(model_id, oz_tree["root"], tensor_count=len(VALUES),
                                          manifest_cid="bafyproofs")
    return registry, model_id, version


@pytest.mark.parametrize("index", range(len(VALUES)))
def test_every_openzeppelin_proof_passes_verify_tensor(committed, oz_tree, index):
    registry, model_id, version = committed
    assert registry.verify_tensor(model_id, version, VALUES[index], oz_tree["proofs"][index]) is True


@pytest.mark.parametrize("field, changed", [(0, "transformer.h.1.attn.c_attn.weight"), (1, "F16"),
                                            (2, ["192", "64"]), (3, "0x" + "ff" * 32)])
def test_a_changed_leaf_value_fails(committed, oz_tree, field, changed):
    registry, model_id, version = committed
    leaf = list(VALUES[0])
    leaf[field] = changed
    assert registry.verify_tensor(model_id, version, leaf, oz_tree["proofs"][0]) is False


def test_a_changed_proof_element_fails(committed, oz_tree):
    registry, model_id, version = committed
    proof = list(oz_tree["proofs"][0])
    proof[-1] = "0x" + "00" * 31 + "01"
    assert registry.verify_tensor(model_id, version, VALUES[0], proof) is False


def test_a_proof_for_another_version_fails(committed, oz_tree):
    registry, model_id, _ = committed
    other, _ = registry.commit_version(model_id, "0x" + "77" * 32, tensor_count=1, manifest_cid="bafyother")
    assert registry.verify_tensor(model_id, other, VALUES[0], oz_tree["proofs"][0]) is False


def test_an_openzeppelin_multiproof_passes_verify_tensors(committed, oz_tree):
    registry, model_id, version = committed
    multi = oz_tree["multiproof"]
    assert registry.verify_tensors(model_id, version, multi["leaves"], multi["proof"], multi["proofFlags"])


def test_a_multiproof_with_a_changed_leaf_or_flag_fails(committed, oz_tree):
    registry, model_id, version = committed
    multi = oz_tree["multiproof"]
    leaves = [list(v) for v in multi["leaves"]]
    leaves[0][3] = "0x" + "ee" * 32
    assert not registry.verify_tensors(model_id, version, leaves, multi["proof"], multi["proofFlags"])
    flags = list(multi["proofFlags"])
    flags[0] = not flags[0]
    assert not registry.verify_tensors(model_id, version, multi["leaves"], multi["proof"], flags)


def test_proving_against_a_missing_version_raises_version_not_found(committed, oz_tree):
    registry, model_id, _ = committed
    with pytest.raises(VersionNotFound, match="model 1 has no version 2"):
        registry.verify_tensor(model_id, 2, VALUES[0], oz_tree["proofs"][0])
