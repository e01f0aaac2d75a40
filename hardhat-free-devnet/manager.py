"""Start, find, stop and reset the background devnet of a data directory (<home>/devnet/)."""

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from modelreg.errors import ChainUnavailable

DEFAULT_PORT = 8645  # not 8545: anvil, hardhat and geth default there and may be running
SERVER_FILE = "server.json"  # {"pid", "port", "url"}, written by the server once it listens
LOG_FILE = "server.log"
CHAIN_FILES = ("chain.sqlite", "chain.sqlite-wal", "chain.sqlite-shm")


@dataclass(frozen=True)
class DevnetStatus:
    """Where a data directory's devnet stands. `block_number` is None when it is not running."""

    running: bool
    directory: str
    pid: int | None = None
    port: int | None = None
    url: str | None = None
    block_number: int | None = None

    def to_json(self) -> dict:
        return asdict(self)


def devnet_dir(home: Path) -> Path:
    return Path(home) / "devnet"


def write_server_file(directory: Path, port: int) -> None:
    info = {"pid": os.getpid(), "port": port, "url": f"http://127.0.0.1:{port}"}
    tmp = directory / (SERVER_FILE + ".tmp")
    tmp.write_text(json.dumps(info))
    tmp.replace(directory / SERVER_FILE)  # readers never see half a file


def remove_server_file(directory: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        info = json.loads((directory / SERVER_FILE).read_text())
        if info.get("pid") == os.getpid():
            (directory / SERVER_FILE).unlink()


def status(home: Path) -> DevnetStatus:
    """Whether this data directory's devnet is running and answering, and where."""
    directory = devnet_dir(home)
    try:
        info = json.loads((directory / SERVER_FILE).read_text())
        pid, port, url = int(info["pid"]), int(info["port"]), str(info["url"])
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return DevnetStatus(False, str(directory))
    if not _alive(pid):
        return DevnetStatus(False, str(directory))
    block = _block_number(url)
    if block is None:
        return DevnetStatus(False, str(directory), pid, port, url)
    return DevnetStatus(True, str(directory), pid, port, url, block)


def up(home: Path, port: int = DEFAULT_PORT, timeout: float = 60.0) -> DevnetStatus:
    """Start the devnet in the background unless it already runs; returns once it answers."""
    directory = devnet_dir(home)
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
                [sys.executable, "-m", "modelreg.devnet", "--home", str(home), "--port", str(port)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)  # outlives the CLI command that started it
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ChainUnavailable(f"the devnet did not start: {_log_tail(directory)}")
            current = status(home)
            if current.running and current.pid == process.pid:
                return current
            time.sleep(0.05)
        process.kill()
        raise ChainUnavailable(f"the devnet did not answer within {timeout:.0f} s; "
                               f"see {directory / LOG_FILE}")


def down(home: Path, timeout: float = 10.0) -> bool:
    """Stop the devnet (SIGTERM, then SIGKILL after `timeout`); False if none was running."""
    directory = devnet_dir(home)
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


def reset(home: Path) -> None:
    """Stop the devnet and delete its chain: the next start begins again from genesis."""
    down(home)
    for name in CHAIN_FILES:
        with contextlib.suppress(FileNotFoundError):
            (devnet_dir(home) / name).unlink()


def ensure_running(home: Path, port: int = DEFAULT_PORT) -> str:
    """The RPC URL of this data directory's devnet, starting it first if needed."""
    return up(home, port).url


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
