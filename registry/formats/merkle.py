"""OpenZeppelin StandardMerkleTree: the same leaves, layout, proofs and dump as @openzeppelin/merkle-tree.

A leaf is `keccak256(keccak256(abi.encode(values)))`, an internal node is
`keccak256(min(a, b) ‖ max(a, b))`; leaves are sorted by hash and stored, like
the JavaScript library, in one array with the root at index 0 and the leaves
at the end in reverse order. Roots and proofs are "0x"-prefixed hex strings,
so they can be compared with the JavaScript output and passed to
`MerkleProof.verify` on-chain unchanged.
"""

from collections.abc import Sequence

from eth_abi.encoding import TupleEncoder
from eth_abi.registry import registry
from eth_hash.auto import keccak

from modelreg._hex import to_hex

DUMP_FORMAT = "standard-v1"


def _abi_value(abi_type: str, value):
    """eth_abi wants bytes for bytesN; our values carry them as hex strings, like the JS library."""
    if abi_type.endswith("]"):
        inner = abi_type[: abi_type.rindex("[")]
        return [_abi_value(inner, v) for v in value]
    if abi_type.startswith("bytes") and isinstance(value, str):
        return bytes.fromhex(value.removeprefix("0x"))
    return value


def _encoder(types: Sequence[str]):
    # Building the tuple encoder once per tree, not once per leaf, makes hashing 100,000 leaves
    # take seconds rather than tens of seconds.
    return TupleEncoder(encoders=[registry.get_encoder(t) for t in types])


def leaf_hash(types: Sequence[str], value: Sequence) -> bytes:
    """The 32-byte leaf of `value`: keccak256(keccak256(abi.encode(types, value)))."""
    return _leaf_hash(_encoder(types), types, value)


def _leaf_hash(encoder, types, value) -> bytes:
    if len(value) != len(types):
        raise ValueError(f"leaf {value!r} has {len(value)} values but the tree has {len(types)} types")
    encoded = encoder([_abi_value(t, v) for t, v in zip(types, value)])
    return keccak(keccak(encoded))


def node_hash(a: bytes, b: bytes) -> bytes:
    """An internal node: the pair sorted, so a proof needs no left/right flags."""
    return keccak(a + b) if a <= b else keccak(b + a)


def _bytes(node: str | bytes) -> bytes:
    if isinstance(node, bytes):
        return node
    raw = bytes.fromhex(node.removeprefix("0x"))
    if len(raw) != 32:
        raise ValueError(f"Merkle node {node!r} is not 32 bytes")
    return raw


