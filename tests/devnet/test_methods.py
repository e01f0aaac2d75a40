"""The devnet's JSON-RPC methods that ethers v6 and viem call beyond the basics: polling filters,
block receipts, transactions by position, node status, access lists and eth_call state overrides."""

from eth_utils import keccak

from tests.devnet.conftest import ACCOUNTS, EVENT, word

# Returns sload(0) of its own storage: PUSH0 SLOAD PUSH0 MSTORE PUSH1 32 PUSH0 RETURN.
RETURN_SLOT_0 = "0x5f545f5260205ff3"
# Returns its own balance: SELFBALANCE PUSH0 MSTORE PUSH1 32 PUSH0 RETURN.
RETURN_BALANCE = "0x475f5260205ff3"
SOMEWHERE = "0x" + "5e" * 20


def test_a_log_filter_reports_each_new_matching_log_once(chain):
    contract = chain.deploy()
    chain.emit(contract, 1)  # before the filter: never reported as a change
    chain.emit(contract, 2)  # before the filter, but inside its range: only eth_getFilterLogs has it
    filter_id = chain("eth_newFilter", {"fromBlock": "0x0", "address": contract, "topics": [EVENT, word(2)]})
    assert chain("eth_getFilterChanges", filter_id) == []
    chain.emit(contract, 2)
    chain.emit(contract, 3)  # does not match topic 1
    (log,) = chain("eth_getFilterChanges", filter_id)
    assert log["topics"][1] == word(2)
    assert chain("eth_getFilterChanges", filter_id) == []
    earlier, latest = chain("eth_getFilterLogs", filter_id)
    assert latest == log and earlier["blockNumber"] < log["blockNumber"]


def test_a_log_filter_stops_at_its_to_block(chain):
    contract = chain.deploy()
    head = int(chain("eth_blockNumber"), 16)
    filter_id = chain("eth_newFilter", {"address": contract, "toBlock": hex(head + 1)})
    chain.emit(contract, 1)
    chain.emit(contract, 2)
    assert [log["topics"][1] for log in chain("eth_getFilterChanges", filter_id)] == [word(1)]


def test_a_block_filter_reports_each_new_block_hash_once(chain):
    filter_id = chain("eth_newBlockFilter")
    receipts = [chain.transact(to=SOMEWHERE, value=1) for _ in range(2)]
    assert chain("eth_getFilterChanges", filter_id) == [r["blockHash"] for r in receipts]
    assert chain("eth_getFilterChanges", filter_id) == []


def test_an_uninstalled_or_unknown_filter_is_not_found(chain):
    filter_id = chain("eth_newBlockFilter")
    assert chain("eth_uninstallFilter", filter_id) is True
    assert chain("eth_uninstallFilter", filter_id) is False
    error = chain.request("eth_getFilterChanges", filter_id)["error"]
    assert (error["code"], error["message"]) == (-32000, "filter not found")


def test_a_filter_by_block_hash_is_refused(chain):
    block_hash = chain("eth_getBlockByNumber", "latest", False)["hash"]
    error = chain.request("eth_newFilter", {"blockHash": block_hash})["error"]
    assert error["code"] == -32602 and "not a blockHash" in error["message"]


def test_block_receipts_are_each_transactions_receipt(chain):
    contract = chain.deploy()
    receipt = chain.emit(contract, 9)
    assert chain("eth_getBlockReceipts", receipt["blockNumber"]) == [receipt]
    assert chain("eth_getBlockReceipts", "0x999") is None


def test_transactions_are_found_by_block_and_position(chain):
    receipt = chain.transact(to=SOMEWHERE, value=5)
    by_hash = chain("eth_getTransactionByHash", receipt["transactionHash"])
    assert chain("eth_getTransactionByBlockNumberAndIndex", receipt["blockNumber"], "0x0") == by_hash
    assert chain("eth_getTransactionByBlockHashAndIndex", receipt["blockHash"], "0x0") == by_hash
    assert chain("eth_getTransactionByBlockNumberAndIndex", receipt["blockNumber"], "0x1") is None
    assert chain("eth_getBlockTransactionCountByNumber", receipt["blockNumber"]) == "0x1"
    assert chain("eth_getBlockTransactionCountByHash", receipt["blockHash"]) == "0x1"
    assert chain("eth_getBlockTransactionCountByNumber", "0x0") == "0x0"


def test_node_status_answers(chain):
    assert chain("eth_syncing") is False
    assert chain("net_listening") is True
    assert chain("web3_sha3", "0x68656c6c6f") == "0x" + keccak(b"hello").hex()
    assert chain("eth_coinbase") == "0x" + "00" * 20


def test_an_access_list_names_the_slots_and_accounts_a_call_touches(chain):
    contract = chain.deploy()
    answer = chain("eth_createAccessList", {"from": ACCOUNTS[0].address, "to": contract, "data": word(7)})
    assert answer["accessList"] == [{"address": contract.lower(), "storageKeys": [word(0)]}]
    estimate = int(chain("eth_estimateGas", {"from": ACCOUNTS[0].address, "to": contract, "data": word(7)}), 16)
    assert 21_000 < int(answer["gasUsed"], 16) <= estimate


def test_a_reverting_call_gets_an_access_list_with_the_error(chain):
    contract = chain.deploy()
    answer = chain("eth_createAccessList", {"to": contract})
    assert answer["error"] == "execution reverted"


def test_eth_call_runs_against_overridden_code_storage_and_balance(chain):
    call = {"to": SOMEWHERE, "data": "0x"}
    assert chain("eth_call", call, "latest") == "0x"
    assert chain("eth_call", call, "latest", {SOMEWHERE: {"code": RETURN_SLOT_0,
                                                           "state": {word(0): word(42)}}}) == word(42)
    assert chain("eth_call", call, "latest", {SOMEWHERE: {"code": RETURN_BALANCE,
                                                           "balance": "0x1234"}}) == word(0x1234)
    assert chain("eth_getCode", SOMEWHERE, "latest") == "0x"  # nothing was written


def test_state_diff_patches_storage_and_state_replaces_it(chain):
    contract = chain.deploy()
    chain.emit(contract, 5)  # slot 0 = 5
    reader = {contract: {"code": RETURN_SLOT_0}}
    assert chain("eth_call", {"to": contract}, "latest", reader) == word(5)
    patched = {contract: {"code": RETURN_SLOT_0, "stateDiff": {word(1): word(9)}}}
    assert chain("eth_call", {"to": contract}, "latest", patched) == word(5)
    replaced = {contract: {"code": RETURN_SLOT_0, "state": {word(1): word(9)}}}
    assert chain("eth_call", {"to": contract}, "latest", replaced) == word(0)


def test_a_sender_nonce_override_does_not_break_the_call(chain):
    overrides = {ACCOUNTS[0].address: {"nonce": "0x10"}, SOMEWHERE: {"code": RETURN_BALANCE}}
    assert chain("eth_call", {"from": ACCOUNTS[0].address, "to": SOMEWHERE}, "latest", overrides) == word(0)


def test_a_malformed_state_override_is_invalid_params(chain):
    for overrides in ({SOMEWHERE: {"colour": "red"}}, {SOMEWHERE: {"state": {}, "stateDiff": {}}},
                      {"0x12": {}}, [1]):
        error = chain.request("eth_call", {"to": SOMEWHERE}, "latest", overrides)["error"]
        assert error["code"] == -32602, overrides
