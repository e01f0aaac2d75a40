"""The embedded IPFS blockstore: content-addressed blocks on disk, a pin set, garbage collection.

Durability, and what a crash leaves: a file under a CID's name always holds that block's
complete bytes, made durable before it got the name; a pin names only DAGs whose every block
is durable. A crash can leave unnamed temp files (the next start and gc remove them; they are
never counted as blocks) and unpinned blocks (gc removes those), never a pin that names a
missing or torn block.
"""

import json
import os
import queue
import tempfile
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from multiformats import CID

from modelreg._atomic import TMP_PREFIX, temp_prefix, write_atomic, writer_gone
from modelreg.errors import BlockCorrupted, BlockNotFound
from modelreg.ipfs import unixfs
from modelreg.ipfs.unixfs import Block


class Blockstore:
    """Blocks under <home>/ipfs/blocks/<shard>/<cid>, pins in <home>/ipfs/pins.json.

    Every read checks the block's hash against its CID, so a corrupted block is named and
    never returned.
    """

    def __init__(self, home: Path):
        self.root = Path(home) / "ipfs"
        self.blocks_dir = self.root / "blocks"
        self.pins_path = self.root / "pins.json"
        self.blocks_dir.mkdir(parents=True, exist_ok=True)
        self.remove_leftover_temp_files()

    def remove_leftover_temp_files(self) -> int:
        """Delete the temp files of writers that are gone (killed mid-write), in the shards and beside
        pins.json; their count. A live writer's files, another process's add in flight, are left."""
        removed = 0
        for path in [*self.root.glob(f"{TMP_PREFIX}*"), *self.blocks_dir.glob(f"*/{TMP_PREFIX}*")]:
            if writer_gone(path.name):
                path.unlink(missing_ok=True)  # missing: another process swept it first
                removed += 1
        return removed

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
        except BaseException:
            for tmp in writer.staged.values():
                if tmp:  # empty: claimed, never written
                    Path(tmp).unlink(missing_ok=True)
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
        if not self.pins_path.is_file():
            return []
        return json.loads(self.pins_path.read_text())["recursive"]

    def _save_pins(self, pins: list[str]) -> None:
        body = json.dumps({"recursive": sorted(set(pins))}, indent=1) + "\n"
        write_atomic(self.pins_path, body.encode())

    def pin(self, cid: CID) -> None:
        """Pin a DAG recursively; every block of it must be present (BlockNotFound otherwise)."""
        self.check_complete(cid)
        self._save_pins([*self.pins(), str(cid)])

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
        pins = self.pins()
        if str(cid) not in pins:
            raise BlockNotFound(f"{cid} is not pinned")
        self._save_pins([p for p in pins if p != str(cid)])

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

        A pinned DAG that is corrupted stops the collection (BlockCorrupted) rather than
        losing the blocks below the bad one.
        """
        keep = set()
        for pin in self.pins():
            keep.update(cid for cid, _ in self.walk(unixfs.parse_cid(pin)))
        self.remove_leftover_temp_files()
        removed = 0
        for shard in self.blocks_dir.iterdir():
            for path in shard.iterdir():
                if not path.name.startswith(TMP_PREFIX) and unixfs.parse_cid(path.name) not in keep:
                    path.unlink()
                    removed += 1
        return removed


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
