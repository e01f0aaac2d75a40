"""A real Kubo 0.42.0 daemon for tests and benchmarks: its own repo in a temp dir, offline, loopback.

    with KuboDaemon.started(tmp, profile="unixfs-v1-2025") as kubo:   # None: Kubo's defaults
        kubo.repo, kubo.api        # IPFS_PATH, and the API address read from IPFS_PATH/api

The repo is initialised with Kubo's `test` profile: API and gateway on 127.0.0.1 port 0 (Kubo picks
free ports and writes the API's into IPFS_PATH/api), no bootstrap peers; `--offline` keeps it
off every network.
"""

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
KUBO = ROOT / ".cache" / "bin" / "ipfs"
KUBO_VERSION = "0.42.0"


def require_kubo() -> None:
    """Skip locally when Kubo was never built; under CI (CI set) fail instead: CI never skips these."""
    if KUBO.exists():
        return
    message = f"{KUBO} is missing: run `make go-binaries` to build Kubo {KUBO_VERSION}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


class KuboDaemon:
    def __init__(self, workdir: Path, profile: str | None = None):
        self.repo = Path(workdir) / "repo"
        self.log = Path(workdir) / "daemon.log"  # a file, not a pipe, which could fill and block it
        self.profile = profile
        self.proc: subprocess.Popen | None = None
        Path(workdir).mkdir(parents=True, exist_ok=True)
        self.ipfs("init", "--profile", "test" + (f",{profile}" if profile else ""))

    @classmethod
    @contextlib.contextmanager
    def started(cls, workdir: Path, profile: str | None = None):
        daemon = cls(workdir, profile)
        daemon.start()
        try:
            yield daemon
        finally:
            daemon.stop()

    def ipfs(self, *args: str, timeout: float = 120) -> str:
        """`ipfs ARGS` on this repo (through the running daemon when there is one); its stdout."""
        return subprocess.run([str(KUBO), *args], env={**os.environ, "IPFS_PATH": str(self.repo)},
                              capture_output=True, text=True, timeout=timeout, check=True).stdout

    def ipfs_bytes(self, *args: str, timeout: float = 120) -> bytes:
        return subprocess.run([str(KUBO), *args], env={**os.environ, "IPFS_PATH": str(self.repo)},
                              capture_output=True, timeout=timeout, check=True).stdout

    @property
    def api(self) -> str:
        return (self.repo / "api").read_text().strip()

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([str(KUBO), "daemon", "--offline"], stdout=out, stderr=out,
                                         env={**os.environ, "IPFS_PATH": str(self.repo),
                                              "GOMAXPROCS": "2"})
        deadline = time.monotonic() + 60
        while not (self.repo / "api").exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"Kubo did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL, as a crash: the api file stays behind, naming a port nothing listens on."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def restart(self) -> None:
        """Start again after a kill; the `test` profile's port 0 gives the API another port."""
        (self.repo / "api").unlink(missing_ok=True)
        self.start()
