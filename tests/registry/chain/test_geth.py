"""What only a real node shows: geth --dev seals a block every 2 s, prices gas by EIP-1559 and caps
eth_getLogs ranges (the session's geth, to 3 blocks, as public endpoints cap them to thousands)."""

import time

import pytest

from modelreg.chain.client import RegistryClient
from modelreg.errors import TransactionFailed
from modelreg.service.audit import EventIndex
from tests.conftest import GETH_RANGE_LIMIT as RANGE_LIMIT

pytestmark = pytest.mark.slow

CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"


def root(n: int) -> str:
    return "0x" + n.to_bytes(32, "big").hex()


@pytest.fixture(scope="module")
def registry(geth):
    return RegistryClient.deploy(geth.w3, geth.signers[0])


def next_block(w3) -> int:
    """Wait until a new block is sealed; return its number. The next one is then ~2 s away."""
    start = w3.eth.block_number
    while (n := w3.eth.block_number) == start:
        time.sleep(0.05)
    return n


def test_a_commit_returns_only_once_a_later_block_holds_it(geth, registry):
    model, _ = registry.register_model("slow-blocks")
    sent_at = next_block(geth.w3)
    version, receipt = registry.commit_version(model, root(1), tensor_count=1, manifest_cid=CID)
    assert receipt["blockNumber"] > sent_at  # not mined on arrival: the client waited for the block
    assert registry.get_version(model, version).block_number == receipt["blockNumber"]


def test_transactions_pay_eip1559_fees(geth, registry):
    _, receipt = registry.register_model("fees")
    tx = geth.w3.eth.get_transaction(receipt["transactionHash"])
    base_fee = geth.w3.eth.get_block(receipt["blockNumber"])["baseFeePerGas"]
    assert tx["type"] == 2
    assert receipt["effectiveGasPrice"] == min(tx["maxFeePerGas"], base_fee + tx["maxPriorityFeePerGas"])


def test_a_commit_not_mined_in_time_fails_clearly_and_is_found_by_its_root_once_mined(geth, registry):
    model, _ = registry.register_model("impatient")
    impatient = RegistryClient(geth.w3, registry.address, geth.signers[0], from_block=registry.from_block,
                               receipt_timeout=0.2)
    next_block(geth.w3)  # the commit is sent early in a 2 s block period, far from the next seal
    with pytest.raises(TransactionFailed, match=r"transaction 0x[0-9a-f]{64} was not mined within 0 s"):
        impatient.commit_version(model, root(7), tensor_count=1, manifest_cid=CID)
    deadline = time.monotonic() + 30
    while (found := registry.find_version_by_root(model, root(7))) is None:
        assert time.monotonic() < deadline, "the sent commit was never mined"
        time.sleep(0.5)
    assert found["version"] == 1


def test_logs_wider_than_the_nodes_range_limit_are_read_in_pieces(geth, registry):
    model, _ = registry.register_model("wide-range")
    versions = [registry.commit_version(model, root(100 + i), tensor_count=1, manifest_cid=CID)[0] for i in range(3)]
    assert geth.w3.eth.block_number - registry.from_block > RANGE_LIMIT
    with pytest.raises(Exception, match=f"exceed maximum block range {RANGE_LIMIT}"):
        geth.w3.eth.get_logs({"address": registry.address, "fromBlock": registry.from_block})

    assert registry.get_version(model, versions[0]).weights_root == root(100)
    assert registry.find_version_by_root(model, root(102))["version"] == versions[2]
    committed = [e for e in registry.events() if e["event"] == "VersionCommitted"
                 and e["args"]["modelId"] == model]
    assert [e["args"]["version"] for e in committed] == versions


def test_the_audit_index_reads_the_whole_chain_through_the_range_limit(geth, registry, tmp_path):
    model, _ = registry.register_model("audited")
    registry.commit_version(model, root(200), tensor_count=1, manifest_cid=CID)
    events = EventIndex.of(tmp_path, registry).events()
    assert [e["event"] for e in events if e["args"].get("modelId") == model] == \
        ["ModelRegistered", "VersionCommitted"]
