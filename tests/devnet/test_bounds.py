"""The devnet refuses what would brick it, and a refused request changes nothing on disk."""

import json
import subprocess
import sys
import urllib.request

from modelreg.devnet.chain import MAX_TIMESTAMP, Devnet
from modelreg.devnet.server import handle_body
from tests.devnet.conftest import Client


def _open(directory):
    devnet = Devnet(directory)
    return devnet, Client(lambda payload: handle_body(devnet, json.dumps(payload).encode()))


def _error(client, method, *params) -> str:
    answer = client.request(method, *params)
    assert "result" not in answer, answer
    return answer["error"]["message"]


def _head_time(client) -> int:
    return int(client("eth_getBlockByNumber", "latest", False)["timestamp"], 16)


def test_time_jumps_past_what_the_chain_stores_are_refused_and_transactions_still_work_after_a_restart(tmp_path):
    devnet, chain = _open(tmp_path)
    address = chain.deploy()
    assert "9999-12-31" in _error(chain, "evm_increaseTime", hex(2**70))
    assert "nothing was changed" in _error(chain, "evm_setNextBlockTimestamp", hex(MAX_TIMESTAMP + 1))
    assert "after the head block" in _error(chain, "evm_setNextBlockTimestamp", hex(_head_time(chain)))
    assert "9999-12-31" in _error(chain, "evm_mine", hex(2**64))
    devnet.close()

    devnet, chain = _open(tmp_path)  # a restart: the refused offsets were never stored
    assert chain.emit(address, 7)["status"] == "0x1"
    assert _head_time(chain) < MAX_TIMESTAMP
    devnet.close()


def test_set_next_block_timestamp_sets_the_next_block_and_later_blocks_count_on(chain):
    when = _head_time(chain) + 86_400
    assert chain("evm_setNextBlockTimestamp", hex(when)) is None
    chain("evm_mine")
    assert _head_time(chain) == when
    chain("evm_mine")
    assert when < _head_time(chain) < when + 60


def test_a_deeply_nested_body_is_a_parse_error_not_a_crash(chain):
    devnet = Devnet.__new__(Devnet)  # never reached: the body is refused before any call
    answer = handle_body(devnet, b"[" * 80_000)
    assert answer["error"]["code"] == -32700
    assert "nests 80000 levels deep" in answer["error"]["message"]
    assert chain("eth_blockNumber") == "0x0"


def test_the_devnet_process_keeps_py_evms_recursion_limit_not_py_eccs():
    code = "import sys, modelreg.devnet.server; print(sys.getrecursionlimit())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert int(out) <= 12_288


def test_a_deep_body_over_http_gets_an_answer_and_the_server_keeps_serving(http, served):

    request = urllib.request.Request(served[1].url, data=b"[" * 80_000 + b"]" * 80_000,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.loads(response.read())
    assert answer["error"]["code"] == -32700
    assert http("eth_chainId") == "0x539"
