"""UnixFS directories exactly as `ipfs add -r` builds them, and paths resolved and listed back.

A directory is one dag-pb node whose links name its entries, sorted by name, each with the
entry's cumulative size (Tsize). When that node would grow past the profile's threshold it
becomes a HAMT shard instead: entries are spread over `hamt_fanout` buckets by the murmur3
hash of their name (the first 64 bits of x64_128, big-endian, as go-unixfs takes them),
one byte of hash per level; a bucket holding one entry links it under the bucket's hex
label followed by its name, a bucket holding several links a sub-shard under the bare
label. Everything under the directory is included, hidden files too (`ipfs add -r
--hidden`), and empty directories; nothing carries a mode or mtime.

Every link counts towards the threshold at its final size, subdirectories included, as in
Kubo: its adder builds the tree in MFS, whose directories re-add a subdirectory's link each
time the subdirectory changes (boxo, read rather than run: no Kubo binary could be built
here). The JavaScript importer (17.1.1) decides before building subdirectories and counts
their links as nothing, so a directory that is over the threshold only through thousands of
subdirectory links stays one node there; that is the one shape where the two differ.
"""

import os
import stat
from collections.abc import Callable, Generator, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import mmh3
from multiformats import CID

from modelreg import caps
from modelreg._files import open_regular
from modelreg.errors import (
    BlockCorrupted,
    DirectoryInvalid,
    InputInvalid,
    ManifestInvalid,
    PathNotFound,
    SymlinkRefused,
)
from modelreg.formats import paths
from modelreg.ipfs import dagpb, unixfs
from modelreg.ipfs.unixfs import DAG_PB, RAW, Block, Profile, _Link

MURMUR3_X64_64 = 0x22  # the multicodec of the HAMT's name hash, recorded in every shard
_HASH_BITS = 64

OpenFile = Callable[[Path], AbstractContextManager[BinaryIO]]


@dataclass(frozen=True)
class Entry:
    """One entry of a directory: its name, the CID of its root, its cumulative size (Tsize)."""

    name: str
    cid: CID
    tsize: int


def build_tree(directory: str | os.PathLike, profile: Profile = unixfs.V1_2025, *,
               follow_symlinks: bool = False, open_file: OpenFile = open_regular) -> Iterator[Block]:
    """Yield the blocks of `directory` and everything under it, children before parents; the
    last block is the directory's root, the CID `ipfs add -r --hidden` gives it.

    Files are read once each, through `open_file(path)`, so a caller can see their bytes as
    they go by. A symbolic link raises InputInvalid unless `follow_symlinks` is set, in which
    case its target is added in its place; a FIFO, socket or device raises InputInvalid.
    """
    root = Path(directory)
    if not root.is_dir():
        raise InputInvalid(f"{str(root)!r} is not a directory")
    yield from _tree(root, profile, follow_symlinks, open_file, frozenset())


def _tree(path: Path, profile: Profile, follow: bool, open_file: OpenFile,
          ancestors: frozenset) -> Generator[Block, None, _Link]:
    info = path.stat()
    if (info.st_dev, info.st_ino) in ancestors:
        raise InputInvalid(f"{str(path)!r} is a symbolic link to a directory that contains it")
    ancestors = ancestors | {(info.st_dev, info.st_ino)}
    links = []
    with os.scandir(path) as scan:
        entries = sorted(scan, key=lambda e: e.name)
    for entry in entries:
        child = Path(entry.path)
        name = _utf8_name(child)
        if entry.is_symlink() and not follow:
            raise SymlinkRefused(f"{str(child)!r} is a symbolic link, and links are followed "
                                 "only when asked (follow_symlinks)")
        try:
            mode = os.stat(child).st_mode  # follows a link, when following is allowed
        except FileNotFoundError:
            raise InputInvalid(f"{str(child)!r} is a symbolic link to nothing") from None
        if stat.S_ISDIR(mode):
            link = yield from _tree(child, profile, follow, open_file, ancestors)
        elif stat.S_ISREG(mode):
            with open_file(child) as f:
                link = yield from unixfs._file_blocks(f, profile)
        else:
            raise InputInvalid(f"{str(child)!r} is not a regular file or a directory "
                               "(a FIFO, socket or device)")
        links.append((name, link))
    return (yield from build_directory(links, profile))


def _utf8_name(path: Path) -> bytes:
    try:
        return os.fsencode(path.name).decode("utf-8").encode("utf-8")
    except UnicodeDecodeError:
        raise InputInvalid(f"the name of {str(path)!r} is not valid UTF-8; rename it") from None


def build_directory(links: list[tuple[bytes, _Link]], profile: Profile
                    ) -> Generator[Block, None, _Link]:
    """One directory over (UTF-8 name, link) pairs: a basic node, or a HAMT when too big."""
    links = sorted(links, key=lambda pair: pair[0])
    node = _node(links, dagpb.UNIXFS_DIRECTORY_DATA)
    if profile.hamt_estimate == "links":  # boxo's legacy estimate; "block" is the exact size
        size = sum(len(name) + len(link.cid) for name, link in links)
    else:
        size = len(node)
    if size > profile.hamt_threshold:  # a node exactly at the threshold stays basic
        hashed = [(_name_hash(name), name, link) for name, link in links]
        return (yield from _shard(hashed, 0, profile))
    return (yield from _emit(node, links, profile))


