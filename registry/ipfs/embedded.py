"""The embedded IPFS store: UnixFS files and directories in the local blockstore, with the CIDs Kubo gives."""

import io
import os
import shutil
import tempfile
from pathlib import Path

from multiformats import CID

from modelreg._atomic import FULL_DISK, temp_prefix, write_atomic
from modelreg._files import open_regular
from modelreg.errors import BlockNotFound, CarInvalid, DirectoryInvalid, DiskFull, InputInvalid
from modelreg.home import HomeLike
from modelreg.ipfs import directory, unixfs
from modelreg.ipfs.blockstore import Blockstore
from modelreg.ipfs.car import encode_car, read_car
from modelreg.ipfs.unixfs import Block

MAX_DIRECTORY_DEPTH = 256  # levels written by `get`; a model directory nests a few


def write_atomically_from(chunks, out_path: str | os.PathLike) -> None:
    """Write an iterator of byte strings to `out_path`, renaming into place only when all of
    it arrived, so a block that fails verification leaves no partial file behind."""
    out = Path(out_path)
    if not out.parent.is_dir():
        raise InputInvalid(f"cannot write {out}: the directory {out.parent} does not exist")
    write_atomic(out, chunks)


def _blocks(path, profile: unixfs.Profile, follow_symlinks: bool, open_file):
    """The blocks of a file or of a directory tree, read through `open_file` when given."""
    if Path(path).is_dir():
        return directory.build_tree(path, profile, follow_symlinks=follow_symlinks,
                                    open_file=open_file or open_regular)
    return _file_blocks(Path(path), profile, open_file or open_regular)


def _file_blocks(path: Path, profile: unixfs.Profile, open_file):
    with open_file(path) as f:
        yield from unixfs.build(f, profile)


class EmbeddedIpfs:
    """IPFS without a daemon: UnixFS files in the local blockstore, with Kubo's CIDs."""

    def __init__(self, home: HomeLike, profile: unixfs.Profile = unixfs.V1_2025):
        self.store = Blockstore(home)
        self.profile = profile

    def _put_all(self, blocks, pin: bool) -> str:
        with self.store.writing():  # gc waits until the DAG is pinned
            root = self.store.put_all(blocks).cid
            if pin:  # only now, with every block durable
                self.store.pin(root)
        return str(root)

    def add(self, path, pin=True, *, follow_symlinks=False, open_file=None) -> str:
        """Add a file, or a directory with everything under it (`ipfs add -r --hidden`).

        Each file is read once, through `open_file(path)` when given (a caller that hashes the
        bytes as they pass). Blocks are made durable as one batch before the pin is written.
        """
        return self._put_all(_blocks(path, self.profile, follow_symlinks, open_file), pin)

    def add_bytes(self, data: bytes, pin=True) -> str:
        return self._put_all(unixfs.build(io.BytesIO(data), self.profile), pin)

    def cid_of(self, path, *, follow_symlinks=False, open_file=None) -> str:
        *_, root = _blocks(path, self.profile, follow_symlinks, open_file)
        return str(root.cid)

    def _resolve(self, path: str) -> CID:
        return directory.resolve(str(path), self.store.get)

    def get(self, cid, out_path) -> None:
        """Write a file, or a directory tree, to `out_path`; a directory appears all at once,
        renamed into place only when every block under it has been verified."""
        root = self._resolve(cid)
        if not directory.is_directory(root, self.store.get):
            write_atomically_from(unixfs.read(root, self.store.get), out_path)
            return
        out = Path(out_path)
        if out.exists():
            raise InputInvalid(f"cannot write the directory {cid} to {out}: it already exists")
        if not out.parent.is_dir():
            raise InputInvalid(f"cannot write {out}: the directory {out.parent} does not exist")
        tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(f"{out.name}."), dir=out.parent))
        rel = ""
        try:
            for rel, cid_, is_dir in directory.walk(root, self.store.get):
                if rel.count("/") >= MAX_DIRECTORY_DEPTH:
                    raise DirectoryInvalid(f"directory {cid} nests deeper than {MAX_DIRECTORY_DEPTH} "
                                           f"levels (at {rel[:80]!r}...); it is not written")
                if os.path.lexists(tmp / rel):  # a second entry of one name would overwrite the first
                    raise DirectoryInvalid(f"directory {cid} has two entries at {rel!r}; it is not written")
                if is_dir:
                    (tmp / rel).mkdir()
                else:
                    with open(tmp / rel, "wb") as f:
                        for chunk in unixfs.read(cid_, self.store.get):
                            f.write(chunk)
            os.rename(tmp, out)
        except (OSError, ValueError, RecursionError) as e:  # a name the file system cannot hold
            shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(e, OSError) and e.errno in FULL_DISK:
                raise DiskFull(f"no space left on the device writing {out} from {cid}; nothing was kept",
                               path=str(out)) from None
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e) or type(e).__name__
            raise DirectoryInvalid(f"directory {cid} has an entry that cannot be written here, at "
                                   f"{rel[:200]!r} ({reason}); nothing was kept") from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def cat(self, cid) -> bytes:
        return b"".join(unixfs.read(self._resolve(cid), self.store.get))

    def ls(self, cid) -> list[directory.Entry]:
        return directory.ls(self._resolve(cid), self.store.get)

    def pin(self, cid) -> None:
        self.store.pin(unixfs.parse_cid(cid))

    def unpin(self, cid) -> None:
        self.store.unpin(unixfs.parse_cid(cid))

    def release(self, cid) -> None:
        """Undo one `pin` of `cid`: a pin someone else made too stays."""
        self.store.release(unixfs.parse_cid(cid))

    def writing(self):
        """Hold off gc from a DAG's first block to its pin (`Blockstore.writing`)."""
        return self.store.writing()

    def check(self):
        return self.store.check()

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

        The blocks are stored as one batch (see `Blockstore.put_all`): a file that turns out
        bad part-way leaves none of its blocks behind.
        """
        with open_regular(path) as f, self.store.writing():
            roots, blocks = read_car(f)
            if not roots:
                raise CarInvalid(f"CAR file {path} names no root")
            self.store.put_all(Block(bytes(cid), data) for cid, data in blocks)
            return self._check_roots(path, roots, pin)

    def _check_roots(self, path, roots, pin: bool) -> list[str]:
        for root in roots:
            try:
                self.store.check_complete(root)
            except BlockNotFound as e:
                raise CarInvalid(f"CAR file {path} is missing blocks of root {root}: {e}") from None
            if pin:
                self.store.pin(root)
        return [str(r) for r in roots]

