"""UnixFS files built block by block exactly as Kubo builds them, and read back block by block.

A file is cut into fixed-size chunks; each chunk is a leaf (a raw block, or a dag-pb node
wrapping the bytes); leaves are packed into parents of at most `max_links` links, level by
level (Kubo's balanced layout), until one root remains. A one-chunk file is its own root.
CIDs, multihashes and multibase come from the `multiformats` package.
"""

import base64
import functools
import hashlib
from collections import deque
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from multiformats import CID, multihash

from modelreg import caps
from modelreg.errors import BlockCorrupted, CidInvalid, InputInvalid
from modelreg.ipfs import dagpb

RAW = "raw"
DAG_PB = "dag-pb"


@dataclass(frozen=True)
class Profile:
    """Every parameter that changes a UnixFS file's CID, under the name Kubo gives the set."""

    name: str
    cid_version: int  # 0: base58btc "Qm..."; 1: base32 "bafy..."/"bafk..."
    raw_leaves: bool  # leaves are bare bytes (raw codec) rather than dag-pb UnixFS nodes
    chunk_size: int  # fixed-size chunker, bytes per leaf
    max_links: int  # children per internal node before the balanced layout adds a level
    # A directory whose node would exceed `hamt_threshold` bytes becomes a HAMT shard of
    # `hamt_fanout` buckets. "block" measures the encoded node exactly; "links" is the legacy
    # estimate, the sum of each link's name and CID lengths (boxo's SizeEstimationLinks).
    hamt_estimate: str
    hamt_threshold: int = 256 << 10
    hamt_fanout: int = 256
    hash: str = "sha2-256"
    layout: str = "balanced"


# IPIP-499 profiles, as Kubo (boxo's UnixFS_v1_2025, UnixFS_v0_2015) and ipfs-unixfs-importer
# name them.
V1_2025 = Profile("unixfs-v1-2025", cid_version=1, raw_leaves=True, chunk_size=1 << 20,
                  max_links=1024, hamt_estimate="block")
V0_2015 = Profile("unixfs-v0-2015", cid_version=0, raw_leaves=False, chunk_size=256 << 10,
                  max_links=174, hamt_estimate="links")
PROFILES = {p.name: p for p in (V1_2025, V0_2015)}
DEFAULT_PROFILE = V1_2025.name