def _node(links: list[tuple[bytes, _Link]], data: bytes) -> bytes:
    return dagpb.encode_node([dagpb.encode_named_link(link.cid, name, link.tsize)
                              for name, link in links], data)


def _emit(node: bytes, links: list[tuple[bytes, _Link]], profile: Profile
          ) -> Generator[Block, None, _Link]:
    """Yield the node's block; return the link a parent needs, with its cumulative size."""
    cid = unixfs._cid_bytes(node, DAG_PB, profile.cid_version)
    yield Block(cid, node)
    return _Link(cid, len(node) + sum(link.tsize for _, link in links), 0)


def _name_hash(name: bytes) -> int:
    return mmh3.hash64(name, signed=False)[0]


def _bucket(name_hash: int, depth: int, bits: int) -> int:
    shift = _HASH_BITS - (depth + 1) * bits
    if shift < 0:  # two names share all 64 hash bits: go-unixfs cannot place them either
        raise InputInvalid("two directory entries share their whole HAMT hash; rename one")
    return (name_hash >> shift) & ((1 << bits) - 1)


def _shard(hashed: list[tuple[int, bytes, _Link]], depth: int, profile: Profile
           ) -> Generator[Block, None, _Link]:
    fanout = profile.hamt_fanout
    bits = fanout.bit_length() - 1
    width = len(f"{fanout - 1:X}")
    buckets: dict[int, list] = {}
    for item in hashed:
        buckets.setdefault(_bucket(item[0], depth, bits), []).append(item)
    links = []
    for index in sorted(buckets):
        label = f"{index:0{width}X}".encode()
        items = buckets[index]
        if len(items) == 1:
            _, name, link = items[0]
            links.append((label + name, link))
        else:
            links.append((label, (yield from _shard(items, depth + 1, profile))))
    bitfield = sum(1 << index for index in buckets)
    data = dagpb.encode_unixfs_hamt_shard(bitfield.to_bytes((bitfield.bit_length() + 7) // 8, "big"),
                                          MURMUR3_X64_64, fanout)
    return (yield from _emit(_node(links, data), links, profile))


# --- reading -------------------------------------------------------------------
GetBlock = Callable[[CID], bytes]


def _directory_node(cid: CID, data: bytes) -> tuple[dagpb.PBNode, dagpb.UnixFSData]:
    if cid.codec.name == RAW:
        raise InputInvalid(f"{cid} is a file, not a directory")
    node = dagpb.decode_node(data, cid)  # the CID made text only for an error: slow to make
    if node.data is None:
        raise BlockCorrupted(f"block {cid} is a dag-pb node without UnixFS data")
    fs = dagpb.decode_unixfs(node.data, cid)
    if fs.type == dagpb.UNIXFS_HAMT_SHARD:
        if fs.hash_type != MURMUR3_X64_64:
            raise BlockCorrupted(f"HAMT shard {cid} hashes names with {fs.hash_type}, not murmur3")
        # Powers of two only, and no wider than the 1024 js-ipfs-unixfs and boxo accept.
        if fs.fanout is None or not 8 <= fs.fanout <= 1024 or fs.fanout & (fs.fanout - 1):
            raise BlockCorrupted(f"HAMT shard {cid} has an invalid fanout {fs.fanout}")
    elif fs.type != dagpb.UNIXFS_DIRECTORY:
        raise InputInvalid(f"{cid} is a file, not a directory")
    return node, fs


def is_directory(cid: CID, get_block: GetBlock) -> bool:
    """Whether `cid` is the root of a UnixFS directory (basic or HAMT), not of a file."""
    if cid.codec.name == RAW:
        return False
    try:
        _directory_node(cid, get_block(cid))
    except InputInvalid:
        return False
    return True


def ls(cid: CID, get_block: GetBlock) -> list[Entry]:
    """The directory's entries, sorted by name; a HAMT's shards are walked transparently."""
    node, fs = _directory_node(cid, get_block(cid))
    if fs.type == dagpb.UNIXFS_DIRECTORY:
        entries = [Entry(link.name, unixfs.cid_from_bytes(link.hash), link.tsize)
                   for link in node.links]
    else:
        limit, entries = caps.current().max_entries, []
        for entry in _shard_entries(cid, node, fs, get_block):
            entries.append(entry)
            if len(entries) > limit:
                break
    if len(entries) > caps.current().max_entries:  # the message (a CID as text) only when it is needed
        raise caps.exceeded("max_entries", f"the number of entries of directory {cid}", len(entries))
    entries.sort(key=lambda e: e.name.encode())
    for a, b in zip(entries, entries[1:], strict=False):
        if a.name == b.name:  # a lookup would find one, a listing both: which bytes are "the" file is ambiguous
            raise DirectoryInvalid(f"directory {cid} has two entries named {a.name!r}; refused as ambiguous")
    return entries


def _shard_entries(cid: CID, node: dagpb.PBNode, fs: dagpb.UnixFSData,
                   get_block: GetBlock, buckets: tuple[int, ...] = ()) -> Iterator[Entry]:
    width = len(f"{fs.fanout - 1:X}")
    bits = fs.fanout.bit_length() - 1
    if len(buckets) * bits >= _HASH_BITS:
        raise BlockCorrupted(f"HAMT shard {cid} nests deeper than its name hash has bits")
    for link in node.links:
        child = unixfs.cid_from_bytes(link.hash)
        try:
            label = int(link.name[:width], 16)
        except ValueError:
            raise BlockCorrupted(f"HAMT shard {cid} has a link named {link.name!r}, "
                                 "which does not start with a bucket label") from None
        if len(link.name) == width:
            sub_node, sub_fs = _directory_node(child, get_block(child))
            if sub_fs.type != dagpb.UNIXFS_HAMT_SHARD or sub_fs.fanout != fs.fanout:
                raise BlockCorrupted(f"HAMT shard {cid} links {child} as a sub-shard, "
                                     "but it is not one of the same fanout")
            yield from _shard_entries(child, sub_node, sub_fs, get_block, (*buckets, label))
        elif len(link.name) > width:
            name = link.name[width:]
            # An entry filed under another bucket than its name hashes to is invisible to a lookup
            # but seen by a listing: one name could then give two files.
            name_hash = _name_hash(name.encode())
            if [_bucket(name_hash, d, bits) for d in range(len(buckets) + 1)] != [*buckets, label]:
                raise BlockCorrupted(f"HAMT shard {cid} files {name!r} under a bucket its name does not "
                                     "hash to")
            yield Entry(name, child, link.tsize)
        else:
            raise BlockCorrupted(f"HAMT shard {cid} has a link named {link.name!r}, "
                                 f"shorter than its {width}-character labels")


def lookup(cid: CID, name: str, get_block: GetBlock) -> CID:
    """The CID of the entry `name` in the directory `cid`; PathNotFound when there is none."""
    node, fs = _directory_node(cid, get_block(cid))
    if fs.type == dagpb.UNIXFS_DIRECTORY:
        found = [link for link in node.links if link.name == name]
        if len(found) > 1:
            raise DirectoryInvalid(f"directory {cid} has two entries named {name!r}; refused as ambiguous")
        if found:
            return unixfs.cid_from_bytes(found[0].hash)
        raise PathNotFound(f"directory {cid} has no entry {name!r}")
    name_hash, shard, depth = _name_hash(name.encode()), cid, 0
    while True:
        width = len(f"{fs.fanout - 1:X}")
        label = f"{_bucket(name_hash, depth, fs.fanout.bit_length() - 1):0{width}X}"
        for link in node.links:
            if link.name == label:  # a sub-shard: one level deeper
                shard = unixfs.cid_from_bytes(link.hash)
                node, fs = _directory_node(shard, get_block(shard))
                depth += 1
                break
            if link.name == label + name:
                return unixfs.cid_from_bytes(link.hash)
        else:
            raise PathNotFound(f"directory {cid} has no entry {name!r}")


def resolve(path: str, get_block: GetBlock) -> CID:
    """The CID that `CID`, `CID/a/b` or `/ipfs/CID/a/b` names, each step checked."""
    parts = [p for p in path.removeprefix("/ipfs/").split("/") if p]
    if not parts:
        raise InputInvalid(f"{path!r} names no CID")
    cid = unixfs.parse_cid(parts[0])
    for name in parts[1:]:
        cid = lookup(cid, name, get_block)
    return cid


def walk(cid: CID, get_block: GetBlock) -> Iterator[tuple[str, CID, bool]]:
    """(relative POSIX path, CID, is a directory) for everything under the directory `cid`,
    each directory before its contents.

    Every name must be a plain file name (formats.paths) and unique in its directory after
    folding; ManifestInvalid otherwise. The whole tree is listed and checked against the caps
    (entries, depth) before the first entry is yielded, so a refused tree leaves nothing written.
    """
    return iter(list(_walk(cid, get_block, "", [0])))


def _walk(cid: CID, get_block: GetBlock, prefix: str, seen: list[int]) -> Iterator[tuple[str, CID, bool]]:
    depth = prefix.count("/") + 1
    caps.check("max_depth", f"the depth of directory {cid}", depth)
    entries = ls(cid, get_block)
    try:
        for entry in entries:
            paths.check_name(entry.name, what="entry")
        paths.check_unique((e.name for e in entries), what="the listing")
    except ManifestInvalid as e:  # the CID made text only now: it is slow to make
        raise DirectoryInvalid(f"directory {cid}: {e}") from None
    for entry in entries:
        seen[0] += 1  # entries so far, across the whole tree
        caps.check("max_files", "the number of entries under the directory fetched", seen[0])
        path = prefix + entry.name
        sub = is_directory(entry.cid, get_block)
        yield path, entry.cid, sub
        if sub:
            yield from _walk(entry.cid, get_block, path + "/", seen)
