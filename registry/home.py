"""The data directory: where every piece of local state lives, each piece named once, by `Home`.

    home = resolve_home()              # --home, else $MODELREG_HOME, else ~/.modelreg
    home.deployments                   # <home>/deployments.json
    home.index(chain_id, address)      # <home>/index/<chain id>-<address>.sqlite

Each layer gets the `Home` (or the one subpath it owns) and never joins a name onto the data
directory itself: the layout is read here, in one place, and a renamed file is a one-line change.
"""

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from modelreg.errors import ConfigInvalid

ENV_VAR = "MODELREG_HOME"
DEFAULT = Path("~/.modelreg")


def registry_key(chain_id: int, address: str) -> str:
    """How a file names the registry it caches: `<chain id>-<address in lower case>`. A data directory
    may talk to several chains and several contracts; their index and replay records never mix."""
    return f"{chain_id}-{address.lower()}"


@dataclass(frozen=True)
class Home:
    """The layout of one data directory. Building it creates and checks nothing (see `resolve_home`).

    A `Home` is path-like (`os.fspath(home)` is its root), so it goes wherever the data directory
    itself is asked for: `modelreg.connect(home)`, `--home`, a temporary directory's `dir=`.
    """

    root: Path

    @classmethod
    def of(cls, home: "Home | str | os.PathLike") -> "Home":
        """`home` as a `Home`: the public API and the tests pass plain paths."""
        return home if isinstance(home, Home) else cls(Path(home))

    def __fspath__(self) -> str:
        return os.fspath(self.root)

    def __str__(self) -> str:
        return os.fspath(self.root)

    @property
    def config(self) -> Path:
        """The settings file (service.config)."""
        return self.root / "config.toml"

    @property
    def deployments(self) -> Path:
        """Where the ModelRegistry lives on each chain (chain.deployments)."""
        return self.root / "deployments.json"

    @property
    def ipfs(self) -> Path:
        """The embedded IPFS blockstore and its pins (ipfs.blockstore); with a Kubo daemon, the cache
        of what was fetched from it."""
        return self.root / "ipfs"

    @property
    def devnet(self) -> Path:
        """The embedded devnet's chain, server file and log (modelreg.devnet.manager)."""
        return self.root / "devnet"

    def index(self, chain_id: int, address: str) -> Path:
        """The SQLite cache of one contract's event log (service.index)."""
        return self.root / "index" / f"{registry_key(chain_id, address)}.sqlite"

    def replays(self, chain_id: int, address: str) -> Path:
        """The replay verdicts reached here for one contract's versions (service.replay)."""
        return self.root / "replays" / f"{registry_key(chain_id, address)}.json"

    @property
    def runs(self) -> Path:
        """`train-and-register`'s run directories (checkpoints and journal), one per model by default."""
        return self.root / "runs"

    @property
    def token_cache(self) -> Path:
        """Tokenized datasets, keyed by dataset and tokenizer, shared by training and replay."""
        return self.root / "cache" / "tokens"

    @property
    def setup_lock_file(self) -> Path:
        return self.root / "setup.lock"

    @property
    def send_lock_file(self) -> Path:
        return self.root / "send.lock"

    @property
    def nonce_locks(self) -> Path:
        """One lock file per signing key: two processes never race for a nonce (chain.sending)."""
        return self.root / "locks"

    @property
    def scratch(self) -> Path:
        """Where temporary directories go (a fetched copy to verify, a replay, a derivation): on the
        data directory's own disk, where the blockstore sweeps up after a killed process."""
        return self.root


HomeLike = Home | str | os.PathLike  # what a function that takes the data directory accepts


def resolve_home(flag: str | os.PathLike | None = None) -> Home:
    """The data directory: the --home flag, else $MODELREG_HOME, else ~/.modelreg; created, and
    checked to be writable."""
    chosen = flag or os.environ.get(ENV_VAR) or DEFAULT
    root = Path(chosen).expanduser().resolve()
    try:
        root.mkdir(parents=True, exist_ok=True)
        # Every command may write here (the devnet, the event index, IPFS blocks): find out now, not
        # halfway through. Permissions alone do not tell (root in /proc, a read-only mount).
        os.rmdir(tempfile.mkdtemp(prefix=".writable-", dir=root))
    except OSError as e:
        raise ConfigInvalid(f"cannot use {root} as the data directory: {e.strerror or e}") from None
    return Home(root)


@contextlib.contextmanager
def setup_lock(home: HomeLike) -> Iterator[None]:
    """Held around first-time setup in a data directory (deploying its registry, registering a
    dataset or a model), across processes: two commands started at once on a fresh directory then
    share one registry and one registration instead of each sending its own."""
    with open(Home.of(home).setup_lock_file, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or when the process dies
        yield


@contextlib.contextmanager
def send_lock(home: HomeLike) -> Iterator[None]:
    """Held by a commit from its manifest to its receipt, across processes sharing `home` (and so its
    signer): their transactions then take nonces in turn, instead of racing for each nonce until the
    client's retries run out (4 racing commits did). Sealing and pinning, the long part, stay parallel."""
    with open(Home.of(home).send_lock_file, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
