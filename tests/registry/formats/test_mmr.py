"""The version accumulator's Merkle Mountain Range, in Python (the contract is checked against it in
tests/contracts/test_registry_v3.py)."""

import pytest
from eth_utils import keccak

from modelreg.formats.mmr import MountainRange, accumulator, hash_pair, verify

LEAVES = [keccak(i.to_bytes(32, "big")) for i in range(40)]


@pytest.mark.parametrize("n", [1, 2, 3, 7, 8, 11, 40])
def test_every_leaf_proves_and_the_peaks_follow_the_bits_of_the_count(n):
    mountain = MountainRange(LEAVES[:n])
    assert len(mountain.peaks) == bin(n).count("1")
    stored = mountain.accumulator(9)
    for i in range(n):
        proof = mountain.proof(i)
        assert verify(9, n, stored, i, LEAVES[i], proof)
        assert not verify(9, n, stored, i, LEAVES[(i + 1) % 40], proof)  # another leaf
        assert not verify(8, n, stored, i, LEAVES[i], proof)  # another model's accumulator


def test_three_leaves_make_a_pair_and_a_single_peak():
    mountain = MountainRange(LEAVES[:3])
    assert mountain.peaks == [hash_pair(LEAVES[0], LEAVES[1]), LEAVES[2]]
    assert mountain.accumulator(1) == accumulator(1, 3, mountain.peaks)


def test_a_leaf_outside_the_range_has_no_proof():
    with pytest.raises(IndexError, match="leaf 3 is not in a range of 3"):
        MountainRange(LEAVES[:3]).proof(3)
