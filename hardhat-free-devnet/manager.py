"""Start, find, stop and reset the background devnet of a data directory (in its `Home.devnet`)."""

import contextlib
import fcntl
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from modelreg.errors import ChainUnavailable
from modelreg.home import Home, HomeLike

DEFAULT_PORT = 8645  # not 8545: anvil, hardhat and geth default there and may be running
SERVER_FILE = "server.json"  # {"pid", "port", "url"}, written by the server once it listens
LOG_FILE = "server.log"
CHAIN_FILES = ("chain.sqlite", "chain.sqlite-wal", "chain.sqlite-shm")
# A devnet nobody asks anything stops by itself after this long (the chain stays on disk and the
# next command starts it again): an afternoon of --home directories must not leave daemons behind.
IDLE_TIMEOUT_ENV = "MODELREG_DEVNET_IDLE_TIMEOUT"
DEFAULT_IDLE_TIMEOUT = 30 * 60.0  # seconds; 0 keeps it running until `devnet down`


@dataclass(frozen=True)
class DevnetStatus:
    """Where a data directory's devnet stands. `block_number` is None when it is not running."""

    running: bool
    directory: str
    pid: int | None = None
    port: int | None = None
    url: str | None = None
    block_number: int | None = None
    idle_timeout: float | None = None  # seconds without a request before it stops; 0: never
    started: bool = False  # True when this call to `up` started it

    def to_json(self) -> dict:
        return asdict(self)

    def stops_when(self, home: HomeLike | None = None) -> str:
        """When it stops, in words; with `home`, the stop command names that data directory."""
        down = f"modelreg --home {shlex.quote(str(home))} devnet down" if home is not None else "modelreg devnet down"
        if not self.idle_timeout:
            return f"it runs until `{down}`"
        return f"it stops after {_duration(self.idle_timeout)} without requests, or now with `{down}`"


def idle_timeout_default() -> float:
    """The idle timeout: $MODELREG_DEVNET_IDLE_TIMEOUT seconds, else 30 minutes."""
    value = os.environ.get(IDLE_TIMEOUT_ENV)
    try:
        seconds = float(value) if value else DEFAULT_IDLE_TIMEOUT
    except ValueError:
        raise ChainUnavailable(f"{IDLE_TIMEOUT_ENV}={value!r} is not a number of seconds") from None
    if seconds < 0 or seconds != seconds:
        raise ChainUnavailable(f"{IDLE_TIMEOUT_ENV}={value!r} is not a number of seconds from 0")
    return seconds


def _duration(seconds: float) -> str:
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"


def write_server_file(directory: Path, port: int, idle_timeout: float | None = None) -> None:
    info = {"pid": os.getpid(), "port": port, "url": f"http://127.0.0.1:{port}", "idle_timeout": idle_timeout}
    tmp = directory / (SERVER_FILE + ".tmp")
    tmp.write_text(json.dumps(info))
    tmp.replace(directory / SERVER_FILE)  # readers never see half a file


