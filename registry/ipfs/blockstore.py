"""The embedded IPFS blockstore: content-addressed blocks on disk, a pin set, garbage collection.

Durability, and what a crash leaves: a file under a CID's name always holds that block's
complete bytes, made durable before it got the name; a pin names only DAGs whose every block
is durable. A crash can leave unnamed temp files (the next start and gc remove them; they are
never counted as blocks) and unpinned blocks (gc removes those), never a pin that names a
missing or torn block.

Many processes share one store. Pins are rows in SQLite (pins.py), so no pin is lost to another
process's write. Writers (an add from its first block to its pin) hold a shared lock, gc an
exclusive one, so gc never sees the blocks of a DAG that is about to be pinned as garbage.
"""

import contextlib
import fcntl
import hashlib
import os
import queue
import shutil
import tempfile
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from multiformats import CID

from modelreg._atomic import FULL_DISK, TMP_PREFIX, temp_prefix, write_atomic, writer_gone
from modelreg.errors import BlockCorrupted, BlockNotFound, DiskFull
from modelreg.home import Home, HomeLike
from modelreg.ipfs import dagpb, unixfs
from modelreg.ipfs.pins import PinSet
from modelreg.ipfs.unixfs import Block


class Blockstore:
    """Blocks under <home.ipfs>/blocks/<shard>/<cid>, pins in <home.ipfs>/pins.sqlite.

    Every read checks the block's hash against its CID, so a corrupted block is named and
    never returned.
    """

    def __init__(self, home: HomeLike):
        home = Home.of(home)
        self.root, self.scratch = home.ipfs, home.scratch
        self.blocks_dir = self.root / "blocks"
        with naming_full_disk(self.blocks_dir, "creating the blockstore"):
            self.blocks_dir.mkdir(parents=True, exist_ok=True)
        self.pin_set = PinSet(self.root)
        self._held = threading.local()
        self.remove_leftover_temp_files()

    def remove_leftover_temp_files(self) -> int:
        """Delete the temp files and directories of writers that are gone (killed mid-write): in the
        shards, beside the pins, and at the top of the data directory (a killed `verify CID`'s copy).
        Their count. A live writer's files, another process's add in flight, are left."""
        removed = 0
        for path in [*self.scratch.glob(f"{TMP_PREFIX}*"), *self.root.glob(f"{TMP_PREFIX}*"),
                     *self.blocks_dir.glob(f"*/{TMP_PREFIX}*")]:
            if writer_gone(path.name):
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)  # missing: another process swept it first
                removed += 1
        return removed

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Held by a writer from its first block to its pin, shared with other writers and
        excluding gc. Re-entrant within a thread (an add that pins holds it once)."""
        if getattr(self._held, "depth", 0):
            self._held.depth += 1
            try:
                yield
            finally:
                self._held.depth -= 1
            return
        with self._lock_files() as (intent, lock):
            # The intent lock queues a waiting gc ahead of new writers, so writers that keep
            # overlapping cannot starve it.
            fcntl.flock(intent, fcntl.LOCK_SH)
            fcntl.flock(lock, fcntl.LOCK_SH)
            fcntl.flock(intent, fcntl.LOCK_UN)
            self._held.depth = 1
            try:
                yield
            finally:
                self._held.depth = 0

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Held by gc: no writer is between its first block and its pin meanwhile."""
        with self._lock_files() as (intent, lock):
            fcntl.flock(intent, fcntl.LOCK_EX)
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    @contextlib.contextmanager
    def _lock_files(self):
        # flock: released when the file closes or the process dies, so a killed writer never
        # leaves the store locked.
        with open(self.root / "gc.intent", "a") as intent, open(self.root / "gc.lock", "a") as lock:
            yield intent, lock

    def _path(self, cid: CID | bytes) -> Path:
        name = unixfs.cid_text(cid if isinstance(cid, bytes) else bytes(cid))
        # CIDs share their leading characters (bafkrei..., Qm...); the next-to-last two vary,
        # as in Kubo's flatfs "next-to-last/2" sharding.
        return self.blocks_dir / name[-3:-1] / name

    def has(self, cid: CID) -> bool:
        return self._path(cid).is_file()

    def put(self, cid: CID, data: bytes) -> None:
        """Store a block under its CID; a block already present is left as it is."""
        path = self._path(cid)
        if path.is_file():
            return
        with naming_full_disk(path, "storing a block"):
            path.parent.mkdir(exist_ok=True)
            write_atomic(path, data)

    def put_all(self, blocks: Iterable[Block]) -> Block | None:
        """Store a DAG's blocks, children first, as one batch; return the last (the root), or
        None when there were none.

        Each new block is written to a temp file without waiting for the disk, by a second
        thread, so the writes overlap the reading and hashing that produce the blocks; once all
        are written, each is fsynced, renamed to its CID, and the directories holding the new
        names are fsynced once each. So the disk is waited on once per batch, not once per
        block, and every name still only ever points at durable bytes. If the blocks raise
        part-way (an unreadable input file), the temp files are removed and nothing is named.
        """
        writer = _StagingWriter()
        last = None
        try:
            with writer:
                for block in blocks:
                    last = block
                    path = self._path(block.cid_bytes)
                    if not path.is_file():
                        writer.stage(path, block.data)
            _fsync_all(writer.staged.values())
            for path, tmp in writer.staged.items():
                os.replace(tmp, path)
        except BaseException as e:
            for tmp in writer.staged.values():
                if tmp:  # empty: claimed, never written
                    Path(tmp).unlink(missing_ok=True)
            if isinstance(e, OSError) and e.errno in FULL_DISK:
                where = e.filename or self.blocks_dir
                raise DiskFull(f"no space left on the device writing {where} while storing blocks "
                               f"(none of this batch was kept)", path=str(where)) from None
            raise
        # The new names, and the shard directories made for them.
        _fsync_all({p.parent for p in writer.staged} | ({self.blocks_dir} if writer.staged else set()))
        return last

    def get(self, cid: CID) -> bytes:
        """The block's bytes, verified; BlockNotFound or BlockCorrupted naming the CID."""
        try:
            data = self._path(cid).read_bytes()
        except FileNotFoundError:
            raise BlockNotFound(f"block {cid} is not in the store at {self.blocks_dir}; "
                                "add or import the file first") from None
        if not unixfs.block_matches(cid, data):
            raise BlockCorrupted(f"block {cid} is corrupted: its bytes do not hash to its CID "
                                 f"({self._path(cid)})")
        return data

    def cids(self) -> Iterator[CID]:
        for shard in sorted(self.blocks_dir.iterdir()):
            for path in sorted(shard.iterdir()):
                if not path.name.startswith(TMP_PREFIX):
                    yield unixfs.parse_cid(path.name)

    # --- pins ------------------------------------------------------------------
    def pins(self) -> list[str]:
        return self.pin_set.all()

    def pin(self, cid: CID) -> None:
        """Pin a DAG recursively; every block of it must be present (BlockNotFound otherwise)."""
        with self.writing():
            self.check_complete(cid)
            self.pin_set.add(str(cid))

    def release(self, cid: CID) -> None:
        """Take back one pin of `cid` (see PinSet.release): what a failed commit pinned alone goes."""
        self.pin_set.release(str(cid))

    def check_complete(self, cid: CID) -> None:
        """BlockNotFound unless every block of the DAG under `cid` is present.

        Nodes are read (and verified) for their links; raw leaves, which link nowhere and are
        nearly all of a file's bytes, are only checked to be there, so checking a fresh 1 GiB
        DAG reads kilobytes, not a gigabyte. `get` and `gc` verify every block they read.
        """
        seen, stack = set(), [bytes(cid)]
        while stack:  # on binary CIDs: a CID object costs more than a block's stat
            raw = stack.pop()
            if raw in seen:
                continue
            seen.add(raw)
            if raw[:2] == unixfs.RAW_V1_PREFIX:
                if not self._path(raw).is_file():
                    self.get(unixfs.cid_from_bytes(raw))  # raises BlockNotFound naming it
                continue
            node = unixfs.cid_from_bytes(raw)
            stack.extend(unixfs.link_bytes_of(node, self.get(node)))

    def unpin(self, cid: CID) -> None:
        self.pin_set.remove(str(cid))

    def walk(self, root: CID) -> Iterator[tuple[CID, bytes]]:
        """Every block of the DAG under `root`, verified, depth-first, each once."""
        seen, stack = set(), [root]
        while stack:
            cid = stack.pop()
            if cid in seen:
                continue
            seen.add(cid)
            data = self.get(cid)
            yield cid, data
            stack.extend(reversed(unixfs.links_of(cid, data)))

    def gc(self) -> int:
        """Remove every block no pin reaches, and temp files killed writers left; the count of blocks.

        Runs under the exclusive lock, so the blocks of an add or a commit in flight are never
        taken for garbage. A pinned DAG that is corrupted stops the collection (BlockCorrupted)
        rather than losing the blocks below the bad one.
        """
        with self._exclusive():
            keep = self._reachable()
            self.remove_leftover_temp_files()
            doomed = [path for shard in self.blocks_dir.iterdir() for path in shard.iterdir()
                      if path.name not in keep and not path.name.startswith(TMP_PREFIX)]
            with ThreadPoolExecutor(max_workers=16) as pool:  # unlinks wait on the disk: overlap them
                list(pool.map(Path.unlink, doomed))
            return len(doomed)

    def _reachable(self) -> set[str]:
        """The file names of every block the pins reach, each read and verified once.

        On binary CIDs and names, not CID objects: parsing 10,000 CIDs cost gc seconds."""
        names, stack = set(), [bytes(unixfs.parse_cid(pin)) for pin in self.pins()]
        while stack:
            raw = stack.pop()
            name = unixfs.cid_text(raw)
            if name in names:
                continue
            names.add(name)
            data = self._verified(raw, name)
            if raw[:2] != unixfs.RAW_V1_PREFIX:
                stack.extend(link.hash for link in dagpb.decode_node(data, name).links)
        return names

    def _verified(self, raw: bytes, name: str) -> bytes:
        """A block's bytes by binary CID, checked: sha2-256 directly, other hashes through `get`."""
        if not (raw[:4] in _SHA256_V1 or (raw[:2] == b"\x12\x20" and len(raw) == 34)):
            return self.get(unixfs.cid_from_bytes(raw))
        path = self.blocks_dir / name[-3:-1] / name
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise BlockNotFound(f"block {name} is not in the store at {self.blocks_dir}; "
                                "add or import the file first") from None
        if hashlib.sha256(data).digest() != raw[-32:]:
            raise BlockCorrupted(f"block {name} is corrupted: its bytes do not hash to its CID ({path})")
        return data

    def check(self) -> "StoreCheck":
        """Re-hash every block against its CID, and check every pinned DAG is complete."""
        report = StoreCheck()
        for cid in self.cids():
            report.blocks += 1
            try:
                self.get(cid)
            except (BlockCorrupted, BlockNotFound) as e:  # not found: gc removed it meanwhile
                report.problems.append(str(e))
        for pin in self.pins():
            report.pins += 1
            try:
                self.check_complete(unixfs.parse_cid(pin))
            except BlockNotFound as e:
                report.problems.append(f"pin {pin} is incomplete: {e}")
            except BlockCorrupted as e:
                report.problems.append(f"pin {pin} reaches a corrupted block: {e}")
        return report


