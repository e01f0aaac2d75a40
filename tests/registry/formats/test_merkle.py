"""The StandardMerkleTree against @openzeppelin/merkle-tree, run with node."""

import random

import pytest

from modelreg.formats.merkle import StandardMerkleTree, verify, verify_multiproof
from modelreg.formats.seal import FileLeaf, TensorLeaf
from tests.nodejs import node_available, run_node
from tests.registry.formats.seal_helpers import random_leaf_values

needs_node = pytest.mark.skipif(not node_available(), reason="node and node_modules are needed")
TENSOR_TYPES = list(TensorLeaf.TYPES)


def _reference(values, types, multiproof=None):
    payload = {"types": types, "values": values}
    if multiproof is not None:
        payload["multiproof"] = multiproof
    return run_node("oz_merkle.mjs", payload)


def _assert_same_as_reference(values, types, multiproof):
    ours = StandardMerkleTree.of(values, types)
    theirs = _reference(values, types, multiproof)
    assert ours.root == theirs["root"]
    assert [ours.proof(i) for i in range(len(values))] == theirs["proofs"]
    assert ours.dump() == theirs["dump"]
    leaves, proof, flags = ours.multiproof(multiproof)
    assert {"leaves": leaves, "proof": proof, "proofFlags": flags} == theirs["multiproof"]


@needs_node
@pytest.mark.parametrize("count", [1, 2, 3, 7, 100])
def test_root_proofs_dump_and_multiproof_equal_openzeppelin(count):
    rng = random.Random(count)
    values = random_leaf_values(rng, count)
    _assert_same_as_reference(values, TENSOR_TYPES, sorted(rng.sample(range(count), min(count, 3))))


@needs_node
def test_unicode_names_empty_tensors_scalars_and_every_dtype_equal_openzeppelin():
    from modelreg.formats.safetensors import DTYPE_BITS

    values = [[f"{dtype}.张量.{i}", dtype, shape, "0x" + bytes([i]).hex() * 32]
              for i, dtype in enumerate(DTYPE_BITS) for shape in ([], [0], [0, 4], [2, 3])]
    _assert_same_as_reference(values, TENSOR_TYPES, [0, 5, len(values) - 1])


@needs_node
def test_file_leaves_equal_openzeppelin():
    values = [FileLeaf(f"dir/ファイル{i}.txt", i * 1000, "0x" + bytes([i]).hex() * 32).values()
              for i in range(5)]
    _assert_same_as_reference(values, list(FileLeaf.TYPES), [4, 1])


@needs_node
def test_an_empty_multiproof_and_duplicate_leaves_equal_openzeppelin():
    value = ["same", "F32", [1], "0x" + "ab" * 32]
    values = [value, value, ["other", "F32", [1], "0x" + "cd" * 32]]
    _assert_same_as_reference(values, TENSOR_TYPES, [])


@needs_node
@pytest.mark.slow
def test_ten_thousand_leaves_equal_openzeppelin():
    rng = random.Random(10_000)
    values = random_leaf_values(rng, 10_000)
    _assert_same_as_reference(values, TENSOR_TYPES, sorted(rng.sample(range(10_000), 50)))


def test_every_proof_verifies_offline_and_fails_for_another_leaf():
    values = random_leaf_values(random.Random(1), 9)
    tree = StandardMerkleTree.of(values, TENSOR_TYPES)
    for i, value in enumerate(values):
        assert verify(tree.root, TENSOR_TYPES, value, tree.proof(i))
        assert not verify(tree.root, TENSOR_TYPES, values[(i + 1) % 9], tree.proof(i))


def test_a_multiproof_verifies_offline_and_fails_when_a_leaf_is_swapped():
    values = random_leaf_values(random.Random(2), 12)
    tree = StandardMerkleTree.of(values, TENSOR_TYPES)
    leaves, proof, flags = tree.multiproof([0, 3, 4, 11])
    assert verify_multiproof(tree.root, TENSOR_TYPES, leaves, proof, flags)
    assert not verify_multiproof(tree.root, TENSOR_TYPES, [values[5], *leaves[1:]], proof, flags)
    assert not verify_multiproof(tree.root, TENSOR_TYPES, leaves, proof[:-1], flags)


def test_a_changed_shape_or_name_changes_the_root():
    value = ["w", "F32", [2, 3], "0x" + "00" * 32]
    root = StandardMerkleTree.of([value], TENSOR_TYPES).root
    assert StandardMerkleTree.of([["w", "F32", [3, 2], value[3]]], TENSOR_TYPES).root != root
    assert StandardMerkleTree.of([["W", "F32", [2, 3], value[3]]], TENSOR_TYPES).root != root


def test_a_tree_needs_a_leaf_and_a_multiproof_refuses_the_same_leaf_twice():
    with pytest.raises(ValueError, match="at least one leaf"):
        StandardMerkleTree.of([], TENSOR_TYPES)
    tree = StandardMerkleTree.of(random_leaf_values(random.Random(3), 4), TENSOR_TYPES)
    with pytest.raises(ValueError, match="same leaf twice"):
        tree.multiproof([1, 1])


@pytest.mark.slow
def test_a_hundred_thousand_leaves_build_in_a_second_of_cpu():
    import time

    values = random_leaf_values(random.Random(4), 100_000)
    start = time.process_time()  # CPU time: the wall clock of a loaded machine says little
    tree = StandardMerkleTree.of(values, TENSOR_TYPES)
    assert time.process_time() - start < 1.0
    assert verify(tree.root, TENSOR_TYPES, values[99_999], tree.proof(99_999))


ENCODING_CASES = [
    (TENSOR_TYPES, ["", "", [], "0x" + "00" * 32]),
    (TENSOR_TYPES, ["a" * 32, "BF16", [0, 1, 2**256 - 1], "0x" + "ab" * 32]),
    (TENSOR_TYPES, ["ünïcödé ☃ 名前" * 5, "F8_E4M3", [7], bytes(range(32))]),
    (list(FileLeaf.TYPES), ["x" * 33, 0, "0x" + "01" * 32]),
    (list(FileLeaf.TYPES), ["dir/file.json", 2**256 - 1, "0x" + "ff" * 32]),
]


@pytest.mark.parametrize("types,value", ENCODING_CASES)
def test_the_written_out_leaf_encodings_equal_eth_abi(types, value):
    from eth_abi import encode

    from modelreg.formats.merkle import _abi_value, _encoder

    assert _encoder(types)(value) == encode(types, [_abi_value(t, v) for t, v in zip(types, value)])


@pytest.mark.parametrize("value,problem", [
    (["n", "F32", [-1], "0x" + "00" * 32], "is not a uint256"),
    (["n", "F32", [True], "0x" + "00" * 32], "is not a uint256"),
    (["n", "F32", [2**256], "0x" + "00" * 32], "is not a uint256"),
    (["n", "F32", [1], "0x" + "00" * 31], "is not 32 bytes"),
])
def test_a_leaf_value_out_of_its_type_is_refused(value, problem):
    with pytest.raises(ValueError, match=problem):
        StandardMerkleTree.of([value], TENSOR_TYPES)


def test_an_empty_multiproof_proves_nothing_offline_as_on_chain():
    tree = StandardMerkleTree.of(random_leaf_values(random.Random(2), 4), TENSOR_TYPES)
    leaves, proof, flags = tree.multiproof([])
    assert (leaves, proof, flags) == ([], [tree.root], [])  # what OpenZeppelin's library gives
    assert not verify_multiproof(tree.root, TENSOR_TYPES, leaves, proof, flags)
