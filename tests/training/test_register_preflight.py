"""train-and-register's preflight reads the chain through the client: a node that stopped answering
is ChainUnavailable, as its comment promises, not a bare connection error from requests."""

import pytest

from modelreg.chain.client import RegistryClient
from modelreg.errors import ChainUnavailable
from modelreg.service.config import Config
from modelreg.service.connect import Registry
from modelreg.training.register import preflight
from tests.conftest import anvil_chain


def test_preflight_against_a_stopped_node_is_chain_unavailable(tmp_path):
    with anvil_chain() as chain:
        client = RegistryClient.deploy(chain.w3, chain.signers[0])  # web3's own provider, no retries
        registry = Registry(tmp_path, Config(), rpc_url=chain.rpc_url, chain_id=31337, embedded_chain=False,
                            client=client)
        preflight(registry, "gpt")  # a funded signer and a new model: nothing to refuse
    with pytest.raises(ChainUnavailable, match="stopped answering"):
        preflight(registry, "gpt")