def remove_server_file(directory: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        info = json.loads((directory / SERVER_FILE).read_text())
        if info.get("pid") == os.getpid():
            (directory / SERVER_FILE).unlink()


def status(home: HomeLike) -> DevnetStatus:
    """Whether this data directory's devnet is running and answering, and where."""
    directory = Home.of(home).devnet
    try:
        info = json.loads((directory / SERVER_FILE).read_text())
        pid, port, url = int(info["pid"]), int(info["port"]), str(info["url"])
        idle = info.get("idle_timeout")
        idle = float(idle) if idle is not None else None
    except (FileNotFoundError, ValueError, KeyError, TypeError, AttributeError):
        return DevnetStatus(False, str(directory))
    if not _alive(pid):
        return DevnetStatus(False, str(directory))
    block = _block_number(url)
    if block is None:
        return DevnetStatus(False, str(directory), pid, port, url, idle_timeout=idle)
    return DevnetStatus(True, str(directory), pid, port, url, block, idle_timeout=idle)


def up(home: HomeLike, port: int = DEFAULT_PORT, timeout: float = 60.0,
       idle_timeout: float | None = None) -> DevnetStatus:
    """Start the devnet in the background unless it already runs; returns once it answers, with
    `started` True if this call started it. It stops by itself after `idle_timeout` seconds without
    a request (default `idle_timeout_default()`; 0: never)."""
    idle_timeout = idle_timeout_default() if idle_timeout is None else idle_timeout
    directory = Home.of(home).devnet
    directory.mkdir(parents=True, exist_ok=True)
    with _locked(directory):
        current = status(home)
        if current.running:
            return current
        if current.pid is not None and _alive(current.pid):
            raise ChainUnavailable(f"the devnet process {current.pid} of {directory} does not "
                                   "answer; stop it with `modelreg devnet down`")
        log = open(directory / LOG_FILE, "ab")  # noqa: SIM115 - handed to the child process
        with log:
            process = subprocess.Popen(
                [sys.executable, "-m", "modelreg.devnet", "--home", str(home), "--port", str(port),
                 "--idle-timeout", str(idle_timeout)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)  # outlives the CLI command that started it
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ChainUnavailable(f"the devnet did not start: {_log_tail(directory)}")
            current = status(home)
            if current.running and current.pid == process.pid:
                return replace(current, started=True)
            time.sleep(0.05)
        process.kill()
        raise ChainUnavailable(f"the devnet did not answer within {timeout:.0f} s; "
                               f"see {directory / LOG_FILE}")


def down(home: HomeLike, timeout: float = 10.0) -> bool:
    """Stop the devnet (SIGTERM, then SIGKILL after `timeout`); False if none was running."""
    directory = Home.of(home).devnet
    current = status(home)
    if current.pid is None or not _alive(current.pid):
        with contextlib.suppress(FileNotFoundError):
            (directory / SERVER_FILE).unlink()
        return False
    os.kill(current.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(current.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(current.pid):
        os.kill(current.pid, signal.SIGKILL)  # the store commits per block, so this loses nothing
        while _alive(current.pid):
            time.sleep(0.05)
    with contextlib.suppress(FileNotFoundError):
        (directory / SERVER_FILE).unlink()
    return True


def reset(home: HomeLike) -> None:
    """Stop the devnet and delete its chain: the next start begins again from genesis."""
    down(home)
    for name in CHAIN_FILES:
        with contextlib.suppress(FileNotFoundError):
            (Home.of(home).devnet / name).unlink()


def ensure_running(home: HomeLike, port: int = DEFAULT_PORT) -> str:
    """The RPC URL of this data directory's devnet, starting it first if needed."""
    return up(home, port).url


class IdleWatch:
    """Stops a server once no request has been in progress for `idle_timeout` seconds (0: never).

    The server calls `opened` and `closed` around each request: a request in progress (a long
    eth_getLogs) is never cut off.
    """

    def __init__(self, stop, idle_timeout: float, clock=time.monotonic):
        self._stop, self.idle_timeout, self._clock = stop, idle_timeout, clock
        self._open, self._last = 0, clock()
        self._lock = threading.Lock()

    def opened(self) -> None:
        with self._lock:
            self._open += 1

    def closed(self) -> None:
        with self._lock:
            self._open -= 1
            self._last = self._clock()

    def idle_for(self) -> float:
        with self._lock:
            return 0.0 if self._open else self._clock() - self._last

    def run(self, poll: float = 1.0) -> None:
        """Block until idle for `idle_timeout`, then call `stop`; returns at once when the timeout is 0."""
        if not self.idle_timeout:
            return
        while (left := self.idle_timeout - self.idle_for()) > 0:
            time.sleep(min(poll, left))
        self._stop()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child (ours, not yet reaped) counts as gone.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    # So does anyone else's zombie: a killed devnet whose starter exited belongs to init, which may
    # reap it only seconds later; until then it would look alive and block a restart.
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except OSError:  # gone meanwhile, or no /proc (macOS), where the signal's answer stands
        return not os.path.isdir("/proc")
    return state != b"Z"


def _block_number(url: str) -> int | None:
    request = urllib.request.Request(
        url, data=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber"}).encode(),
        headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(json.loads(response.read())["result"], 16)
    except (OSError, ValueError, KeyError, TypeError):
        return None


@contextlib.contextmanager
def _locked(directory: Path):
    """One `up` at a time per data directory, across processes: two CLIs must not race."""
    with open(directory / "up.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield



def _log_tail(directory: Path) -> str:
    lines = (directory / LOG_FILE).read_text(errors="replace").strip().splitlines()
    return lines[-1] if lines else f"no output; see {directory / LOG_FILE}"
