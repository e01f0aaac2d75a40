"""The devnet's JSON-RPC methods, called in-process: results, errors, logs, snapshots, time."""

import json

import pytest

from modelreg.devnet.chain import Devnet
from modelreg.devnet.server import MAX_BATCH, handle_body
from tests.devnet.conftest import ACCOUNTS, EVENT, RUNTIME, word


def test_dev_accounts_are_the_well_known_mnemonic_accounts(chain):
    assert chain("eth_accounts")[:2] == ["0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
                                         "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"]
    assert len(chain("eth_accounts")) == 10
    assert int(chain("eth_getBalance", ACCOUNTS[9].address, "latest"), 16) == 10**24


def test_genesis_is_the_same_in_every_data_directory(tmp_path):
    hashes = []
    for name in ("a", "b"):
        devnet = Devnet(tmp_path / name)
        hashes.append(devnet.call("eth_getBlockByNumber", ["0x0", False])["hash"])
        devnet.close()
    assert hashes[0] == hashes[1]


def test_chain_identity_answers(chain):
    assert chain("eth_chainId") == "0x539"
    assert chain("net_version") == "1337"
    assert chain("web3_clientVersion").startswith("modelreg-devnet/")
    assert int(chain("eth_gasPrice"), 16) > int(chain("eth_maxPriorityFeePerGas"), 16) > 0


def test_each_transaction_is_mined_into_its_own_block(chain):
    address = chain.deploy()
    first, second = chain.emit(address, 1), chain.emit(address, 2)
    assert int(second["blockNumber"], 16) == int(first["blockNumber"], 16) + 1 == 3
    assert chain("eth_blockNumber") == "0x3"
    block = chain("eth_getBlockByNumber", "latest", False)
    assert block["transactions"] == [second["transactionHash"]]
    assert int(block["baseFeePerGas"], 16) > 0
    assert int(block["timestamp"], 16) > int(chain("eth_getBlockByNumber", "0x2", False)["timestamp"], 16)


def test_a_deployed_contract_has_its_code_storage_and_logs(chain):
    address = chain.deploy()
    receipt = chain.emit(address, 42)
    assert chain("eth_getCode", address, "latest") == "0x" + RUNTIME.hex()
    assert chain("eth_getStorageAt", address, "0x0", "latest") == word(42)
    assert receipt["status"] == "0x1"
    (log,) = receipt["logs"]
    assert log["topics"] == [EVENT, word(42), "0x" + "00" * 12 + ACCOUNTS[0].address[2:].lower()]
    assert chain("eth_getTransactionByHash", receipt["transactionHash"])["to"] == address


def test_get_logs_filters_by_address_topics_and_block_range(chain):
    a, b = chain.deploy(), chain.deploy()
    for n in (1, 2, 3):
        chain.emit(a, n)
    chain.emit(b, 2)
    assert len(chain("eth_getLogs", {"fromBlock": "0x0"})) == 4
    assert len(chain("eth_getLogs", {"fromBlock": "0x0", "address": a})) == 3
    assert len(chain("eth_getLogs", {"fromBlock": "0x0", "address": [a, b]})) == 4
    by_topic = chain("eth_getLogs", {"fromBlock": "0x0", "topics": [EVENT, [word(2), word(3)]]})
    assert [log["topics"][1] for log in by_topic] == [word(2), word(3), word(2)]
    assert len(chain("eth_getLogs", {"fromBlock": "0x3", "toBlock": "0x4"})) == 2
    assert chain("eth_getLogs", {"fromBlock": "0x0", "topics": [None, None, word(7)]}) == []
    last = chain("eth_getLogs", {})  # latest block only
    assert len(last) == 1 and last[0]["address"] == b
    block_hash = last[0]["blockHash"]
    assert chain("eth_getLogs", {"blockHash": block_hash}) == last


def test_a_revert_is_error_3_with_the_revert_data(chain):
    address = chain.deploy()
    for method in ("eth_call", "eth_estimateGas"):
        error = chain.request(method, {"to": address})["error"]
        assert error == {"code": 3, "message": "execution reverted: custom error 0x12345678",
                         "data": "0x12345678"}
    receipt = chain.transact(to=address, data=b"")
    assert receipt["status"] == "0x0"


def test_eth_call_returns_output_and_estimate_fits_the_transaction(chain):
    address = chain.deploy()
    assert chain("eth_call", {"to": address, "data": word(5)}) == "0x"
    gas = int(chain("eth_estimateGas", {"from": ACCOUNTS[0].address, "to": address,
                                        "data": word(5)}), 16)
    assert 21_000 < gas < 100_000
    assert chain("eth_getStorageAt", address, "0x0", "latest") == word(0)  # a call changes nothing


def test_send_transaction_signs_with_a_dev_account(chain):
    tx_hash = chain("eth_sendTransaction", {"from": ACCOUNTS[3].address,
                                            "to": ACCOUNTS[4].address, "value": "0x7"})
    assert chain("eth_getTransactionReceipt", tx_hash)["status"] == "0x1"
    assert int(chain("eth_getBalance", ACCOUNTS[4].address, "latest"), 16) == 10**24 + 7


def test_send_transaction_refuses_an_unknown_account(chain):
    error = chain.request("eth_sendTransaction", {"from": "0x" + "11" * 20, "value": "0x1"})["error"]
    assert error["code"] == -32000 and "not a dev account" in error["message"]


