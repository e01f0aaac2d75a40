"""The devnet over HTTP: web3.py unchanged, persistence across SIGKILL, bad input, many clients."""

import http.client
import os
import signal
import threading
import urllib.error
import urllib.request

import pytest
from web3 import Web3

from modelreg.devnet import manager
from modelreg.devnet.server import MAX_REQUEST_BYTES
from tests.devnet.conftest import ACCOUNTS, EVENT, Client, http_send


def test_web3_http_provider_works_unchanged(served):
    w3 = Web3(Web3.HTTPProvider(served[1].url))
    assert w3.eth.chain_id == 1337
    tx_hash = w3.eth.send_transaction({"from": w3.eth.accounts[0], "to": w3.eth.accounts[1],
                                       "value": 1})
    assert w3.eth.wait_for_transaction_receipt(tx_hash, timeout=10).status == 1
    signed = w3.eth.account.sign_transaction({
        "to": ACCOUNTS[2].address, "value": 5, "chainId": 1337, "gas": 21_000,
        "nonce": w3.eth.get_transaction_count(ACCOUNTS[1].address),
        "maxFeePerGas": w3.eth.get_block("latest")["baseFeePerGas"] * 2 + w3.eth.max_priority_fee,
        "maxPriorityFeePerGas": w3.eth.max_priority_fee}, ACCOUNTS[1].key)
    receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(signed.raw_transaction))
    assert receipt.status == 1 and w3.eth.get_block(receipt.blockNumber).transactions == [receipt.transactionHash]
    assert w3.eth.fee_history(2, "latest", [50]).oldestBlock == receipt.blockNumber - 1


def _post(url, body: bytes):
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _post_oversized(port, length: int):
    """Announce a body over the limit; the server must refuse it before reading any of it."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.putrequest("POST", "/")
    connection.putheader("Content-Length", str(length))
    connection.endheaders()
    response = connection.getresponse()
    return response.status, response.read()


def test_bad_requests_are_answered_and_the_server_keeps_serving(served, http):
    url = served[1].url
    before = http("eth_blockNumber")
    status, body = _post(url, b"{oops")
    assert status == 200 and b"-32700" in body
    status, body = _post_oversized(served[1].port, MAX_REQUEST_BYTES + 1)
    assert status == 413 and b"the limit is" in body
    assert http.request("eth_getBalance", "nope")["error"]["code"] == -32602
    assert http("eth_blockNumber") == before


def test_concurrent_clients_all_land_without_corrupting_state(served):
    url = served[1].url
    start = int(Client(http_send(url))("eth_blockNumber"), 16)
    errors = []

    def writer(sender):
        client = Client(http_send(url))
        try:
            for _ in range(5):
                assert client.transact(sender, to=ACCOUNTS[0].address, value=1)["status"] == "0x1"
        except Exception as e:  # collected: an assertion in a thread would vanish
            errors.append(e)

    def reader():
        client = Client(http_send(url))
        for _ in range(20):
            client("eth_getLogs", {"fromBlock": "0x0"})
            client("eth_getBlockByNumber", "latest", True)

    threads = [threading.Thread(target=writer, args=(i,)) for i in (5, 6, 7)]
    threads += [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    client = Client(http_send(url))
    assert int(client("eth_blockNumber"), 16) == start + 15
    for sender in (5, 6, 7):
        assert client("eth_getTransactionCount", ACCOUNTS[sender].address, "latest") == "0x5"


def _snapshot(client: Client, tx_hashes) -> dict:
    """Every block, receipt and log of the chain, as the server answers them."""
    head = int(client("eth_blockNumber"), 16)
    return {
        "blocks": [client("eth_getBlockByNumber", hex(n), True) for n in range(head + 1)],
        "receipts": [client("eth_getTransactionReceipt", h) for h in tx_hashes],
        "logs": client("eth_getLogs", {"fromBlock": "0x0", "toBlock": "latest"}),
        "balances": [client("eth_getBalance", a.address, "latest") for a in ACCOUNTS],
    }


@pytest.mark.slow
def test_sigkill_and_restart_keep_every_block_receipt_and_log(tmp_path):
    state = manager.up(tmp_path, port=0)
    client = Client(http_send(state.url))
    contract = client.deploy()
    receipts = [client.emit(contract, n, sender=n % 3) for n in range(1, 25)]
    hashes = [r["transactionHash"] for r in receipts]
    storage = client("eth_getStorageAt", contract, "0x0", "latest")
    before = _snapshot(client, hashes)
    assert len(before["logs"]) == 24

    os.kill(state.pid, signal.SIGKILL)
    os.waitpid(state.pid, 0)  # our child (manager.up started it): reap it, as a shell would
    restarted = manager.up(tmp_path, port=0)
    assert restarted.pid != state.pid
    client = Client(http_send(restarted.url))
    assert _snapshot(client, hashes) == before
    assert client("eth_getStorageAt", contract, "0x0", "latest") == storage
    assert client.emit(contract, 99)["blockNumber"] == hex(26)  # and the chain goes on

    manager.down(tmp_path)
    client = Client(http_send(manager.up(tmp_path, port=0).url))
    assert client("eth_getLogs", {"fromBlock": "0x0", "topics": [EVENT]})[:24] == before["logs"]
    manager.down(tmp_path)
