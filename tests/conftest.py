"""Shared fixtures: the chains every chain test runs on, each with funded dev signers.

`chain` is parametrized over CHAIN_FACTORIES. To add a chain, add a factory: a context manager
yielding a Chain and cleaning up after itself.
"""

import contextlib
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from eth_tester import EthereumTester, PyEVMBackend
from web3 import Web3
from web3.providers.eth_tester import EthereumTesterProvider

from modelreg.chain.client import RegistryClient
from modelreg.chain.signer import Signer

# The CLI's notices ("Started the embedded devnet ...") go to stderr, which CliRunner mixes into
# `result.output`; tests that check them turn them back on (tests/devnet/test_lifecycle.py).
os.environ.setdefault("MODELREG_NOTICES", "0")

ROOT = Path(__file__).resolve().parent.parent
ANVIL = ROOT / "node_modules" / ".bin" / "anvil"
GETH = ROOT / ".cache" / "bin" / "geth"  # built by `make setup` from the Go module proxy

# eth-tester's default genesis funds the keys 1..10; the anvil factory funds the same ones, so
# every chain has the same dev accounts.
DEV_KEYS = [i.to_bytes(32, "big") for i in range(1, 11)]


@dataclass
class Chain:
    """A running chain: its name, a way to open more Web3 connections to it, and funded signers."""

    name: str
    connect: Callable[[], Web3]
    signers: list[Signer]
    rpc_url: str | None = None
    w3: Web3 = field(init=False)

    def __post_init__(self):
        self.w3 = self.connect()


@contextlib.contextmanager
def eth_tester_chain() -> Iterator[Chain]:
    """In-process py-evm through web3's EthereumTesterProvider."""
    tester = EthereumTester(PyEVMBackend())
    yield Chain("eth-tester", lambda: Web3(EthereumTesterProvider(tester)),
                [Signer.from_key(k) for k in DEV_KEYS])


@contextlib.contextmanager
def anvil_chain() -> Iterator[Chain]:
    """A real anvil process on a free loopback port, stopped afterwards."""
    if not ANVIL.exists():
        raise RuntimeError(f"{ANVIL} is missing; run `npm ci` in {ROOT}")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([str(ANVIL), "--host", "127.0.0.1", "--port", str(port), "--silent"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_until_answering(url, proc, lambda: proc.stderr.read().decode())
        w3 = Web3(Web3.HTTPProvider(url))
        signers = [Signer.from_key(k) for k in DEV_KEYS]
        for s in signers:
            w3.provider.make_request("anvil_setBalance", [s.address, hex(10**24)])
        yield Chain("anvil", lambda: Web3(Web3.HTTPProvider(url)), signers, rpc_url=url)
    finally:
        _stop(proc)


def require_binary(path: Path) -> None:
    """Skip locally when a daemon's binary was never built; in CI (CI set) fail instead."""
    if path.exists():
        return
    message = f"{path} is missing: run `make setup` to build it"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@contextlib.contextmanager
def geth_process(*extra: str) -> Iterator[str]:
    """A real `geth --dev` sealing a block every 2 s, on free loopback ports and a temporary datadir.

    Yields its HTTP URL; the process is stopped and the datadir removed afterwards. `extra` are
    more geth flags (`--rpc.rangelimit 100`, say).
    """
    require_binary(GETH)
    with tempfile.TemporaryDirectory() as tmp:
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        log = Path(tmp) / "geth.log"  # a file, not a pipe: a full pipe would block geth
        # --dev.period 2: transactions wait for the next block, as on a real network, instead of
        # being mined the moment they arrive. An archive node (hash scheme: geth's path scheme serves
        # no historical state in dev mode), as an auditor uses, so state at old blocks can be read.
        # No IPC, no peers; the engine API gets its own free port.
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [str(GETH), "--dev", "--dev.period", "2", "--datadir", str(Path(tmp) / "data"),
                 "--ipcdisable", "--http", "--http.addr", "127.0.0.1", "--http.port", str(port),
                 "--http.api", "eth,net,web3", "--authrpc.port", str(_free_port()), "--port", "0",
                 "--gcmode", "archive", "--state.scheme", "hash", "--verbosity", "2", *extra],
                stdout=subprocess.DEVNULL, stderr=out)
        try:
            _wait_until_answering(url, proc, log.read_text)
            yield url
        finally:
            _stop(proc)


@contextlib.contextmanager
def geth_chain(*extra: str) -> Iterator[Chain]:
    """A real geth --dev node (with more flags `extra`); its unlocked developer account funds the dev signers."""
    with geth_process(*extra) as url:
        w3 = Web3(Web3.HTTPProvider(url))
        signers = [Signer.from_key(k) for k in DEV_KEYS]
        (funder,) = w3.eth.accounts
        hashes = [w3.eth.send_transaction({"from": funder, "to": s.address, "value": 10**24})
                  for s in signers]
        for tx_hash in hashes:
            w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60)
        # Just started, geth reports indexing progress from eth_syncing; tests expect a settled node.
        deadline = time.monotonic() + 30
        while w3.eth.syncing and time.monotonic() < deadline:
            time.sleep(0.2)
        yield Chain("geth", lambda: Web3(Web3.HTTPProvider(url)), signers, rpc_url=url)


