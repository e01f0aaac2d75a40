"""TxSender on a real anvil: dropped transactions, fee spikes, the fee cap, reorgs and the nonce lock."""

import re
import threading
import time

import pytest

from modelreg.chain.client import RegistryClient
from modelreg.chain.sending import GWEI, ChainOps
from modelreg.errors import FeeCapReached
from tests.conftest import anvil_chain


@pytest.fixture
def anvil():
    with anvil_chain() as chain:
        yield chain


@pytest.fixture
def registry(anvil):
    return RegistryClient.deploy(anvil.connect(), anvil.signers[0])


def rpc(anvil, method, *params):
    reply = anvil.w3.provider.make_request(method, list(params))
    assert "error" not in reply, reply
    return reply["result"]


def pending_hashes(anvil) -> list[str]:
    content = rpc(anvil, "txpool_content")["pending"]
    return [tx["hash"] for by_nonce in content.values() for tx in by_nonce.values()]


def until(condition, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
    return found


def in_background(fn):
    """Run fn on a thread; the returned function joins it and gives its result or raises its error."""
    out = {}

    def run():
        try:
            out["result"] = fn()
        except BaseException as e:  # handed to the test
            out["error"] = e

    thread = threading.Thread(target=run)
    thread.start()

    def join():
        thread.join(60)
        if "error" in out:
            raise out["error"]
        return out["result"]
    return join


def test_a_dropped_transaction_is_sent_again_and_mined_once(anvil, registry):
    told = []
    registry.ops = ChainOps(resend_after=60, poll=0.05, notify=told.append)
    rpc(anvil, "evm_setAutomine", False)
    done = in_background(lambda: registry.register_model("dropped"))
    (first,) = until(lambda: pending_hashes(anvil))
    rpc(anvil, "anvil_dropTransaction", first)
    assert until(lambda: pending_hashes(anvil)) == [first]  # the very same transaction, sent again
    rpc(anvil, "evm_mine")
    model_id, receipt = done()
    assert (model_id, registry.model_count()) == (1, 1)
    assert told == [f"transaction {first} (register model 'dropped') was dropped by the node; "
                    "sending it again (nonce 1)"]
    assert registry.sender.stats.resends == 1 and len(registry.sender.stats.drop_to_resend) == 1


def test_a_transaction_stuck_behind_a_fee_spike_is_sent_again_with_higher_fees(anvil, registry):
    told = []
    registry.ops = ChainOps(resend_after=0.3, poll=0.05, notify=told.append)
    rpc(anvil, "evm_setAutomine", False)
    done = in_background(lambda: registry.register_model("spiked"))
    (stuck,) = until(lambda: pending_hashes(anvil))
    spike = 100 * GWEI
    rpc(anvil, "anvil_setNextBlockBaseFeePerGas", hex(spike))
    rpc(anvil, "evm_mine")  # a block at the spiked base fee: the transaction's max fee is below it
    assert anvil.w3.eth.get_block("latest")["transactions"] == []
    (bumped,) = until(lambda: [h for h in pending_hashes(anvil) if h != stuck])
    rpc(anvil, "evm_mine")
    _, receipt = done()
    assert receipt["transactionHash"].to_0x_hex() == bumped
    tx = anvil.w3.eth.get_transaction(bumped)
    assert tx["nonce"] == 1 and tx["maxFeePerGas"] > spike  # the same nonce: a replacement
    assert registry.sender.stats.bumps == 1 and registry.model_count() == 1
    # anvil evicts a transaction the base fee has priced out, so the sender may see a drop first.
    assert re.match(rf"transaction {stuck} \(register model 'spiked'\) (not mined in 0\.3 s|refused by the node "
                    rf"as underpriced); sent again as {bumped} with max fee", told[-1])
    assert told[:-1] in ([], [f"transaction {stuck} (register model 'spiked') was dropped by the node; "
                              "sending it again (nonce 1)"])


def test_a_fee_spike_past_the_cap_fails_naming_the_cap(anvil, registry):
    registry.ops = ChainOps(resend_after=0.2, poll=0.05, max_fee_gwei=20)
    rpc(anvil, "evm_setAutomine", False)
    done = in_background(lambda: registry.register_model("capped"))
    until(lambda: pending_hashes(anvil))
    rpc(anvil, "anvil_setNextBlockBaseFeePerGas", hex(100 * GWEI))
    rpc(anvil, "evm_mine")
    with pytest.raises(FeeCapReached, match=r"stuck at the fee cap of 20 gwei \(the base fee is 8[0-9.]* gwei\)"):
        done()
    assert registry.model_count() == 0


def test_a_commit_whose_block_is_reorged_out_is_sent_again_once_and_committed_once(anvil, registry):
    told = []
    registry.ops = ChainOps(confirmations=3, wait=True, poll=0.05, notify=told.append)
    done = in_background(lambda: registry.register_model("reorged"))
    # the reorg waits for the sender to have seen the receipt: before that, the transaction is just dropped
    first_block = until(lambda: next((e.block for e in list(registry.sender.ledger.values()) if e.block), None))
    rpc(anvil, "anvil_reorg", 1, [])  # the block holding the registration is replaced by an empty one
    until(lambda: registry.model_count())  # sent again: automine puts it in a new block
    assert registry.sender.stats.recommits == 1
    rpc(anvil, "anvil_mine", "0x2")
    _, receipt = done()
    assert receipt["blockNumber"] == first_block + 1
    assert registry.model_count() == 1
    assert len(told) == 1 and told[0].startswith(f"block {first_block} (0x")
    assert "left the canonical chain" in told[0] and "same nonce and parent" in told[0]


def test_two_senders_with_one_key_take_turns_through_the_lock_file(anvil, registry, tmp_path):
    other = RegistryClient(anvil.connect(), registry.address, anvil.signers[0], from_block=registry.from_block)
    for client in (registry, other):
        client.ops = ChainOps(poll=0.05, lock_dir=tmp_path)
    rpc(anvil, "evm_setAutomine", False)
    first = in_background(lambda: registry.register_model("first"))
    until(lambda: pending_hashes(anvil))
    second = in_background(lambda: other.register_model("second"))
    time.sleep(0.5)
    assert len(pending_hashes(anvil)) == 1  # the second waits for the lock, not for a nonce race
    rpc(anvil, "evm_mine")
    first()
    until(lambda: pending_hashes(anvil))
    rpc(anvil, "evm_mine")
    second()
    assert registry.model_count() == 2
    assert (tmp_path / f"nonce-{anvil.signers[0].address.lower()}.lock").exists()
