"""OpenZeppelin StandardMerkleTree: the same leaves, layout, proofs and dump as @openzeppelin/merkle-tree.

A leaf is `keccak256(keccak256(abi.encode(values)))`, an internal node is
`keccak256(min(a, b) ‖ max(a, b))`; leaves are sorted by hash and stored, like
the JavaScript library, in one array with the root at index 0 and the leaves
at the end in reverse order. Roots and proofs are "0x"-prefixed hex strings,
so they can be compared with the JavaScript output and passed to
`MerkleProof.verify` on-chain unchanged.
"""

from collections.abc import Callable, Sequence

from eth_abi.encoding import TupleEncoder
from eth_abi.registry import registry

# pysha3's C keccak: eth_hash's default backend (pycryptodome) costs several times more a call,
# and a 100,000-leaf tree makes 300,000 calls.
from sha3 import keccak_256

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


def _encoder(types: Sequence[str]) -> Callable[[Sequence], bytes]:
    """abi.encode for `types`: written out for modelreg's two leaf types, eth_abi otherwise.

    eth_abi's general machinery costs ~20 us a leaf, most of a 100,000-tensor tree's build
    time; these two layouts are fixed and short, so they are spelled out below. The
    OpenZeppelin tests hold every tree, whichever path encoded it, to the JavaScript roots.
    """
    direct = _DIRECT.get(tuple(types))
    if direct is not None:
        return direct
    general = TupleEncoder(encoders=[registry.get_encoder(t) for t in types])
    return lambda value: general([_abi_value(t, v) for t, v in zip(types, value)])


_MAX_UINT = 1 << 256


def _uint(value) -> bytes:
    if type(value) is not int or not 0 <= value < _MAX_UINT:  # a bool is an int, not a uint256
        raise ValueError(f"{value!r} is not a uint256")
    return value.to_bytes(32, "big")


def _bytes32(value) -> bytes:
    raw = bytes.fromhex(value[2:] if value[:2] == "0x" else value) if isinstance(value, str) else value
    if len(raw) != 32:
        raise ValueError(f"{value!r} is not 32 bytes")
    return raw


def _string(value: str) -> bytes:
    """A string's tail: its byte length, then its UTF-8 bytes zero-padded to 32."""
    raw = value.encode("utf-8")
    return len(raw).to_bytes(32, "big") + raw + bytes(-len(raw) % 32)


def _encode_tensor_leaf(value: Sequence) -> bytes:
    """abi.encode(string name, string dtype, uint256[] shape, bytes32 sha256): four head
    words (three offsets into the tail, then the digest), then the three tails."""
    name, dtype, shape, digest = value
    name_tail, dtype_tail = _string(name), _string(dtype)
    dtype_at = 128 + len(name_tail)
    shape_at = dtype_at + len(dtype_tail)
    return b"".join((_WORD_128, dtype_at.to_bytes(32, "big"), shape_at.to_bytes(32, "big"),
                     _bytes32(digest), name_tail, dtype_tail, len(shape).to_bytes(32, "big"),
                     *map(_uint, shape)))


def _encode_file_leaf(value: Sequence) -> bytes:
    """abi.encode(string path, uint256 size, bytes32 sha256): the offset of the path's tail,
    the size, the digest, then the tail."""
    path, size, digest = value
    return b"".join((_WORD_96, _uint(size), _bytes32(digest), _string(path)))


_WORD_96, _WORD_128 = (96).to_bytes(32, "big"), (128).to_bytes(32, "big")
_DIRECT = {("string", "string", "uint256[]", "bytes32"): _encode_tensor_leaf,
           ("string", "uint256", "bytes32"): _encode_file_leaf}


def leaf_hash(types: Sequence[str], value: Sequence) -> bytes:
    """The 32-byte leaf of `value`: keccak256(keccak256(abi.encode(types, value)))."""
    return _leaf_hash(_encoder(types), types, value)


def _leaf_hash(encoder, types, value) -> bytes:
    if len(value) != len(types):
        raise ValueError(f"leaf {value!r} has {len(value)} values but the tree has {len(types)} types")
    return keccak_256(keccak_256(encoder(value)).digest()).digest()


def node_hash(a: bytes, b: bytes) -> bytes:
    """An internal node: the pair sorted, so a proof needs no left/right flags."""
    return keccak_256(a + b).digest() if a <= b else keccak_256(b + a).digest()


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
    """Whether the multiproof leads from all `leaves` to `root`: MerkleProof.multiProofVerify, offline.

    A multiproof of no leaves proves nothing (it would pass with the root itself as its proof): False,
    as the contract refuses it."""
    if not leaves:
        return False
    try:
        encoder = _encoder(types)
        hashed = [_leaf_hash(encoder, types, v) for v in leaves]
        return process_multiproof(hashed, proof, list(proof_flags)) == _bytes(root)
    except (ValueError, IndexError):
        return False
