"""The Merkle Mountain Range of a model's versions, as ModelRegistry v3 keeps it on-chain.

The contract stores one word per model, its accumulator: keccak256(abi.encode(modelId, count,
peaks)), where `peaks` are the roots of the perfect binary trees the `count` version leaves
form, highest first. A leaf is keccak256(abi.encode(modelId, version, record)); an internal node
is keccak256(left || right). This module rebuilds the same values from a model's events, so the
client can send the peaks a commit needs, build the inclusion proofs the verify functions take,
and check a history it read against the accumulator.

Hand-written: the range is thirty lines over keccak, and its exact layout must match the
contract's; no maintained Python package builds this layout.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from eth_abi import encode
from eth_utils import keccak

FORMAT = "modelreg-versions-mmr-v1"  # the layout below; a change of any hash in it is a new format

# VersionRecord as the contract hashes it: content, dataset, parent model and version, manifest
# CID hash, committer. Every field is static, so abi.encode lays it out flat.
RECORD_TYPE = "((bytes32,uint256,bytes32),(uint256,bytes32,address),uint256,uint256,bytes32,address)"


def leaf_hash(model_id: int, version: int, record: tuple) -> bytes:
    """The accumulator leaf of version `version`: `record` as the contract's VersionRecord tuple."""
    return keccak(encode(["uint256", "uint256", RECORD_TYPE], [model_id, version, record]))


def hash_pair(left: bytes, right: bytes) -> bytes:
    return keccak(left + right)


def accumulator(model_id: int, count: int, peaks: Sequence[bytes]) -> bytes:
    """The word the contract stores for a model with `count` versions and these peaks."""
    return keccak(encode(["uint256", "uint256", "bytes32[]"], [model_id, count, list(peaks)]))


@dataclass(frozen=True)
class Proof:
    """An inclusion proof: every peak (highest first) and the siblings from the leaf to its peak."""

    peaks: list[bytes]
    path: list[bytes]


class MountainRange:
    """The range of a model's version leaves, in version order (leaf i is version i + 1)."""

    def __init__(self, leaves: Sequence[bytes] = ()):
        self.leaves: list[bytes] = []
        self._peaks: list[tuple[int, bytes]] = []  # (height, root), highest first
        for leaf in leaves:
            self.append(leaf)

    def append(self, leaf: bytes) -> None:
        self.leaves.append(leaf)
        node, height = leaf, 0
        while self._peaks and self._peaks[-1][0] == height:
            _, left = self._peaks.pop()
            node, height = hash_pair(left, node), height + 1
        self._peaks.append((height, node))

    @property
    def peaks(self) -> list[bytes]:
        return [root for _, root in self._peaks]

    def accumulator(self, model_id: int) -> bytes:
        return accumulator(model_id, len(self.leaves), self.peaks)

    def proof(self, index: int) -> Proof:
        """The proof that leaf `index` (0-based: version index + 1) is in the range."""
        if not 0 <= index < len(self.leaves):
            raise IndexError(f"leaf {index} is not in a range of {len(self.leaves)}")
        offset = 0
        for height, _ in self._peaks:
            size = 1 << height
            if index < offset + size:
                level = self.leaves[offset:offset + size]
                local, path = index - offset, []
                while len(level) > 1:
                    path.append(level[local ^ 1])
                    level = [hash_pair(level[i], level[i + 1]) for i in range(0, len(level), 2)]
                    local //= 2
                return Proof(self.peaks, path)
            offset += size
        raise AssertionError("unreachable: the peaks cover every leaf")


def verify(model_id: int, count: int, stored: bytes, index: int, leaf: bytes, proof: Proof) -> bool:
    """What the contract's proof check computes, in Python: whether `proof` leads from `leaf`
    (leaf `index`) to the accumulator `stored` of a range of `count` leaves."""
    if accumulator(model_id, count, proof.peaks) != stored or not 0 <= index < count:
        return False
    offset, peak = 0, 0
    for height in range(31, -1, -1):
        size = 1 << height
        if not count & size:
            continue
        if index < offset + size:
            if len(proof.path) != height:
                return False
            node, local = leaf, index - offset
            for sibling in proof.path:
                node = hash_pair(sibling, node) if local & 1 else hash_pair(node, sibling)
                local >>= 1
            return node == proof.peaks[peak]
        offset += size
        peak += 1
    return False
