"""The pin set: which DAGs gc keeps, in SQLite (WAL), so any number of processes pin at once.

Why SQLite and not a JSON file: `pins.json` was read, changed and rewritten whole by each
process, so two pins written at once kept only one of them. SQLite's transactions make every
pin a row written under the database's own lock, and WAL lets readers go on while one writes.

Each pin counts its pinners (`refs`): `pin` adds one, `release` takes one back (a commit whose
transaction failed undoes its own pin and no one else's), `unpin` removes the pin outright.
"""

import os
import sqlite3
import time
from contextlib import closing, suppress
from pathlib import Path

from modelreg._atomic import disk_full
from modelreg._json import loads_outside
from modelreg.errors import BlockNotFound, DiskFull, StoreInvalid

BUSY_TIMEOUT_S = 120  # how long one writer waits for another's transaction before giving up


class PinSet:
    """Pins under <home>/ipfs/pins.sqlite; an old <home>/ipfs/pins.json is migrated on open."""

    def __init__(self, root: Path):
        self.path = Path(root) / "pins.sqlite"
        self.legacy_path = Path(root) / "pins.json"
        self._ready = False  # opened at first use: a command that never pins never writes here

    def _connect(self) -> closing:
        if not self._ready:
            self._ready = True  # before: the setup connects through here too
            try:
                self._set_up()
            except BaseException:
                self._ready = False
                raise
        try:
            db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            db.execute("PRAGMA synchronous=FULL")  # a pin that was reported is on disk
        except sqlite3.Error as e:
            raise self._error(e, "opening it") from None
        return closing(db)

    def _set_up(self) -> None:
        # WAL mode is stored in the file, so it is set once. Switching to it needs the database to
        # itself and fails at once ("locked") rather than waiting, when processes first open a
        # new store together: so retry, as the busy timeout would.
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            with self._connect() as db:
                try:
                    db.execute("PRAGMA journal_mode=WAL")
                    db.execute("CREATE TABLE IF NOT EXISTS pins (cid TEXT PRIMARY KEY, refs INTEGER NOT NULL)")
                    break
                except sqlite3.OperationalError as e:
                    if "locked" not in str(e) or time.monotonic() > deadline:
                        raise self._error(e, "creating it") from None
                except sqlite3.Error as e:
                    raise self._error(e, "creating it") from None
            time.sleep(0.02)
        if self.legacy_path.is_file():
            self._migrate()

    def _error(self, e: sqlite3.Error, operation: str) -> Exception:
        if disk_full(e, self.path):
            return DiskFull(f"no space left on the device writing {self.path} while {operation}; "
                            "no pin was changed", path=str(self.path))
        if isinstance(e, sqlite3.OperationalError):  # locked past the timeout, unreadable, ...
            return StoreInvalid(f"the pin database {self.path} cannot be used while {operation} ({e})")
        return StoreInvalid(f"the pin database {self.path} is damaged ({e}); move it aside and "
                            "re-pin, or restore it from a backup")

    def _transaction(self, *statements: tuple[str, tuple]) -> list[int]:
        """Run `statements` as one IMMEDIATE transaction; the row counts each changed."""
        with self._connect() as db:
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    counts = [db.execute(sql, args).rowcount for sql, args in statements]
                    db.execute("COMMIT")
                except BaseException:
                    if db.in_transaction:  # SQLite rolls back itself when the disk is full
                        db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as e:
                raise self._error(e, "changing the pins") from None
        return counts

    def _migrate(self) -> None:
        """Copy the pins of a pins.json home in, then rename the file aside (`pins.json.migrated`).

        Idempotent: a crash between the copy and the rename copies the same pins again next time."""
        try:
            pins = loads_outside(self.legacy_path.read_bytes(), what=str(self.legacy_path))["recursive"]
        except FileNotFoundError:  # another process migrated it first
            return
        except (KeyError, TypeError) as e:
            raise StoreInvalid(f"{self.legacy_path} is not a pin list ({e}); move it aside") from None
        self._transaction(*[("INSERT OR IGNORE INTO pins VALUES (?, 1)", (str(p),)) for p in pins])
        with suppress(FileNotFoundError):
            os.replace(self.legacy_path, self.legacy_path.with_name("pins.json.migrated"))

    def all(self) -> list[str]:
        with self._connect() as db:
            try:
                return [row[0] for row in db.execute("SELECT cid FROM pins ORDER BY cid")]
            except sqlite3.Error as e:
                raise self._error(e, "reading the pins") from None

    def add(self, cid: str) -> None:
        self._transaction(("INSERT INTO pins VALUES (?, 1) ON CONFLICT(cid) DO UPDATE SET refs = refs + 1",
                           (cid,)))

    def remove(self, cid: str) -> None:
        """Remove the pin whoever made it; BlockNotFound when there is none."""
        (deleted,) = self._transaction(("DELETE FROM pins WHERE cid = ?", (cid,)))
        if not deleted:
            raise BlockNotFound(f"{cid} is not pinned")

    def release(self, cid: str) -> None:
        """Take back one pin of `cid`: it stays pinned while someone else pinned it too."""
        self._transaction(("UPDATE pins SET refs = refs - 1 WHERE cid = ?", (cid,)),
                          ("DELETE FROM pins WHERE cid = ? AND refs <= 0", (cid,)))

    def clear(self) -> None:
        self._transaction(("DELETE FROM pins", ()))

