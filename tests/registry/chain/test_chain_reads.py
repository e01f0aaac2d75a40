"""What the other layers read of the chain itself (head, block hashes, balances, the gas price), through
the client, so that web3 stays in modelreg.chain and a node that stopped answering is ChainUnavailable."""

import pytest
from web3 import Web3

from modelreg.chain.client import RegistryClient, chain_id_of
from modelreg.errors import ChainUnavailable
from tests.conftest import _free_port, anvil_chain


def test_head_and_block_hashes_are_the_chains(registry, chain):
    head = registry.head()
    assert head >= 1  # the deployment is in a block
    registry.register_model("reads")
    assert registry.head() > head
    newest = registry.head()
    # each block names its parent's hash: the hashes read are the chain's own, not copies of one value
    assert registry.block_hash(newest - 1) == "0x" + bytes(chain.w3.eth.get_block(newest)["parentHash"]).hex()
    assert registry.block_hash(newest) != registry.block_hash(newest - 1)
    assert len(registry.block_hash(0)) == 66 and registry.block_hash(0) == registry.block_hash(0).lower()


def test_a_transaction_costs_the_balance_what_its_gas_cost(registry, chain):
    owner, stranger = chain.signers[0].address, chain.signers[1].address
    assert registry.gas_price() > 0
    before, theirs = registry.balance(owner), registry.balance(stranger.lower())  # any spelling of an address
    _, receipt = registry.register_model("paid-for")
    assert before - registry.balance(owner) == receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert registry.balance(stranger) == theirs


def _client_of_a_stopped_node() -> RegistryClient:
    with anvil_chain() as c:  # a real node, stopped when the block ends
        client = RegistryClient.deploy(c.w3, c.signers[0])
    return client


@pytest.fixture(scope="module")
def stopped() -> RegistryClient:
    return _client_of_a_stopped_node()


@pytest.mark.parametrize("read", [
    lambda c: c.head(), lambda c: c.block_hash(1), lambda c: c.balance(c.address), lambda c: c.gas_price(),
    lambda c: c.chain_id, lambda c: chain_id_of(c.w3),
], ids=["head", "block_hash", "balance", "gas_price", "chain_id", "chain_id_of"])
def test_every_read_of_a_stopped_node_is_chain_unavailable(stopped, read):
    with pytest.raises(ChainUnavailable, match="stopped answering"):
        read(stopped)


def test_a_closed_port_is_chain_unavailable_too():
    client = RegistryClient(Web3(Web3.HTTPProvider(f"http://127.0.0.1:{_free_port()}")),
                            "0x0000000000000000000000000000000000001234")
    with pytest.raises(ChainUnavailable):
        client.head()