class StandardMerkleTree:
    """A StandardMerkleTree over typed values; `of()` builds it, `dump()` gives the "standard-v1" JSON."""

    def __init__(self, tree: list[bytes], values: list, tree_indices: list[int], types: Sequence[str]):
        self._tree = tree
        self.values = values
        self.tree_indices = tree_indices
        self.types = list(types)

    @classmethod
    def of(cls, values: Sequence[Sequence], types: Sequence[str]) -> "StandardMerkleTree":
        if not values:
            raise ValueError("a Merkle tree needs at least one leaf")
        encoder = _encoder(types)
        hashes = [_leaf_hash(encoder, types, v) for v in values]
        # Python's sort is stable like Array.prototype.sort, so equal leaves keep their order too.
        order = sorted(range(len(values)), key=hashes.__getitem__)
        n = len(values)
        tree: list[bytes] = [b""] * (2 * n - 1)
        tree_indices = [0] * n
        for leaf_position, value_index in enumerate(order):
            tree_index = len(tree) - 1 - leaf_position
            tree[tree_index] = hashes[value_index]
            tree_indices[value_index] = tree_index
        for i in range(len(tree) - 1 - n, -1, -1):
            tree[i] = node_hash(tree[2 * i + 1], tree[2 * i + 2])
        return cls(tree, list(values), tree_indices, types)

    @property
    def root(self) -> str:
        return to_hex(self._tree[0])

    def __len__(self) -> int:
        return len(self.values)

    def leaf_hash(self, value: Sequence) -> str:
        return to_hex(leaf_hash(self.types, value))

    def proof(self, index: int) -> list[str]:
        """The sibling path from the leaf of values[index] to the root."""
        i = self.tree_indices[index]
        path = []
        while i > 0:
            sibling = i - 1 if i % 2 == 0 else i + 1
            path.append(to_hex(self._tree[sibling]))
            i = (i - 1) // 2
        return path

    def multiproof(self, indices: Sequence[int]) -> tuple[list, list[str], list[bool]]:
        """(leaves, proof, proof_flags) for several values at once, as MerkleProof.multiProofVerify takes them."""
        tree_positions = sorted((self.tree_indices[i] for i in indices), reverse=True)
        if len(set(tree_positions)) != len(tree_positions):
            raise ValueError("cannot prove the same leaf twice in one multiproof")
        stack = list(tree_positions)
        proof: list[str] = []
        flags: list[bool] = []
        head = 0  # a queue: stack[head:] is still to be combined
        while head < len(stack) and stack[head] > 0:
            j = stack[head]
            head += 1
            sibling = j - 1 if j % 2 == 0 else j + 1
            if head < len(stack) and stack[head] == sibling:
                flags.append(True)
                head += 1
            else:
                flags.append(False)
                proof.append(to_hex(self._tree[sibling]))
            stack.append((j - 1) // 2)
        if not tree_positions:
            proof.append(self.root)
        value_of = {t: v for t, v in zip(self.tree_indices, range(len(self.values)))}
        leaves = [self.values[value_of[t]] for t in tree_positions]
        return leaves, proof, flags

    def dump(self) -> dict:
        """The @openzeppelin/merkle-tree "standard-v1" dump: StandardMerkleTree.load() reads it."""
        return {
            "format": DUMP_FORMAT,
            "leafEncoding": list(self.types),
            "tree": [to_hex(node) for node in self._tree],
            "values": [{"value": v, "treeIndex": t} for v, t in zip(self.values, self.tree_indices)],
        }


def process_proof(leaf: bytes, proof: Sequence[str | bytes]) -> bytes:
    node = leaf
    for sibling in proof:
        node = node_hash(node, _bytes(sibling))
    return node


def verify(root: str, types: Sequence[str], value: Sequence, proof: Sequence[str]) -> bool:
    """Whether `proof` leads from `value`'s leaf to `root`: MerkleProof.verify, offline."""
    try:
        return process_proof(leaf_hash(types, value), proof) == _bytes(root)
    except ValueError:
        return False


def process_multiproof(leaves: Sequence[bytes], proof: Sequence[str | bytes], flags: Sequence[bool]) -> bytes:
    proof = [_bytes(p) for p in proof]
    if len(proof) < flags.count(False) or len(leaves) + len(proof) != len(flags) + 1:
        raise ValueError("multiproof leaves, proof and flags do not fit together")
    queue = list(leaves)
    head = proof_head = 0
    for flag in flags:
        a = queue[head]
        head += 1
        if flag:
            b = queue[head]
            head += 1
        else:
            b = proof[proof_head]
            proof_head += 1
        queue.append(node_hash(a, b))
    if len(queue) - head + len(proof) - proof_head != 1:
        raise ValueError("multiproof leaves, proof and flags do not fit together")
    return queue[-1] if head < len(queue) else proof[proof_head]


def verify_multiproof(root: str, types: Sequence[str], leaves: Sequence[Sequence],
                      proof: Sequence[str], proof_flags: Sequence[bool]) -> bool:
    """Whether the multiproof leads from all `leaves` to `root`: MerkleProof.multiProofVerify, offline."""
    try:
        encoder = _encoder(types)
        hashed = [_leaf_hash(encoder, types, v) for v in leaves]
        return process_multiproof(hashed, proof, list(proof_flags)) == _bytes(root)
    except (ValueError, IndexError):
        return False