_SHA256_V1 = (b"\x01\x55\x12\x20", b"\x01\x70\x12\x20")  # CIDv1 raw and dag-pb over sha2-256


@dataclass
class StoreCheck:
    """What `Blockstore.check` found: counts, and one line per problem."""

    blocks: int = 0
    pins: int = 0
    problems: list[str] = field(default_factory=list)


@contextlib.contextmanager
def naming_full_disk(path, operation: str) -> Iterator[None]:
    """Turn "no space left" while `operation` writes `path` into a DiskFull naming both."""
    try:
        yield
    except OSError as e:
        if e.errno not in FULL_DISK:
            raise
        where = e.filename or path
        raise DiskFull(f"no space left on the device writing {where} while {operation}",
                       path=str(where)) from None


class _StagingWriter:
    """Writes blocks to temp files beside their final names on its own thread, a bounded
    queue ahead of the caller; `staged` maps each final path to its temp file."""

    def __init__(self):
        self.staged: dict[Path, str] = {}
        self._queue: queue.Queue = queue.Queue(maxsize=16)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def stage(self, path: Path, data: bytes) -> None:
        if self._error is not None:
            raise self._error
        if path not in self.staged:
            self.staged[path] = ""  # claimed now, so a repeated block is written once
            self._queue.put((path, data))

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is not None:
                continue
            path, data = item
            try:
                path.parent.mkdir(exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=temp_prefix(), dir=path.parent)
                self.staged[path] = tmp
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
            except BaseException as e:  # raised in the caller's thread
                if isinstance(e, OSError) and e.filename is None:
                    e.filename = str(path.parent)  # a failed write names no file: name where
                self._error = e

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None and exc[0] is None:
            raise self._error


def _fsync(path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_all(paths) -> None:
    """fsync files or directories, many at once: the file system commits concurrent fsyncs
    together (ext4's journal does), so 1,000 of them cost a few waits rather than 1,000."""
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(_fsync, paths))
