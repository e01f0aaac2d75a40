"""Shared fixtures: the chains every chain test runs on, each with funded dev signers.

`chain` is parametrized over CHAIN_FACTORIES. To add a chain, add a factory: a context manager
yielding a Chain and cleaning up after itself.
"""

import contextlib
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

ROOT = Path(__file__).resolve().parent.parent
ANVIL = ROOT / "node_modules" / ".bin" / "anvil"

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
        w3 = Web3(Web3.HTTPProvider(url))
        deadline = time.monotonic() + 30
        while not w3.is_connected():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"anvil did not start on {url}: {proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.1)
        signers = [Signer.from_key(k) for k in DEV_KEYS]
        for s in signers:
            w3.provider.make_request("anvil_setBalance", [s.address, hex(10**24)])
        yield Chain("anvil", lambda: Web3(Web3.HTTPProvider(url)), signers, rpc_url=url)
    finally:
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
}


@pytest.fixture(scope="session", params=list(CHAIN_FACTORIES))
def chain(request) -> Iterator[Chain]:
    """Each chain in CHAIN_FACTORIES, started once per session."""
    with CHAIN_FACTORIES[request.param]() as c:
        yield c


@pytest.fixture
def registry(chain) -> RegistryClient:
    """A freshly deployed ModelRegistry, written by the chain's first dev signer."""
    return RegistryClient.deploy(chain.w3, chain.signers[0])
