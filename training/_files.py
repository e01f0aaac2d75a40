"""Atomic file writes: a kill leaves either the old file or the new one, never half of one."""

import os
from pathlib import Path


def write_atomic(path: Path, data: bytes) -> None:
    """Write data to a temporary sibling, fsync it, then rename it over path."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