def profile_named(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise InputInvalid(f"unknown UnixFS profile {name!r}; use one of: "
                           f"{', '.join(PROFILES)}") from None


@dataclass(frozen=True)
class Block:
    """A block as stored and exchanged: its CID (in binary form) and its exact bytes."""

    cid_bytes: bytes
    data: bytes

    @property
    def cid(self) -> CID:
        return cid_from_bytes(self.cid_bytes)


@dataclass(frozen=True)
class _Link:
    """What a parent needs of a child: CID bytes, cumulative encoded size, file bytes below."""

    cid: bytes
    tsize: int
    filesize: int


def parse_cid(text: str | CID) -> CID:
    """A CID from its string form; CidInvalid with the offending text otherwise."""
    if isinstance(text, CID):
        return canonical(text)
    try:
        return canonical(CID.decode(text.strip()))
    except Exception:  # multiformats raises several unrelated types, with its own inner wording
        raise CidInvalid(f"{text!r} is not a CID: {_cid_problem(text.strip())}; "
                         "expected e.g. bafkrei... or Qm...") from None


_BASE32 = set("abcdefghijklmnopqrstuvwxyz234567")
_BASE58 = set("123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz")


def _cid_problem(text: str) -> str:
    """What is wrong with a string that does not decode as a CID, in terms of the two forms users meet."""
    if not text:
        return "it is empty"
    if text.startswith("Qm"):
        if len(text) != 46:
            return f"a CIDv0 (Qm...) has 46 characters, this one has {len(text)}"
        return "a CIDv0 (Qm...) is base58, and this one has other characters"
    if text[0] == "b":
        if not set(text[1:]) <= _BASE32:
            return "a base32 CIDv1 (b...) has only the characters a-z and 2-7"
        return f"its length ({len(text)} characters) or its contents are wrong for a base32 CIDv1"
    if text[0] == "z" and not set(text[1:]) <= _BASE58:
        return "a base58 CIDv1 (z...) has only base58 characters"
    return "it is neither a CIDv0 (Qm...) nor a CIDv1 in a base IPFS uses (b... base32, z... base58)"


def canonical(cid: CID) -> CID:
    """The CID in the base Kubo prints: base58btc for v0, base32 for v1."""
    return cid.set(base="base32") if cid.version == 1 and cid.base.name != "base32" else cid


@functools.lru_cache(maxsize=4096)  # a DAG names the same children again and again; CIDs are immutable
def cid_from_bytes(raw: bytes) -> CID:
    return canonical(CID.decode(raw))


_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def cid_text(raw: bytes) -> str:
    """The string Kubo prints for a binary CID of ours: `str(cid_from_bytes(raw))`, without
    building a multiformats object (which validates types at ~20 us a block)."""
    if raw[:2] == b"\x12\x20":  # CIDv0: the bare sha2-256 multihash, in base58btc
        n, out = int.from_bytes(raw, "big"), []
        while n:
            n, digit = divmod(n, 58)
            out.append(_B58[digit])
        return "1" * (len(raw) - len(raw.lstrip(b"\0"))) + "".join(reversed(out))
    return "b" + base64.b32encode(raw).decode().lower().rstrip("=")


def make_cid(data: bytes, codec: str, version: int) -> CID:
    digest = hashlib.sha256(data).digest()
    base = "base58btc" if version == 0 else "base32"
    return CID(base, version, codec, ("sha2-256", digest))


# Binary CID prefixes (version, codec, sha2-256 multihash header), taken from multiformats once:
# building a multiformats CID object costs more than hashing a 256 KiB chunk, so the builder
# works on bytes and makes objects only for the blocks a caller looks at.
_PREFIX = {(version, codec): bytes(CID("base58btc" if version == 0 else "base32", version, codec,
                                       ("sha2-256", bytes(32))))[:-32]
           for version, codec in ((1, RAW), (0, DAG_PB), (1, DAG_PB))}


RAW_V1_PREFIX = b"\x01\x55"  # CIDv1, raw codec: how a binary CID says it is a raw block


def _cid_bytes(data: bytes, codec: str, version: int) -> bytes:
    return _PREFIX[version, codec] + hashlib.sha256(data).digest()


def block_matches(cid: CID, data: bytes) -> bool:
    """Whether `data` hashes to the multihash inside `cid`."""
    if cid.hashfun.name == "sha2-256":  # the fast path every block of ours takes
        return hashlib.sha256(data).digest() == cid.raw_digest
    try:
        return multihash.digest(data, cid.hashfun) == cid.digest
    except Exception:
        return False


def _chunks(stream: BinaryIO, size: int) -> Iterator[bytes]:
    """Fixed-size chunks; an empty file is one empty chunk, as in Kubo and the JS chunker."""
    chunk = stream.read(size)
    yield chunk
    while len(chunk) == size:
        chunk = stream.read(size)
        if not chunk:
            return
        yield chunk


def _leaf(chunk: bytes, profile: Profile) -> tuple[Block, _Link]:
    if profile.raw_leaves:
        cid = _cid_bytes(chunk, RAW, 1)  # raw leaves are CIDv1 even when the root is v0
        return Block(cid, chunk), _Link(cid, len(chunk), len(chunk))
    data = dagpb.encode_file_leaf(chunk)
    cid = _cid_bytes(data, DAG_PB, profile.cid_version)
    return Block(cid, data), _Link(cid, len(data), len(chunk))


def _parent(children: list[_Link], profile: Profile) -> tuple[Block, _Link]:
    sizes = [c.filesize for c in children]
    unixfs = dagpb.encode_unixfs_file(b"", sum(sizes), sizes)
    data = dagpb.encode_node([dagpb.encode_link(c.cid, c.tsize) for c in children], unixfs)
    cid = _cid_bytes(data, DAG_PB, profile.cid_version)
    tsize = len(data) + sum(c.tsize for c in children)
    return Block(cid, data), _Link(cid, tsize, sum(sizes))


def build(stream: BinaryIO, profile: Profile = V1_2025) -> Iterator[Block]:
    """Yield the file's blocks, every child before its parent; the last block is the root.

    Memory stays bounded: one chunk plus at most `max_links` link records per level.
    """
    yield from _file_blocks(stream, profile)


def _file_blocks(stream: BinaryIO, profile: Profile) -> Generator[Block, None, _Link]:
    """`build`, returning the root's link once every block is out."""
    levels: list[list[_Link]] = [[]]
    for chunk in _chunks(stream, profile.chunk_size):
        block, link = _leaf(chunk, profile)
        yield block
        levels[0].append(link)
        k = 0
        while len(levels[k]) == profile.max_links:  # a full node: close it, go up a level
            block, link = _parent(levels[k], profile)
            yield block
            levels[k] = []
            if k + 1 == len(levels):
                levels.append([])
            levels[k + 1].append(link)
            k += 1
    # Close the partial nodes bottom-up. A level's lone entry is the root only when nothing
    # waits above it; otherwise it still gets its own parent so all leaves share one depth.
    for k, links in enumerate(levels):
        if not links:
            continue
        if len(links) == 1 and not any(levels[k + 1 :]):
            return links[0]
        block, link = _parent(links, profile)
        yield block
        if k + 1 == len(levels):
            levels.append([])
        levels[k + 1].append(link)


def root_of(stream: BinaryIO, profile: Profile = V1_2025) -> CID:
    """The file's root CID, computing every block and keeping none."""
    (last,) = deque(build(stream, profile), maxlen=1)
    return last.cid


def links_of(cid: CID, data: bytes) -> list[CID]:
    """The CIDs a block links to (none for raw blocks)."""
    return [cid_from_bytes(raw) for raw in link_bytes_of(cid, data)]


def link_bytes_of(cid: CID, data: bytes) -> list[bytes]:
    """`links_of`, as binary CIDs."""
    if cid.codec.name == RAW:
        return []
    if cid.codec.name != DAG_PB:
        raise CidInvalid(f"{cid} has codec {cid.codec.name}; only raw and dag-pb are supported")
    return [link.hash for link in dagpb.decode_node(data, str(cid)).links]


def read(root: CID, get_block: Callable[[CID], bytes]) -> Iterator[bytes]:
    """Yield a UnixFS file's bytes in order, fetching each block through `get_block`.

    `get_block` must return verified bytes; the sizes recorded in each node are checked too,
    so a DAG that is well-formed but inconsistent is refused rather than returned short.
    """
    limit = caps.current().max_bytes
    stack = [(root, None)]
    while stack:
        cid, expected = stack.pop()
        data = get_block(cid)
        if cid.codec.name == RAW:
            _check_size(cid, len(data), expected)
            if expected is None and len(data) > limit:
                raise caps.exceeded("max_bytes", f"file {root}", f"{len(data)} bytes")
            yield data
        else:
            node = dagpb.decode_node(data, str(cid))
            if node.data is None:
                raise BlockCorrupted(f"block {cid} is a dag-pb node without UnixFS data")
            fs = dagpb.decode_unixfs(node.data, str(cid))
            if fs.type in (dagpb.UNIXFS_DIRECTORY, dagpb.UNIXFS_HAMT_SHARD):
                raise InputInvalid(f"{cid} is a directory, not a file")
            if fs.type not in (dagpb.UNIXFS_FILE, dagpb.UNIXFS_RAW):
                raise InputInvalid(f"{cid} is not a UnixFS file (type {fs.type})")
            if len(fs.blocksizes) != len(node.links):
                raise BlockCorrupted(f"block {cid} has {len(node.links)} links but "
                                     f"{len(fs.blocksizes)} blocksizes")
            got = len(fs.data) + sum(fs.blocksizes)
            if fs.filesize is not None and fs.filesize != got:
                raise BlockCorrupted(f"block {cid} records filesize {fs.filesize}, its parts "
                                     f"add up to {got}")
            _check_size(cid, got, expected)
            if expected is None and got > limit:  # the root declares the file's size: refused before reading
                raise caps.exceeded("max_bytes", f"the size file {root} declares", f"{got} bytes")
            if fs.data:
                yield fs.data
            children = zip(node.links, fs.blocksizes, strict=True)
            stack.extend((cid_from_bytes(link.hash), size) for link, size in reversed(list(children)))


def _check_size(cid: CID, got: int, expected: int | None) -> None:
    if expected is not None and got != expected:
        raise BlockCorrupted(f"block {cid} holds {got} file bytes, its parent says {expected}")
