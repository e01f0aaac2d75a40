"""Caps on what is fetched from IPFS or read from a stranger's manifest: sizes, counts, depth and time.

Whatever an auditor reads may be a stranger's, so every read of a DAG or a manifest is bounded.
Each cap has a default (a reason beside it), an environment variable that raises it, and an
error, CapExceeded, that names both (the CLI's hint says to raise it if the source is trusted). The caps in force are a context variable, so a caller that
knows what it fetches narrows them without threading a parameter through every backend:

    with limited(max_bytes=current().max_manifest_bytes):   # a manifest, not a model
        data = ipfs.cat(cid)
"""

import contextlib
import os
import time
from contextvars import ContextVar
from dataclasses import dataclass, fields, replace

from modelreg.errors import CapExceeded, ConfigInvalid


@dataclass(frozen=True)
class Caps:
    """The bounds in force. Each field is raised by the environment variable MODELREG_<FIELD>."""

    # A manifest lists leaves as JSON: 64 MiB holds about 400k leaves, far past any real model.
    max_manifest_bytes: int = 64 << 20
    # Leaves of one manifest, entries under one directory: larger trees are sharded by a real user.
    max_entries: int = 200_000
    # Directory nesting fetched from IPFS; real checkpoints and datasets nest a handful of levels.
    max_depth: int = 64
    # Files and directories one directory fetch writes, counted before the first is written: a model
    # directory holds tens (a dataset is fetched file by file); a few shared blocks can name millions.
    max_files: int = 10_000
    # The sum of the sizes a dataset manifest declares: a replay fetches all of it.
    max_dataset_bytes: int = 1 << 40
    # Bytes of one DAG fetched (a file's declared size, a CAR from a node): the largest open models
    # are some hundreds of GiB; an auditor with more raises it.
    max_bytes: int = 1 << 40
    # Seconds one fetch from a node may take in all, whatever the node's pace.
    max_seconds: int = 3600
    # Which setting max_bytes stands for now: `limited(max_bytes=..., named="max_manifest_bytes")`
    # narrows it for a manifest, and an error then names the manifest's cap, the one to raise.
    bytes_named: str = "max_bytes"

    @classmethod
    def from_env(cls, environ=None) -> "Caps":
        """The defaults, each overridden by its environment variable when that is set."""
        environ = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            if f.name == "bytes_named":
                continue
            raw = environ.get(env_name(f.name))
            if raw:
                try:
                    values[f.name] = int(raw, 0)
                except ValueError:
                    raise ConfigInvalid(f"${env_name(f.name)} must be an integer, got {raw!r}") from None
                if values[f.name] <= 0:
                    raise ConfigInvalid(f"${env_name(f.name)} must be positive, got {raw!r}")
        return cls(**values)


def env_name(cap: str) -> str:
    return f"MODELREG_{cap.upper()}"


_current: ContextVar[Caps | None] = ContextVar("modelreg_caps", default=None)


def current() -> Caps:
    """The caps in force: those set by `limited`, else the defaults and the environment."""
    return _current.get() or Caps.from_env()


@contextlib.contextmanager
def limited(*, named: str | None = None, **narrower):
    """Within the block, the given caps are at most the values given (never raised above the current);
    `named` is the setting a narrowed max_bytes stands for, which its error names."""
    now = current()
    narrowed = {k: min(v, getattr(now, k)) for k, v in narrower.items()}
    if named and narrowed.get("max_bytes", now.max_bytes) < now.max_bytes:
        narrowed["bytes_named"] = named
    token = _current.set(replace(now, **narrowed))
    try:
        yield
    finally:
        _current.reset(token)


def exceeded(cap: str, what: str, found, limit=None) -> CapExceeded:
    """The error for `what` going past `cap`: it names the cap, the value found, and how to raise it."""
    limit = getattr(current(), cap) if limit is None else limit
    if cap == "max_bytes":
        cap = current().bytes_named
    return CapExceeded(f"{what} is {found}, over the cap {cap} = {limit} (set by ${env_name(cap)})",
                       cap=cap, env=env_name(cap))


def check(cap: str, what: str, found: int) -> None:
    """CapExceeded if `found` is over the cap."""
    if found > getattr(current(), cap):
        raise exceeded(cap, what, found)


def capped_stream(chunks, what: str, *, slack: int = 0):
    """Yield the chunks, refusing once more than max_bytes + slack bytes came or max_seconds passed."""
    caps = current()
    deadline = time.monotonic() + caps.max_seconds
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > caps.max_bytes + slack:
            raise exceeded("max_bytes", f"{what} (so far)", f"{total} bytes", caps.max_bytes)
        if time.monotonic() > deadline:
            raise exceeded("max_seconds", what, f"still arriving after {caps.max_seconds} s", caps.max_seconds)
        yield chunk
