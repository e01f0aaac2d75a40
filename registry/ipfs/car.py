"""CARv1: a varint-framed dag-cbor header naming the roots, then (varint, CID, bytes) sections.

The header is the one dag-cbor value CARv1 needs, {"roots": [CID...], "version": 1}, so it is
encoded and decoded here by hand rather than through a CBOR library none of the other code
needs: dag-cbor is deterministic (keys sorted by length, CIDs as tag 42 over 0x00 + CID bytes),
so this is the exact header @ipld/car and Kubo write.
"""

from collections.abc import Iterable, Iterator
from typing import BinaryIO

from multiformats import CID

from modelreg.errors import CarInvalid
from modelreg.ipfs import unixfs
from modelreg.ipfs.dagpb import read_varint, varint

_MAX_SECTION = 8 << 20  # Kubo's blocks are at most 2 MiB; a larger length means a broken file


def _cbor_head(major: int, n: int) -> bytes:
    if n < 24:
        return bytes([major << 5 | n])
    for extra, width in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * width):
            return bytes([major << 5 | extra]) + n.to_bytes(width, "big")
    raise ValueError(n)


def encode_header(roots: list[CID]) -> bytes:
    out = bytearray(b"\xa2" + b"\x65roots" + _cbor_head(4, len(roots)))
    for root in roots:
        link = b"\x00" + bytes(root)
        out += b"\xd8\x2a" + _cbor_head(2, len(link)) + link
    out += b"\x67version\x01"
    return bytes(out)


class _Cbor:
    """Just enough of a dag-cbor reader for a CAR header: maps, arrays, text, ints, tag-42."""

    MAX_DEPTH = 8  # a CARv1 header nests 2 levels ({"roots": [CID]}); deeper is hostile

    def __init__(self, buf: bytes):
        self.buf, self.pos, self.depth = buf, 0, 0

    def _arg(self, info: int) -> int:
        if info < 24:
            return info
        width = {24: 1, 25: 2, 26: 4, 27: 8}.get(info)
        if width is None or self.pos + width > len(self.buf):
            raise ValueError("bad CBOR length")
        n = int.from_bytes(self.buf[self.pos : self.pos + width], "big")
        self.pos += width
        return n

    def _map(self, n: int) -> dict:
        found = {}
        for _ in range(n):
            key = self.value()
            if not isinstance(key, str):  # dag-cbor: map keys are strings
                raise ValueError(f"a map key is a {type(key).__name__}, not a string")
            found[key] = self.value()
        return found

    def value(self):
        if self.pos >= len(self.buf):
            raise ValueError("truncated CBOR")
        head = self.buf[self.pos]
        self.pos += 1
        major, n = head >> 5, self._arg(head & 31)
        if major == 0:
            return n
        if major in (2, 3):
            raw = self.buf[self.pos : self.pos + n]
            self.pos += n
            return raw.decode() if major == 3 else raw
        if major in (4, 5):
            self.depth += 1
            if self.depth > self.MAX_DEPTH:
                raise ValueError(f"nested more than {self.MAX_DEPTH} levels deep")
            if n > len(self.buf):  # each item takes a byte at least: refuse before allocating
                raise ValueError(f"{n} items in {len(self.buf)} bytes")
            found = [self.value() for _ in range(n)] if major == 4 else self._map(n)
            self.depth -= 1
            return found
        if major == 6 and n == 42:
            link = self.value()
            if not isinstance(link, bytes) or link[:1] != b"\x00":
                raise ValueError("tag 42 is not a CID")
            try:
                return unixfs.cid_from_bytes(link[1:])
            except Exception as e:  # multiformats raises several unrelated types
                raise ValueError(f"tag 42 holds no valid CID ({e})") from None
        raise ValueError(f"unsupported CBOR item (major type {major})")


STORED_CODECS = ("raw", "dag-pb")


def decode_header(buf: bytes) -> list[CID]:
    try:
        header = _Cbor(buf).value()
        if not isinstance(header, dict) or header.get("version") != 1:
            raise ValueError(f"not a CARv1 header: {header!r}")
        roots = header.get("roots")
        if not isinstance(roots, list) or not all(isinstance(r, CID) for r in roots):
            raise ValueError("roots is not a list of CIDs")
        return roots
    except (ValueError, UnicodeDecodeError) as e:
        raise CarInvalid(f"CAR header is invalid: {e}") from None


