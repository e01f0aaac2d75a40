"""Fixtures for the devnet tests: an in-process devnet, one over HTTP, and a tiny logging contract."""

import json
import time
import urllib.request

import pytest
from eth_account import Account
from eth_utils import to_checksum_address

from modelreg.devnet import manager
from modelreg.devnet.accounts import dev_accounts
from modelreg.devnet.chain import Devnet
from modelreg.devnet.server import handle_body

# Hand-assembled so these tests need no compiler. With empty calldata it reverts with the
# custom-error selector 0x12345678; otherwise it stores calldata word 0 in slot 0 and emits
# LOG3(data=calldata, topics=[EVENT, word0, caller]).
EVENT = "0x" + "ee" * 32
RUNTIME = bytes.fromhex(
    "36601057" "6312345678" "5f52" "6004601c" "fd"  # if no calldata: revert(0x12345678)
    "5b" "365f5f37" "5f35" "805f55" "33" "90"  # copy calldata; sstore(0, word0)
    "7f" + "ee" * 32 + "365fa3" "00"  # log3(calldata, EVENT, word0, caller); stop
)
INIT = bytes.fromhex(f"60{len(RUNTIME):02x}80" "6009" "5f39" "5ff3") + RUNTIME
ACCOUNTS = dev_accounts()


def word(n: int) -> str:
    return "0x" + n.to_bytes(32, "big").hex()


class Client:
    """Sends JSON-RPC to a devnet, in-process or over HTTP, and signs with the dev keys."""

    def __init__(self, send):
        self._send = send
        self._id = 0

    def request(self, method, *params):
        """The whole answer object: {"result": ...} or {"error": ...}."""
        self._id += 1
        return self._send({"jsonrpc": "2.0", "id": self._id, "method": method,
                           "params": list(params)})

    def __call__(self, method, *params):
        answer = self.request(method, *params)
        assert "error" not in answer, answer
        return answer["result"]

    def sign(self, sender: int = 0, **fields) -> str:
        account = ACCOUNTS[sender]
        tx = {"chainId": 1337, "nonce": int(self("eth_getTransactionCount", account.address, "latest"), 16),
              "gas": 200_000, "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9, "value": 0,
              **fields}
        if tx.get("to"):
            tx["to"] = to_checksum_address(tx["to"])
        return "0x" + Account.sign_transaction(tx, account.key).raw_transaction.hex()

    def transact(self, sender: int = 0, **fields) -> dict:
        tx_hash = self("eth_sendRawTransaction", self.sign(sender, **fields))
        for _ in range(100):  # the devnet answers at once; anvil may take a moment
            receipt = self("eth_getTransactionReceipt", tx_hash)
            if receipt is not None:
                return receipt
            time.sleep(0.05)
        raise AssertionError(f"no receipt for {tx_hash}")

    def deploy(self, sender: int = 0) -> str:
        return self.transact(sender, data=INIT)["contractAddress"]

    def emit(self, contract: str, n: int, sender: int = 0) -> dict:
        return self.transact(sender, to=contract, data=bytes.fromhex(word(n)[2:]))


def http_send(url):
    def send(payload):
        request = urllib.request.Request(url, data=json.dumps(payload).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())
    return send


@pytest.fixture
def chain(tmp_path):
    """An in-process devnet: the JSON-RPC layer without HTTP, fast."""
    devnet = Devnet(tmp_path / "devnet")
    yield Client(lambda payload: handle_body(devnet, json.dumps(payload).encode()))
    devnet.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A devnet server process over HTTP on a free port; yields (home, status)."""
    home = tmp_path_factory.mktemp("home")
    state = manager.up(home, port=0)
    yield home, state
    manager.down(home)


@pytest.fixture
def http(served):
    return Client(http_send(served[1].url))
