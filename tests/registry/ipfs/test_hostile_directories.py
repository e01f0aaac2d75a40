"""A stranger's UnixFS directory whose entries no file system holds: one error of its own, nothing written."""

import pytest

from modelreg.errors import CapExceeded, DirectoryInvalid
from modelreg.ipfs import unixfs
from modelreg.ipfs.directory import build_directory
from modelreg.ipfs.embedded import MAX_DIRECTORY_DEPTH, EmbeddedIpfs
from modelreg.ipfs.unixfs import _Link
from tests.registry.ipfs.builders import run_builder


def _store_directory(ipfs: EmbeddedIpfs, entries: list[tuple[bytes, _Link]]) -> tuple[str, _Link]:
    blocks, link = run_builder(build_directory(entries, unixfs.V1_2025))
    ipfs.pending.extend(blocks)
    return unixfs.cid_text(link.cid), link


def _file(ipfs: EmbeddedIpfs, data: bytes) -> _Link:
    cid = unixfs.parse_cid(ipfs.add_bytes(data, pin=False))
    return _Link(bytes(cid), len(data), len(data))


def _hostile(ipfs: EmbeddedIpfs, case: str) -> str:
    leaf = _file(ipfs, b"weights")
    if case == "a NUL in a name":
        return _store_directory(ipfs, [(b"model\0.bin", leaf)])[0]
    if case == "a name too long":
        return _store_directory(ipfs, [(b"n" * 300, leaf)])[0]
    if case == "a file and a directory of one name":
        _, sub = _store_directory(ipfs, [(b"inner", leaf)])
        return _store_directory(ipfs, [(b"same", leaf), (b"same", sub)])[0]
    _, link = _store_directory(ipfs, [(b"bottom", leaf)])  # very deep nesting
    for _ in range(MAX_DIRECTORY_DEPTH + 10):
        cid, link = _store_directory(ipfs, [(b"d", link)])
    return cid


@pytest.mark.parametrize("case", ["a NUL in a name", "a name too long", "a file and a directory of one name",
                                  "very deep nesting"])
def test_a_hostile_directory_is_refused_by_name_and_leaves_nothing(tmp_path, case):
    ipfs = EmbeddedIpfs(tmp_path / "home")
    ipfs.pending = []  # the directory's blocks, stored as one batch
    cid = _hostile(ipfs, case)
    ipfs.store.put_all(ipfs.pending)
    # Nesting deeper than the max_depth cap (modelreg.caps, 64) is refused by the cap first, by name.
    expected = CapExceeded if case == "very deep nesting" else DirectoryInvalid
    with pytest.raises(expected, match="max_depth" if expected is CapExceeded else f"directory {cid}"):
        ipfs.get(cid, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]