def encode_car(roots: list[CID], blocks: Iterable[tuple[CID, bytes]]) -> Iterator[bytes]:
    """The CAR file as a stream of byte strings: header frame, then one section per block."""
    header = encode_header(roots)
    yield varint(len(header)) + header
    for cid, data in blocks:
        raw = bytes(cid)
        yield varint(len(raw) + len(data)) + raw
        yield data


def _read_varint(stream: BinaryIO) -> int | None:
    """A varint from the stream; None at a clean end of file."""
    buf = bytearray()
    while True:
        b = stream.read(1)
        if not b:
            if buf:
                raise CarInvalid("CAR file ends inside a section length")
            return None
        buf += b
        if b[0] < 0x80:
            return read_varint(buf, 0)[0]
        if len(buf) > 9:
            raise CarInvalid("CAR section length is not a valid varint")


def _split_cid(section: bytes) -> tuple[CID, bytes]:
    """Split a section into its CID and the block bytes after it."""
    try:
        if section[:2] == b"\x12\x20":  # CIDv0 is a bare sha2-256 multihash
            end = 34
        else:
            pos = 0
            for _ in range(3):  # version, codec, hash function
                _, pos = read_varint(section, pos)
            length, pos = read_varint(section, pos)
            end = pos + length
        if end > len(section):
            raise ValueError("CID runs past the section")
        cid = unixfs.cid_from_bytes(section[:end])
        cid.raw_digest  # noqa: B018 - a digest of another length than its hash function's is refused here
    except Exception as e:
        raise CarInvalid(f"CAR section does not start with a valid CID: {e}") from None
    if cid.codec.name not in STORED_CODECS or cid.hashfun.name != "sha2-256":
        # An identity hash holds the data in the CID itself (too long for a file name), and other
        # codecs are no UnixFS: neither is a block this store keeps.
        raise CarInvalid(f"CAR block {_short(cid)} is {cid.codec.name} hashed with {cid.hashfun.name}; this "
                         f"store keeps only {' and '.join(STORED_CODECS)} blocks hashed with sha2-256")
    return cid, section[end:]


def _short(cid: CID) -> str:
    text = str(cid)
    return text if len(text) <= 80 else text[:40] + "..." + text[-8:]


def read_car(stream: BinaryIO) -> tuple[list[CID], Iterator[tuple[CID, bytes]]]:
    """The roots, and an iterator over the blocks, each checked against its CID as it is read.

    A block whose bytes do not match its CID raises CarInvalid naming the CID.
    """
    size = _read_varint(stream)
    if size is None or size > _MAX_SECTION:
        raise CarInvalid("not a CAR file: no valid header length")
    header = stream.read(size)
    if len(header) != size:
        raise CarInvalid("CAR file ends inside its header")
    roots = decode_header(header)

    def blocks() -> Iterator[tuple[CID, bytes]]:
        while (size := _read_varint(stream)) is not None:
            if size > _MAX_SECTION:
                raise CarInvalid(f"CAR section of {size} bytes is larger than any IPFS block")
            section = stream.read(size)
            if len(section) != size:
                raise CarInvalid("CAR file ends inside a block")
            cid, data = _split_cid(section)
            if not unixfs.block_matches(cid, data):
                raise CarInvalid(f"CAR block {cid} does not match its CID (corrupted or forged)")
            yield cid, data

    return roots, blocks()


def verify_car(stream: BinaryIO) -> list[CID]:
    """Read a whole CAR, checking every block against its CID and that each root's DAG is
    complete; return the roots. Only CIDs and links are kept, so memory stays small."""
    roots, blocks = read_car(stream)
    if not roots:
        raise CarInvalid("CAR file names no root")
    links = {cid: unixfs.links_of(cid, data) for cid, data in blocks}
    for root in roots:
        stack, seen = [root], set()
        while stack:
            cid = stack.pop()
            if cid in seen:
                continue
            seen.add(cid)
            if cid not in links:
                raise CarInvalid(f"CAR file is missing block {cid} of root {root}")
            stack.extend(links[cid])
    return roots
