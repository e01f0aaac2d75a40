"""Opening a user's file for reading: only a regular file, so a FIFO or a device never blocks a command."""

import os
import stat
from pathlib import Path
from typing import BinaryIO

from modelreg.errors import InputInvalid

_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a character device",
          stat.S_IFBLK: "a block device", stat.S_IFDIR: "a directory"}


def _kind(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def open_regular(path: str | os.PathLike, what: str = "file", error: type[InputInvalid] = InputInvalid) -> BinaryIO:
    """`path` opened for binary reading, or `error` naming it when it is missing, unreadable or special.

    The type is checked before opening (opening a FIFO blocks until a writer comes; opening a device
    can act on it), then again on the open descriptor, which O_NONBLOCK keeps from blocking, so a
    file swapped in between is caught too.
    """
    name = str(Path(path))
    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            raise error(f"{what} {name!r} is {_kind(mode)}, not a regular file")
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise error(f"{what} {name!r} does not exist") from None
    except PermissionError:
        raise error(f"{what} {name!r} is not readable (permission denied)") from None
    except OSError as e:
        raise error(f"{what} {name!r} cannot be read: {e.strerror}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise error(f"{what} {name!r} is {_kind(mode)}, not a regular file")
    os.set_blocking(fd, True)
    f = os.fdopen(fd, "rb")
    f.raw.name = os.fspath(path)  # as open() names it; clients that upload a file send its name
    return f


def read_small(path: str | os.PathLike, limit: int, what: str = "file", error: type = InputInvalid) -> bytes:
    """The bytes of a small regular file (a config, a keystore), `error` if it is special or over
    `limit` bytes: `keystore = "/dev/zero"` must not read until memory runs out."""
    with open_regular(path, what, error) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise error(f"{what} {str(Path(path))!r} is over {limit} bytes; no {what} is that large")
    return data
