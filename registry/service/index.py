"""The event index: a registry's contract log, cached in SQLite and updated a block range at a time.

A registry may hold a million events, so the cache is a database rather than one JSON file: an
update appends only the new blocks' logs, and a read of one model selects that model's rows
through an index instead of scanning the log. Each fetched range stores the hash of its last
block, read *before* its logs, so a reorg at any moment (even between fetching logs and reading
the head) shows as a changed hash; the index then rolls back to the newest block whose hash the
chain still has and fetches again. The index is a cache: `rebuild()` or deleting the file is safe.

The stdlib `sqlite3` is the store (no server, one file, atomic transactions shared safely by
several modelreg processes); the schema is small enough to write out here.
"""

import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from modelreg._hex import to_hex
from modelreg.errors import ChainUnavailable, IndexUnavailable
from modelreg.home import Home, HomeLike

INDEX_FORMAT = "modelreg-event-index-v2"  # v1 was one JSON file, <chain id>-<address>.json, now ignored
LOG_RANGE = 10_000  # blocks per eth_getLogs request: public nodes cap the range
LOCK_TIMEOUT = 60.0  # seconds to wait for another process's update of the same index
REORG_RETRIES = 3  # a chain that reorganises during this many reads in a row is refused, not indexed

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- the hash of `block` as the chain had it just before the logs up to `block` were fetched
CREATE TABLE IF NOT EXISTS checkpoints (block INTEGER PRIMARY KEY, hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    block INTEGER NOT NULL, log_index INTEGER NOT NULL, tx BLOB NOT NULL, kind TEXT NOT NULL,
    model_id INTEGER, parent_model INTEGER, parent_version INTEGER, weights_root BLOB,
    args TEXT NOT NULL,
    PRIMARY KEY (block, log_index)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_model ON events (model_id) WHERE model_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_kind ON events (kind, model_id);
CREATE INDEX IF NOT EXISTS events_parent ON events (parent_model, parent_version) WHERE parent_model IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_root ON events (weights_root) WHERE weights_root IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_name ON events (json_extract(args, '$.name')) WHERE kind = 'ModelRegistered';
"""


def normalize(event) -> dict:
    """One decoded log (web3's EventData) as plain JSON, bytes as 0x-hex."""
    args = {k: (to_hex(v) if isinstance(v, (bytes, bytearray)) else v) for k, v in event["args"].items()}
    return {"event": event["event"], "args": args, "block": int(event["blockNumber"]),
            "tx": to_hex(event["transactionHash"]), "log_index": int(event["logIndex"])}


class EventIndex:
    """The contract's event log, cached in the data directory's `Home.index(chain_id, address)`.

    `head()` and `block_hash(n)` say what the chain holds now; `fetch(first, last)` decodes the
    contract's logs in a block range. Only new blocks are fetched, so a read against an
    unchanged chain costs two quick RPC calls.
    """

    def __init__(self, home: HomeLike, *, chain_id: int, address: str, from_block: int,
                 head: Callable[[], int], block_hash: Callable[[int], str],
                 fetch: Callable[[int, int], list]):
        self.path = Home.of(home).index(chain_id, address)
        self.from_block, self.head, self.block_hash, self.fetch = from_block, head, block_hash, fetch
        self.last_block: int | None = None  # the block `events()` read up to
        self._db: sqlite3.Connection | None = None

    @classmethod
    def of(cls, home: HomeLike, client) -> "EventIndex":
        """The index of a `RegistryClient`'s contract, read through the client."""
        return cls(home, chain_id=client.chain_id, address=client.address, from_block=client.from_block,
                   head=client.head, block_hash=client.block_hash,
                   fetch=lambda first, last: client.events(from_block=first, to_block=last))

    def events(self) -> "Events":
        """Every event up to the latest block, fetching only what the index lacks."""
        with _unavailable(self.path):
            self.update()
            return Events(self._connection())

    def rebuild(self) -> "Events":
        """Forget everything indexed and read the log again from the deployment block."""
        self.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        return self.events()

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def update(self) -> int:
        """Bring the index up to the chain's latest block; returns how many events it added.

        Each range is committed with its checkpoint in one transaction, and only onto the
        checkpoint it was fetched after: a build that is interrupted resumes where it stopped, and
        two processes updating one index at once never interleave their ranges.
        """
        latest = self.head()
        db = self._connection()
        added, reorgs = 0, 0
        while True:
            # The tip's hash first: a reorg at any later moment, even between reading the logs and
            # checking, changes it, and the pass is redone from the fork.
            seen = {latest: self.block_hash(latest)}
            with _writing(db):
                start = self._verified_start(db, latest, seen)
            if start > latest:
                break
            for first in range(start, latest + 1, LOG_RANGE):
                last = min(first + LOG_RANGE - 1, latest)
                checkpoint = seen.get(last) or self.block_hash(last)
                events = [normalize(e) for e in self.fetch(first, last)]
                with _writing(db):
                    if _tip(db, self.from_block) != first - 1:
                        break  # another process moved the index meanwhile: verify it again
                    added += self._insert(db, events)
                    db.execute("INSERT INTO checkpoints VALUES (?, ?)", (last, checkpoint))
            else:
                if self.block_hash(latest) == seen[latest]:
                    break
                reorgs += 1
                if reorgs == REORG_RETRIES:
                    raise ChainUnavailable(f"the chain reorganised during each of {REORG_RETRIES} reads of "
                                           f"its logs up to block {latest}; try again once it settles")
        self.last_block = latest
        return added

    def _verified_start(self, db: sqlite3.Connection, latest: int, seen: dict[int, str]) -> int:
        """The first block to fetch: after the newest checkpoint the chain still has, once every
        event past it is dropped. `seen` holds hashes already read in this pass."""
        blocks = [b for (b,) in db.execute("SELECT block FROM checkpoints ORDER BY block DESC")]
        still_there = lambda i: self._still_there(db, blocks[i], latest, seen)  # noqa: E731
        if blocks and still_there(0):
            return blocks[0] + 1
        ancestor = _newest(still_there, len(blocks)) if blocks else None
        keep = -1 if ancestor is None else blocks[ancestor]
        db.execute("DELETE FROM events WHERE block > ?", (keep,))
        db.execute("DELETE FROM checkpoints WHERE block > ?", (keep,))
        return self.from_block if ancestor is None else keep + 1

    def _still_there(self, db, block: int, latest: int, seen: dict[int, str]) -> bool:
        """Whether the chain still has checkpoint `block` as it was stored."""
        if block > latest:
            return False
        if block not in seen:
            seen[block] = self.block_hash(block)
        return db.execute("SELECT hash FROM checkpoints WHERE block = ?", (block,)).fetchone()[0] == seen[block]

    @staticmethod
    def _insert(db: sqlite3.Connection, events: Iterable[dict]) -> int:
        cursor = db.executemany("INSERT OR REPLACE INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                (_row(e) for e in events))
        return max(cursor.rowcount, 0)

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = _open(self.path, self.from_block)
        return self._db


def _open(path: Path, from_block: int) -> sqlite3.Connection:
    """The index database at `path`, created if missing; one that is not a modelreg index of this
    deployment (an older format, a damaged file, another deployment block) is started afresh."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.with_suffix(".json").unlink(missing_ok=True)  # the v1 JSON index of the same registry
    except OSError as e:
        raise IndexUnavailable(f"the event index {path} cannot be used: {e.strerror or e}", path=str(path)) from None
    for attempt in (1, 2):
        db = sqlite3.connect(path, timeout=LOCK_TIMEOUT, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")  # readers never wait for a writer
            db.execute("PRAGMA synchronous=NORMAL")  # a crash may lose the last update, never corrupt: it is a cache
            db.execute(f"PRAGMA journal_size_limit={8 << 20}")  # the WAL shrinks back after a big build
            db.executescript(_SCHEMA)
            meta = dict(db.execute("SELECT key, value FROM meta"))
            wanted = {"format": INDEX_FORMAT, "from_block": str(from_block)}
            if meta == wanted:
                return db
            with _writing(db):
                db.execute("DELETE FROM events")
                db.execute("DELETE FROM checkpoints")
                db.execute("DELETE FROM meta")
                db.executemany("INSERT INTO meta VALUES (?, ?)", wanted.items())
            return db
        except sqlite3.DatabaseError as e:
            db.close()
            if attempt == 2 or isinstance(e, sqlite3.OperationalError):  # locked, read-only, disk full: not damage
                raise
            for suffix in ("", "-wal", "-shm"):  # not a database: a cache, so start it again
                Path(f"{path}{suffix}").unlink(missing_ok=True)
    raise AssertionError("unreachable")


@contextmanager
def _unavailable(path: Path):
    """SQLite's errors (locked past LOCK_TIMEOUT, disk full, read-only) as IndexUnavailable naming the file."""
    try:
        yield
    except sqlite3.Error as e:  # not OSError: a fetch's network error is the chain's, and says so itself
        raise IndexUnavailable(f"the event index {path} cannot be used: {e}", path=str(path)) from None


class _writing:
    """One write transaction, taken before reading what it changes, so two processes updating the
    same index take turns instead of both appending the same blocks."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind, *_):
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")


def _newest(still_there: Callable[[int], bool], count: int) -> int | None:
    """The first i in 1..count-1 with still_there(i) (checkpoints newest first; the 0th is gone, and
    once one is there every older one is), or None: galloping back, then bisecting, so a deep reorg
    costs a few RPC calls."""
    gone, step = 0, 1
    while True:
        probe = min(gone + step, count - 1)
        if probe == gone:
            return None  # the chain has none of them: a different chain, or a reorg past them all
        if still_there(probe):
            break
        gone, step = probe, step * 2
    kept = probe
    while kept - gone > 1:
        mid = (gone + kept) // 2
        gone, kept = (gone, mid) if still_there(mid) else (mid, kept)
    return kept


def _tip(db: sqlite3.Connection, from_block: int) -> int:
    """The last block indexed (the one before the deployment block when none is)."""
    (tip,) = db.execute("SELECT max(block) FROM checkpoints").fetchone()
    return from_block - 1 if tip is None else tip


def _row(e: dict) -> tuple:
    a = e["args"]
    committed = e["event"] == "VersionCommitted"
    parent = a["parentModel"] if committed and a["parentModel"] else None
    return (e["block"], e["log_index"], bytes.fromhex(e["tx"][2:]), e["event"], a.get("modelId"),
            parent, a["parentVersion"] if parent else None,
            bytes.fromhex(a["weightsRoot"][2:]) if committed else None,
            json.dumps(a, separators=(",", ":")))


def _event(row) -> dict:
    block, log_index, tx, kind, args = row
    return {"event": kind, "args": json.loads(args), "block": block, "tx": "0x" + tx.hex(), "log_index": log_index}


class Events(Sequence):
    """Indexed events in chain order, read lazily: the whole log, or the part that some filters select.

    It reads as a list of normalized events (`normalize`), and the audit functions narrow it
    with `of_models`, `of_kinds`, `named` and `children_of`, so a read of one model touches only
    that model's rows.
    """

    _COLUMNS = "block, log_index, tx, kind, args"

    def __init__(self, db: sqlite3.Connection, where: tuple[str, ...] = (), params: tuple = ()):
        self.db, self.where, self.params = db, where, params
        self._cached: list[dict] | None = None

    def _narrowed(self, clause: str, *params) -> "Events":
        return Events(self.db, self.where + (clause,), self.params + params)

    def _sql(self, select: str) -> str:
        return f"SELECT {select} FROM events" + (" WHERE " + " AND ".join(self.where) if self.where else "")

    def of_models(self, model_ids: Iterable[int]) -> "Events":
        ids = sorted({int(i) for i in model_ids})
        return self._narrowed(f"model_id IN ({','.join('?' * len(ids))})", *ids)

    def of_kinds(self, kinds: Iterable[str]) -> "Events":
        kinds = sorted(set(kinds))
        return self._narrowed(f"kind IN ({','.join('?' * len(kinds))})", *kinds)

    def named(self, name_or_id: str) -> "Events":
        """The events of the models named `name_or_id`, or with that id."""
        ids = {m for (m,) in self.db.execute(
            "SELECT model_id FROM events WHERE kind = 'ModelRegistered' AND json_extract(args, '$.name') = ?",
            (str(name_or_id),))}
        if str(name_or_id).isdigit():
            ids.add(int(name_or_id))
        return self.of_models(ids)

    def with_root(self, weights_root: str) -> "Events":
        """The commits of exactly these weights, in any model."""
        return self._narrowed("weights_root = ?", bytes.fromhex(weights_root.removeprefix("0x")))

    def children_of(self, model_id: int, version: int) -> list[tuple[int, int]]:
        """(model, version) of every commit that names `model_id` v`version` as its parent."""
        return [(m, json.loads(a)["version"]) for m, a in self.db.execute(
            "SELECT model_id, args FROM events WHERE parent_model = ? AND parent_version = ?", (model_id, version))]

    def counts(self, kinds: Iterable[str]) -> Iterator[tuple[int, str, int]]:
        """(model id, kind, number of events) for the given kinds."""
        narrowed = self.of_kinds(kinds)
        yield from self.db.execute(narrowed._sql("model_id, kind, count(*)") + " GROUP BY model_id, kind",
                                   narrowed.params)

    def __iter__(self) -> Iterator[dict]:
        if self._cached is not None:
            return iter(self._cached)
        rows = self.db.execute(self._sql(self._COLUMNS) + " ORDER BY block, log_index", self.params)
        return (_event(r) for r in rows)

    def __len__(self) -> int:
        if self._cached is not None:
            return len(self._cached)
        return self.db.execute(self._sql("count(*)"), self.params).fetchone()[0]

    def __getitem__(self, i):
        if self._cached is None:
            self._cached = list(self)
        return self._cached[i]
