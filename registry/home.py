"""The data directory: where every piece of local state lives."""

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from modelreg.errors import ConfigInvalid

ENV_VAR = "MODELREG_HOME"
DEFAULT = Path("~/.modelreg")


def resolve_home(flag: str | os.PathLike | None = None) -> Path:
    """The data directory: the --home flag, else $MODELREG_HOME, else ~/.modelreg."""
    chosen = flag or os.environ.get(ENV_VAR) or DEFAULT
    home = Path(chosen).expanduser().resolve()
    try:
        home.mkdir(parents=True, exist_ok=True)
        # Every command may write here (the devnet, the event index, IPFS blocks): find out now, not
        # halfway through. Permissions alone do not tell (root in /proc, a read-only mount).
        os.rmdir(tempfile.mkdtemp(prefix=".writable-", dir=home))
    except OSError as e:
        raise ConfigInvalid(f"cannot use {home} as the data directory: {e.strerror or e}") from None
    return home


LOCK_FILE = "setup.lock"
NONCE_LOCKS = "locks"  # one lock file per signing key: two processes never race for a nonce


@contextlib.contextmanager
def setup_lock(home: str | os.PathLike) -> Iterator[None]:
    """Held around first-time setup in a data directory (deploying its registry, registering a
    dataset or a model), across processes: two commands started at once on a fresh directory then
    share one registry and one registration instead of each sending its own."""
    with open(Path(home) / LOCK_FILE, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or when the process dies
        yield


SEND_LOCK_FILE = "send.lock"


@contextlib.contextmanager
def send_lock(home: str | os.PathLike) -> Iterator[None]:
    """Held by a commit from its manifest to its receipt, across processes sharing `home` (and so its
    signer): their transactions then take nonces in turn, instead of racing for each nonce until the
    client's retries run out (4 racing commits did). Sealing and pinning, the long part, stay parallel."""
    with open(Path(home) / SEND_LOCK_FILE, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