@pytest.mark.parametrize(("fields", "message"), [
    ({"nonce": 5}, "nonce too high: next nonce 1, tx nonce 5"),
    ({"value": 10**30}, "insufficient funds for gas \\* price \\+ value"),
    ({"gas": 10**9}, "insufficient funds|exceeds block gas limit"),
    ({"chainId": 31337}, "invalid chain id: the transaction is for chain 31337"),
])
def test_a_refused_transaction_names_the_problem_and_changes_nothing(chain, fields, message):
    chain.transact(to=ACCOUNTS[1].address, value=1)
    before = chain("eth_getBlockByNumber", "latest", False)
    error = chain.request("eth_sendRawTransaction", chain.sign(to=ACCOUNTS[1].address, **fields))
    assert error["error"]["code"] == -32000
    with pytest.raises(AssertionError, match=message):
        raise AssertionError(error["error"]["message"])
    assert chain("eth_getBlockByNumber", "latest", False) == before


def test_a_replayed_transaction_is_nonce_too_low(chain):
    raw = chain.sign(to=ACCOUNTS[1].address, value=1)
    chain("eth_sendRawTransaction", raw)
    error = chain.request("eth_sendRawTransaction", raw)["error"]
    assert error["code"] == -32000
    assert error["message"].startswith("nonce too low: next nonce 1, tx nonce 0")
    assert chain("eth_blockNumber") == "0x1"


def test_garbage_transactions_and_params_are_invalid_params(chain):
    cases = [("eth_sendRawTransaction", ["0x1234"]), ("eth_getBalance", ["0x12", "latest"]),
             ("eth_getBlockByNumber", ["soon", False]), ("eth_getLogs", [{"topics": "x"}]),
             ("eth_blockNumber", [1, 2]), ("eth_call", ["not an object"])]
    for method, params in cases:
        answer = chain.request(method, *params)
        assert answer["error"]["code"] == -32602, (method, answer)
    assert chain("eth_blockNumber") == "0x0"


def test_unknown_blocks_and_transactions_are_null(chain):
    assert chain("eth_getBlockByNumber", "0x99", False) is None
    assert chain("eth_getBlockByHash", "0x" + "00" * 32, False) is None
    assert chain("eth_getTransactionReceipt", "0x" + "00" * 32) is None
    assert chain("eth_getTransactionByHash", "0x" + "00" * 32) is None


def test_snapshot_and_revert_forget_later_blocks_receipts_and_logs(chain):
    address = chain.deploy()
    snapshot = chain("evm_snapshot")
    receipt = chain.emit(address, 9)
    assert chain("evm_revert", snapshot) is True
    assert chain("eth_blockNumber") == "0x1"
    assert chain("eth_getTransactionReceipt", receipt["transactionHash"]) is None
    assert chain("eth_getBlockByHash", receipt["blockHash"], False) is None
    assert chain("eth_getLogs", {"fromBlock": "0x0"}) == []
    assert chain("eth_getStorageAt", address, "0x0", "latest") == word(0)
    assert chain("evm_revert", snapshot) is False  # used up, as in anvil
    assert chain.emit(address, 10)["blockNumber"] == "0x2"


def test_increase_time_moves_the_next_block_forward(chain):
    chain("evm_mine")
    before = int(chain("eth_getBlockByNumber", "latest", False)["timestamp"], 16)
    assert chain("evm_increaseTime", "0xe10") == 3600
    chain("evm_mine")
    after = int(chain("eth_getBlockByNumber", "latest", False)["timestamp"], 16)
    assert after >= before + 3600


def test_fee_history_covers_the_requested_blocks(chain):
    chain.transact(to=ACCOUNTS[1].address, value=1)
    chain.transact(to=ACCOUNTS[1].address, value=1)
    history = chain("eth_feeHistory", "0x2", "latest", [25, 75])
    assert history["oldestBlock"] == "0x1"
    assert len(history["baseFeePerGas"]) == 3 and len(history["gasUsedRatio"]) == 2
    assert history["reward"] == [["0x3b9aca00", "0x3b9aca00"]] * 2


def test_unknown_methods_get_method_not_found(chain):
    assert chain.request("eth_mine_bitcoin")["error"]["code"] == -32601


def _body(devnet, text: bytes):
    return handle_body(devnet, text)


def test_malformed_and_invalid_requests_get_their_standard_codes(tmp_path):
    devnet = Devnet(tmp_path)
    assert _body(devnet, b"{not json")["error"]["code"] == -32700
    assert _body(devnet, b"[]")["error"]["code"] == -32600
    assert _body(devnet, b'{"id": 1, "method": "eth_chainId"}')["error"]["code"] == -32600
    assert _body(devnet, b'{"jsonrpc": "2.0", "id": 1, "method": 5}')["error"]["code"] == -32600
    too_many = json.dumps([{"jsonrpc": "2.0", "id": i, "method": "eth_chainId"}
                           for i in range(MAX_BATCH + 1)]).encode()
    assert _body(devnet, too_many)["error"]["code"] == -32600
    assert _body(devnet, b'{"jsonrpc": "2.0", "method": "eth_chainId"}') is None  # notification


def test_a_batch_answers_every_call_in_order(tmp_path):
    devnet = Devnet(tmp_path)
    batch = [{"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"},
             {"jsonrpc": "2.0", "id": 2, "method": "no_such_method"},
             {"jsonrpc": "2.0", "id": 3, "method": "eth_blockNumber", "params": []},
             "not a call"]
    answers = _body(devnet, json.dumps(batch).encode())
    assert [a.get("id") for a in answers] == [1, 2, 3, None]
    assert answers[0]["result"] == "0x539" and answers[2]["result"] == "0x0"
    assert answers[1]["error"]["code"] == -32601 and answers[3]["error"]["code"] == -32600
