"""TxSender on a real geth --dev whose miner raises its price floor mid-run: the node refuses the transaction
as underpriced, and it is signed again with the same nonce and higher fees, a minimum step at a time."""

import pytest

from modelreg.chain.client import RegistryClient
from modelreg.chain.sending import ChainOps
from tests.conftest import geth_chain

pytestmark = pytest.mark.slow


def test_a_transaction_below_the_nodes_new_price_floor_is_bumped_until_accepted():
    with geth_chain("--http.api", "eth,net,web3,miner", "--dev.period", "1") as geth:
        registry = RegistryClient.deploy(geth.connect(), geth.signers[0])
        told = []
        registry.ops = ChainOps(resend_after=1.5, poll=0.1, notify=told.append)
        tip = int(geth.w3.provider.make_request("eth_maxPriorityFeePerGas", [])["result"], 16)
        floor = tip * 3 + 2  # two or more minimum replacement steps above what the sender offers
        assert geth.w3.provider.make_request("miner_setGasPrice", [hex(floor)])["result"] is True
        _, receipt = registry.register_model("floor")
        tx = geth.w3.eth.get_transaction(receipt["transactionHash"])
        assert tx["maxPriorityFeePerGas"] >= floor
        assert registry.sender.stats.bumps >= 2 and len(told) == registry.sender.stats.bumps
        assert all("refused by the node as underpriced; sent again as 0x" in m for m in told)
        assert registry.model_count() == 1
