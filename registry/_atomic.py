"""Atomic file writes: a crash or a kill leaves either the old file or the new one, never half of one."""

import errno
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterable
from pathlib import Path

from modelreg.errors import DiskFull

TMP_PREFIX = ".tmp-"  # every temp file starts so; a store's cleanup finds leftovers by it


def temp_prefix(name: str = "") -> str:
    """The prefix of a temp file this process writes: TMP_PREFIX, the writer's pid, then `name`, so a
    cleanup can tell a killed writer's leftover from a live writer's file in flight."""
    return f"{TMP_PREFIX}{os.getpid()}.{name}"


def writer_gone(temp_name: str) -> bool:
    """True when the process that wrote temp file `temp_name` no longer runs (or the name holds no pid)."""
    pid = temp_name[len(TMP_PREFIX):].split(".", 1)[0]
    if not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, under another user
        return False
    return False


def write_atomic(path: str | os.PathLike, data: bytes | str | Iterable[bytes]) -> None:
    """Write `data` (bytes, text as UTF-8, or an iterator of byte chunks) to `path` durably.

    The bytes go to a temp file in the same directory, which is fsynced and renamed over
    `path`; the directory is fsynced too, so the rename itself survives a power cut. If the
    chunks raise part-way (a block that fails its hash, say), `path` is left untouched.
    """
    path = Path(path)
    try:
        _write_atomic(path, data)
    except OSError as e:
        if e.errno not in FULL_DISK:
            raise
        raise DiskFull(f"no space left on the device writing {path}; it was left as it was",
                       path=str(path)) from None
    fsync_dir(path.parent)


def _write_atomic(path: Path, data) -> None:
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(f"{path.name}."), dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            if isinstance(data, str):
                data = data.encode("utf-8")
            if isinstance(data, (bytes, bytearray, memoryview)):
                f.write(data)
            else:
                for chunk in data:
                    f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def fsync_dir(directory: str | os.PathLike) -> None:
    """Make a rename or a new file in `directory` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


FULL_DISK = (errno.ENOSPC, errno.EDQUOT)
_NEARLY_FULL = 256 * 1024  # SQLite reports a WAL it cannot grow as "disk I/O error"


def disk_full(error: BaseException, path: str | os.PathLike) -> bool:
    """Whether `error`, raised while writing `path`, means its disk is full: ENOSPC, SQLite's
    "database or disk is full", or another SQLite error on a device with no room left."""
    if isinstance(error, OSError) and error.errno in FULL_DISK:
        return True
    if isinstance(error, sqlite3.Error):
        if "full" in str(error):
            return True
        try:
            return shutil.disk_usage(Path(path).parent).free < _NEARLY_FULL
        except OSError:
            return False
    return False
