"""The same raw JSON-RPC requests to this devnet and to anvil give answers of the same shape."""

import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.devnet.conftest import ACCOUNTS, Client, http_send, word

ANVIL = Path(__file__).resolve().parents[2] / "node_modules" / ".bin" / "anvil"
# Fields anvil adds beyond the standard ones; the devnet need not copy them.
ANVIL_ONLY = {"blobGasPrice", "blockTimestamp"}
HEX = re.compile(r"^0x[0-9a-fA-F]*$")  # addresses may be checksummed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def anvil():
    if not ANVIL.exists() and not shutil.which("anvil"):
        pytest.fail("anvil is missing: run `npm ci` (package @foundry-rs/anvil)")
    port = _free_port()
    process = subprocess.Popen([str(ANVIL), "--port", str(port), "--silent"])
    client = Client(http_send(f"http://127.0.0.1:{port}"))
    for _ in range(200):
        try:
            client("eth_chainId")
            break
        except OSError:
            time.sleep(0.05)
    yield client
    process.terminate()
    process.wait()


def _chain_id_signer(client: Client, chain_id: int):
    sign = client.sign

    def signed(sender=0, **fields):
        return sign(sender, chainId=chain_id, **fields)
    client.sign = signed
    return client


def _shape(value, path="$"):
    """The shape of an answer: key sets, and for each leaf its kind (quantity, data, null, ...)."""
    if isinstance(value, dict):
        return {k: _shape(v, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(v, f"{path}[]") for v in value[:1]]
    if isinstance(value, str) and value.startswith("0x"):
        assert HEX.match(value), f"{path}: {value!r} is not 0x hex"
        return "hex"
    return type(value).__name__


def _assert_same_shape(ours, theirs, path="$"):
    if isinstance(theirs, dict) and isinstance(ours, dict):
        missing = set(theirs) - set(ours) - ANVIL_ONLY
        extra = set(ours) - set(theirs)
        assert not missing and not extra, f"{path}: missing {missing}, extra {extra}"
        for key in ours:
            _assert_same_shape(ours[key], theirs[key], f"{path}.{key}")
    elif isinstance(theirs, list) and isinstance(ours, list):
        for a, b in zip(ours, theirs):
            _assert_same_shape(a, b, f"{path}[]")
    else:
        assert ours == theirs, f"{path}: devnet gives {ours}, anvil {theirs}"


def _exchange(client: Client) -> dict:
    """One scenario of requests; returns each answer by name."""
    contract = client.deploy()
    log_filter = client("eth_newFilter", {"address": contract})
    block_filter = client("eth_newBlockFilter")
    receipt = client.emit(contract, 7)
    created = client.transact(data=bytes.fromhex("00"))  # polls: anvil may answer a moment late
    tx_hash = receipt["transactionHash"]
    return {
        "receipt": receipt,
        "creation receipt": created,
        "transaction": client("eth_getTransactionByHash", tx_hash),
        "block": client("eth_getBlockByNumber", receipt["blockNumber"], False),
        "full block": client("eth_getBlockByHash", receipt["blockHash"], True),
        "logs": client("eth_getLogs", {"fromBlock": "0x0", "address": contract,
                                       "topics": [None, word(7)]}),
        "missing block": client.request("eth_getBlockByNumber", "0x999", False)["result"],
        "missing receipt": client.request("eth_getTransactionReceipt", "0x" + "ab" * 32)["result"],
        "balance": client("eth_getBalance", ACCOUNTS[0].address, "latest"),
        "nonce": client("eth_getTransactionCount", ACCOUNTS[0].address, "latest"),
        "code": client("eth_getCode", contract, "latest"),
        "storage": client("eth_getStorageAt", contract, "0x0", "latest"),
        "call": client("eth_call", {"to": contract, "data": word(1)}, "latest"),
        "estimate": client("eth_estimateGas", {"from": ACCOUNTS[0].address, "to": contract,
                                               "data": word(1)}),
        "fee history": client("eth_feeHistory", "0x2", "latest", [50]),
        "gas price": client("eth_gasPrice"),
        "priority fee": client("eth_maxPriorityFeePerGas"),
        "chain id": client("eth_chainId"),
        "block number": client("eth_blockNumber"),
        "accounts": client("eth_accounts"),
        "revert": client.request("eth_call", {"to": contract}, "latest")["error"]["data"],
        "unknown method": client.request("eth_noSuchMethod")["error"]["code"],
        "snapshot": client("evm_snapshot"),
        "mine": client("evm_mine"),
        "increase time": client("evm_increaseTime", "0x3c"),
        "filter changes": client("eth_getFilterChanges", log_filter),
        "block filter changes": client("eth_getFilterChanges", block_filter)[:1],
        "uninstall": client("eth_uninstallFilter", block_filter),
        "block receipts": client("eth_getBlockReceipts", receipt["blockNumber"]),
        "transaction by position": client("eth_getTransactionByBlockNumberAndIndex",
                                          receipt["blockNumber"], "0x0"),
        "transaction count": client("eth_getBlockTransactionCountByNumber", receipt["blockNumber"]),
        "syncing": client("eth_syncing"),
        "listening": client("net_listening"),
        "sha3": client("web3_sha3", "0x68656c6c6f"),
        "coinbase": client("eth_coinbase"),
        "access list": client("eth_createAccessList", {"from": ACCOUNTS[0].address, "to": contract,
                                                       "data": word(3)}),
        "state override": client("eth_call", {"to": contract}, "latest",
                                 {contract: {"code": "0x5f545f5260205ff3"}}),
    }


@pytest.mark.slow
def test_answers_have_the_same_shape_as_anvils(anvil, chain):
    ours = _exchange(_chain_id_signer(chain, 1337))
    theirs = _exchange(_chain_id_signer(anvil, 31337))
    for name in theirs:
        _assert_same_shape(_shape(ours[name]), _shape(theirs[name]), name)