def _wait_until_answering(url: str, proc: subprocess.Popen, output: Callable[[], str]) -> None:
    w3 = Web3(Web3.HTTPProvider(url))
    deadline = time.monotonic() + 30
    while not w3.is_connected():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{proc.args[0]} did not start on {url}: {output()[-2000:]}")
        time.sleep(0.05)


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def devnet_chain() -> Iterator[Chain]:
    """The hardhat-free devnet server over HTTP, its chain in a temporary directory, stopped afterwards."""
    from modelreg.devnet import manager

    with tempfile.TemporaryDirectory() as home:
        url = manager.up(Path(home), port=0).url
        try:
            w3 = Web3(Web3.HTTPProvider(url))
            signers = [Signer.from_key(k) for k in DEV_KEYS]
            # The devnet funds the mnemonic accounts; each hands half its ether to one DEV_KEY.
            for funder, s in zip(w3.eth.accounts, signers):
                w3.eth.send_transaction({"from": funder, "to": s.address, "value": 10**24 // 2})
            yield Chain("devnet", lambda: Web3(Web3.HTTPProvider(url)), signers, rpc_url=url)
        finally:
            manager.down(Path(home))


CHAIN_FACTORIES: dict[str, Callable[[], contextlib.AbstractContextManager[Chain]]] = {
    "eth-tester": eth_tester_chain,
    "anvil": anvil_chain,
    "devnet": devnet_chain,
    "geth": geth_chain,
}
# geth seals a block every 2 s, so each transaction there takes ~2 s: its run is slow.
SLOW_CHAINS = {"geth"}
# The session's geth caps eth_getLogs at 3-block ranges, as public endpoints cap them at thousands:
# every suite run on it must read logs in pieces.
GETH_RANGE_LIMIT = 3


@pytest.fixture(scope="session")
def geth() -> Iterator[Chain]:
    """One real geth --dev for the whole session (its blocks are slow; starting more gains nothing)."""
    with geth_chain("--rpc.rangelimit", str(GETH_RANGE_LIMIT)) as c:
        yield c


@pytest.fixture(scope="session", params=[
    pytest.param(name, marks=pytest.mark.slow) if name in SLOW_CHAINS else name for name in CHAIN_FACTORIES])
def chain(request) -> Iterator[Chain]:
    """Each chain in CHAIN_FACTORIES, started once per session."""
    if request.param == "geth":
        yield request.getfixturevalue("geth")
        return
    with CHAIN_FACTORIES[request.param]() as c:
        yield c


@pytest.fixture
def registry(chain) -> RegistryClient:
    """A freshly deployed ModelRegistry, written by the chain's first dev signer."""
    return RegistryClient.deploy(chain.w3, chain.signers[0])
