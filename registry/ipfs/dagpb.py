"""The dag-pb node and UnixFS Data messages: the few protobuf fields UnixFS files and directories need, byte-exact.

Hand-written rather than generated: a generic protobuf library may order fields or omit
defaults differently, and a CID is a hash of the exact bytes. Kubo (go-merkledag) and the
JavaScript importer both write, in this order: every PBLink (Hash, Name, Tsize), sorted by
Name, then Data; and inside Data: Type, Data (only when non-empty), filesize, blocksizes,
hashType, fanout. File links have an empty Name; directory links carry the entry's name.
"""

from dataclasses import dataclass

from modelreg.errors import BlockCorrupted

UNIXFS_RAW = 0
UNIXFS_DIRECTORY = 1
UNIXFS_FILE = 2
UNIXFS_METADATA = 3
UNIXFS_SYMLINK = 4
UNIXFS_HAMT_SHARD = 5


@dataclass(frozen=True)
class PBLink:
    """One dag-pb link: the child's CID bytes, its name, its cumulative encoded size."""

    hash: bytes
    name: str
    tsize: int


@dataclass(frozen=True)
class PBNode:
    """A decoded dag-pb node."""

    links: tuple[PBLink, ...]
    data: bytes | None


@dataclass(frozen=True)
class UnixFSData:
    """A decoded UnixFS Data message (the fields files, directories and HAMT shards use)."""

    type: int
    data: bytes
    filesize: int | None
    blocksizes: tuple[int, ...]
    hash_type: int | None = None
    fanout: int | None = None


def varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def read_varint(buf, pos: int) -> tuple[int, int]:
    """Decode an unsigned varint at `pos`; return (value, next position)."""
    n = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated or overlong varint")
        b = buf[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        if b < 0x80:
            return n, pos
        shift += 7


def _field_bytes(tag: int, payload: bytes) -> bytes:
    return bytes([tag]) + varint(len(payload)) + payload


def encode_link(cid: bytes, tsize: int) -> bytes:
    """A PBLink with an empty Name, as go-merkledag and the JS importer write file links."""
    return _field_bytes(0x0A, cid) + b"\x12\x00" + b"\x18" + varint(tsize)


def encode_named_link(cid: bytes, name: bytes, tsize: int) -> bytes:
    """A PBLink of a directory: Hash, Name (the entry's UTF-8 name), Tsize."""
    return _field_bytes(0x0A, cid) + _field_bytes(0x12, name) + b"\x18" + varint(tsize)


def encode_node(links: list[bytes], data: bytes) -> bytes:
    """A PBNode: the already-encoded links (field 2) first, then Data (field 1)."""
    return b"".join(_field_bytes(0x12, link) for link in links) + _field_bytes(0x0A, data)


def encode_unixfs_file(data: bytes, filesize: int, blocksizes: list[int] = ()) -> bytes:
    """UnixFS Data{Type=File, Data (omitted when empty), filesize, blocksizes...}."""
    out = [b"\x08\x02"]
    if data:
        out.append(_field_bytes(0x12, data))
    out.append(b"\x18" + varint(filesize))
    out.extend(b"\x20" + varint(size) for size in blocksizes)
    return b"".join(out)


UNIXFS_DIRECTORY_DATA = b"\x08\x01"  # UnixFS Data{Type=Directory}: no mode, no mtime, as `ipfs add`


def encode_unixfs_hamt_shard(bitfield: bytes, hash_type: int, fanout: int) -> bytes:
    """UnixFS Data{Type=HAMTShard, Data=bitfield, hashType, fanout}."""
    return (b"\x08\x05" + _field_bytes(0x12, bitfield) + b"\x28" + varint(hash_type)
            + b"\x30" + varint(fanout))


def encode_file_leaf(chunk: bytes) -> bytes:
    """PBNode{Data: UnixFS{File, chunk, filesize}} with no links, copying the chunk only once."""
    unixfs_head = b"\x08\x02" + (b"\x12" + varint(len(chunk)) if chunk else b"")
    unixfs_tail = b"\x18" + varint(len(chunk))
    inner = len(unixfs_head) + len(chunk) + len(unixfs_tail)
    return b"".join((b"\x0a", varint(inner), unixfs_head, chunk, unixfs_tail))


def _fields(buf: bytes):
    """Yield (field number, wire type, value) for each protobuf field; value is int or bytes."""
    pos = 0
    while pos < len(buf):
        key, pos = read_varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = read_varint(buf, pos)
        elif wire == 2:
            size, pos = read_varint(buf, pos)
            if pos + size > len(buf):
                raise ValueError(f"field {field} runs past the end")
            value, pos = bytes(buf[pos : pos + size]), pos + size
        else:
            raise ValueError(f"unsupported wire type {wire} in field {field}")
        yield field, wire, value


def decode_node(block: bytes, cid: str) -> PBNode:
    """Decode a dag-pb block; raises BlockCorrupted naming the CID when it does not parse."""
    try:
        links, data = [], None
        for field, wire, value in _fields(block):
            if field == 2 and wire == 2:
                links.append(_decode_link(value))
            elif field == 1 and wire == 2:
                data = value
            else:
                raise ValueError(f"unexpected field {field}")
        return PBNode(tuple(links), data)
    except ValueError as e:
        raise BlockCorrupted(f"block {cid} is not a valid dag-pb node: {e}") from None


def _decode_link(buf: bytes) -> PBLink:
    hash_, name, tsize = None, "", 0
    for field, _, value in _fields(buf):
        if field == 1:
            hash_ = value
        elif field == 2:
            name = value.decode()
        elif field == 3:
            tsize = value
    if hash_ is None:
        raise ValueError("link without Hash")
    return PBLink(hash_, name, tsize)


def decode_unixfs(buf: bytes, cid: str) -> UnixFSData:
    """Decode the UnixFS Data message of a dag-pb node; BlockCorrupted when it does not parse."""
    try:
        type_, data, filesize, blocksizes, hash_type, fanout = None, b"", None, [], None, None
        for field, _, value in _fields(buf):
            if field == 1:
                type_ = value
            elif field == 2:
                data = value
            elif field == 3:
                filesize = value
            elif field == 4:
                blocksizes.append(value)
            elif field == 5:
                hash_type = value
            elif field == 6:
                fanout = value
        if type_ is None:
            raise ValueError("no Type")
        return UnixFSData(type_, data, filesize, tuple(blocksizes), hash_type, fanout)
    except ValueError as e:
        raise BlockCorrupted(f"block {cid} holds invalid UnixFS data: {e}") from None
