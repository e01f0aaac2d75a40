"""The embedded IPFS store: UnixFS files in the local blockstore, with the CIDs Kubo gives."""

import io
import os
from pathlib import Path
from typing import BinaryIO

from modelreg._atomic import write_atomic
from modelreg.errors import BlockNotFound, CarInvalid, InputInvalid
from modelreg.ipfs import unixfs
from modelreg.ipfs.blockstore import Blockstore
from modelreg.ipfs.car import encode_car, read_car


def _open_input(path: str | os.PathLike) -> BinaryIO:
    try:
        return open(path, "rb")
    except OSError as e:
        raise InputInvalid(f"cannot read {path}: {e.strerror}") from None


def write_atomically_from(chunks, out_path: str | os.PathLike) -> None:
    """Write an iterator of byte strings to `out_path`, renaming into place only when all of
    it arrived, so a block that fails verification leaves no partial file behind."""
    out = Path(out_path)
    if not out.parent.is_dir():
        raise InputInvalid(f"cannot write {out}: the directory {out.parent} does not exist")
    write_atomic(out, chunks)


class EmbeddedIpfs:
    """IPFS without a daemon: UnixFS files in the local blockstore, with Kubo's CIDs."""

    def __init__(self, home: str | os.PathLike, profile: unixfs.Profile = unixfs.V1_2025):
        self.store = Blockstore(Path(home))
        self.profile = profile

    def _add_stream(self, stream: BinaryIO, pin: bool) -> str:
        for block in unixfs.build(stream, self.profile):
            self.store.put(block.cid, block.data)
        if pin:
            self.store.pin(block.cid)
        return str(block.cid)

    def add(self, path, pin=True) -> str:
        with _open_input(path) as f:
            return self._add_stream(f, pin)

    def add_bytes(self, data: bytes, pin=True) -> str:
        return self._add_stream(io.BytesIO(data), pin)

    def cid_of(self, path) -> str:
        with _open_input(path) as f:
            return str(unixfs.root_of(f, self.profile))

    def get(self, cid, out_path) -> None:
        write_atomically_from(unixfs.read(unixfs.parse_cid(cid), self.store.get), out_path)

    def cat(self, cid) -> bytes:
        return b"".join(unixfs.read(unixfs.parse_cid(cid), self.store.get))

    def pin(self, cid) -> None:
        self.store.pin(unixfs.parse_cid(cid))

    def unpin(self, cid) -> None:
        self.store.unpin(unixfs.parse_cid(cid))

    def pins(self) -> list[str]:
        return self.store.pins()

    def gc(self) -> int:
        return self.store.gc()

    def export_car(self, cid, path) -> None:
        """Write the DAG under `cid` as a CARv1 file (depth-first, as `ipfs dag export` does)."""
        root = unixfs.parse_cid(cid)
        write_atomically_from(encode_car([root], self.store.walk(root)), path)

    def import_car(self, path, pin=True) -> list[str]:
        """Import a CARv1 file: every block checked against its CID, every root's DAG complete.

        Blocks are stored as they are verified; if the file turns out bad, the ones already
        stored are unpinned and the next gc removes them.
        """
        with _open_input(path) as f:
            roots, blocks = read_car(f)
            if not roots:
                raise CarInvalid(f"CAR file {path} names no root")
            for cid, data in blocks:
                self.store.put(cid, data)
        for root in roots:
            try:
                for _ in self.store.walk(root):
                    pass
            except BlockNotFound as e:
                raise CarInvalid(f"CAR file {path} is missing blocks of root {root}: {e}") from None
            if pin:
                self.store.pin(root)
        return [str(r) for r in roots]

