"""The devnet's one file on disk: py-evm's key-value database, the log index and settings, in SQLite.

py-evm writes a block as many small batches (trie nodes, then header, body, receipts and
the canonical-head pointer). This store buffers every write in memory and `commit()` flushes
the buffer in ONE SQLite transaction, called once per state change after the block is mined.
A SIGKILL therefore leaves either the whole block (state, receipts, log index, clock) or none
of it, never a head pointer without its state. WAL mode keeps the commit to one fsync.
"""

import sqlite3
import threading
from pathlib import Path

from eth.db.backends.base import BaseDB

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS logs (
    block_number INTEGER NOT NULL, log_index INTEGER NOT NULL, block_timestamp INTEGER NOT NULL,
    block_hash BLOB NOT NULL, tx_hash BLOB NOT NULL, tx_index INTEGER NOT NULL,
    address BLOB NOT NULL, topic0 BLOB, topic1 BLOB, topic2 BLOB, topic3 BLOB,
    topics BLOB NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (block_number, log_index)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS logs_by_address ON logs (address, block_number);
CREATE INDEX IF NOT EXISTS logs_by_topic0 ON logs (topic0, block_number);
"""

_DELETED = object()


class Store(BaseDB):
    """A py-evm database over SQLite whose writes become durable only at `commit()`."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._pending: dict[bytes, object] = {}
        self._meta: dict[str, str] = {}
        self._log_rows: list[tuple] = []
        self._log_cut: int | None = None
        # The chain lock serializes callers; this one only guards the connection itself.
        self._lock = threading.Lock()

    # --- py-evm's DatabaseAPI -------------------------------------------------------------
    def __getitem__(self, key: bytes) -> bytes:
        value = self._pending.get(key)
        if value is _DELETED:
            raise KeyError(key)
        if value is not None:
            return value
        with self._lock:
            row = self._db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise KeyError(key)
        return row[0]

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self._pending[bytes(key)] = bytes(value)

    def __delitem__(self, key: bytes) -> None:
        self[key]  # py-evm expects KeyError for a missing key
        self._pending[bytes(key)] = _DELETED

    def _exists(self, key: bytes) -> bool:
        try:
            self[key]
        except KeyError:
            return False
        return True

    # --- settings and the log index, written with the same commit ---------------------------
    def get_meta(self, name: str, default: str | None = None) -> str | None:
        if name in self._meta:
            return self._meta[name]
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return default if row is None else row[0]

    def set_meta(self, name: str, value: str) -> None:
        self._meta[name] = value

    def add_logs(self, rows: list[tuple]) -> None:
        """Queue log rows (block_number, log_index, block_timestamp, block_hash, tx_hash,
        tx_index, address, topic0..topic3, topics, data) for the next commit."""
        self._log_rows.extend(rows)

    def drop_logs_after(self, block_number: int) -> None:
        """Forget indexed logs above a block (a revert), at the next commit."""
        self._log_cut = block_number if self._log_cut is None else min(self._log_cut, block_number)
        self._log_rows = [r for r in self._log_rows if r[0] <= block_number]

    def query_logs(self, where: str, args: list) -> list[tuple]:
        sql = ("SELECT block_number, log_index, block_timestamp, block_hash, tx_hash, tx_index, address, topics, data"
               f" FROM logs WHERE {where} ORDER BY block_number, log_index")
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def commit(self) -> None:
        """Make every buffered write durable in one SQLite transaction."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                deleted = [(k,) for k, v in self._pending.items() if v is _DELETED]
                written = [(k, v) for k, v in self._pending.items() if v is not _DELETED]
                self._db.executemany("DELETE FROM kv WHERE key = ?", deleted)
                self._db.executemany("INSERT OR REPLACE INTO kv VALUES (?, ?)", written)
                self._db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                                     list(self._meta.items()))
                if self._log_cut is not None:
                    self._db.execute("DELETE FROM logs WHERE block_number > ?", (self._log_cut,))
                self._db.executemany(
                    "INSERT OR REPLACE INTO logs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    self._log_rows)
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:  # SQLite already rolled back a write that found the disk full
                    self._db.execute("ROLLBACK")
                raise
        self.discard()

    def discard(self) -> None:
        """Drop every buffered write: a state change failed halfway and must leave no trace."""
        self._pending.clear()
        self._meta.clear()
        self._log_rows.clear()
        self._log_cut = None

    def close(self) -> None:
        with self._lock:
            self._db.close()
