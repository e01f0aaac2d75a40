"""Deployments recorded per chain id, and finding the registry again from them."""

import json

import pytest

from modelreg.chain import deployments
from modelreg.chain.client import RegistryClient, connect, deployment_block
from modelreg.chain.deployments import Deployment
from modelreg.errors import (
    ChainIdMismatch,
    ChainUnavailable,
    ConfigInvalid,
    ContractNotDeployed,
    DeploymentNotRecorded,
)


def _deployment(n: int, block: int) -> Deployment:
    return Deployment(address="0x" + f"{n:02x}" * 20, block=block, tx="0x" + f"{n:02x}" * 32,
                      deployer="0x" + "22" * 20)


def test_a_recorded_deployment_is_found_by_chain_id(tmp_path):
    one = Deployment(address="0x" + "11" * 20, block=3, tx="0x" + "ab" * 32, deployer="0x" + "22" * 20)
    other = Deployment(address="0x" + "33" * 20, block=9, tx="0x" + "cd" * 32, deployer="0x" + "44" * 20)
    deployments.record(tmp_path, 31337, one)
    deployments.record(tmp_path, 1, other)
    assert deployments.lookup(tmp_path, 31337) == one
    assert deployments.lookup(tmp_path, 1) == other
    data = json.loads((tmp_path / "deployments.json").read_text())
    assert data["31337"]["ModelRegistry"] == {"address": one.address, "block": 3, "tx": one.tx,
                                              "deployer": one.deployer}
    assert [p.name for p in tmp_path.iterdir()] == ["deployments.json"]  # no temporary file left


def test_a_chain_without_a_record_is_named_with_the_file(tmp_path):
    with pytest.raises(DeploymentNotRecorded, match="no ModelRegistry is recorded for chain 5 in .*deployments.json"):
        deployments.lookup(tmp_path, 5)


def test_recording_another_registry_keeps_the_earlier_ones_with_their_blocks(tmp_path):
    first, second, third = _deployment(1, block=3), _deployment(2, block=7), _deployment(3, block=9)
    for d in (first, second, third):
        deployments.record(tmp_path, 1337, d)
    deployments.record(tmp_path, 1337, third)  # recording the same one again adds nothing
    assert deployments.lookup(tmp_path, 1337) == third
    assert deployments.recorded(tmp_path, 1337) == [first, second, third]
    data = json.loads((tmp_path / "deployments.json").read_text())
    assert [e["block"] for e in data["1337"]["ModelRegistry.earlier"]] == [3, 7]
    assert deployments.recorded(tmp_path, 5) == []


def test_a_corrupt_record_file_is_named(tmp_path):
    (tmp_path / "deployments.json").write_text("{")
    with pytest.raises(ConfigInvalid, match="deployments.json is not valid JSON"):
        deployments.lookup(tmp_path, 5)


def test_a_deployment_made_with_a_home_is_found_again(chain, tmp_path):
    deployed = RegistryClient.deploy(chain.w3, chain.signers[0], home=tmp_path)
    found = RegistryClient.from_home(chain.w3, None, tmp_path)
    assert (found.address, found.from_block) == (deployed.address, deployed.from_block)
    recorded = deployments.lookup(tmp_path, chain.w3.eth.chain_id)
    assert recorded.deployer == chain.signers[0].address


def test_the_deployment_block_is_found_on_the_node(chain, registry):
    assert registry.from_block > 0
    registry.register_model("later")  # the deployment is no longer the newest block
    assert chain.w3.eth.block_number > registry.from_block
    assert deployment_block(chain.w3, registry.address) == registry.from_block


def test_an_address_without_code_gives_block_zero_to_search_from(chain):
    assert deployment_block(chain.w3, "0x" + "00" * 19 + "77") == 0


def test_a_recorded_address_without_code_says_the_chain_was_reset(chain, tmp_path):
    chain_id = chain.w3.eth.chain_id
    deployments.record(tmp_path, chain_id, Deployment(address="0x" + "00" * 19 + "99", block=0,
                                                      tx="0x" + "00" * 32, deployer="0x" + "00" * 20))
    with pytest.raises(ContractNotDeployed, match=f"recorded for chain {chain_id} .* has no code; the chain "
                                                  "was reset"):
        RegistryClient.from_home(chain.w3, None, tmp_path)


def test_connecting_checks_the_chain_id(chain):
    if chain.rpc_url is None:
        pytest.skip("an in-process chain has no URL")
    assert connect(chain.rpc_url, chain.w3.eth.chain_id).eth.block_number >= 0
    with pytest.raises(ChainIdMismatch, match=f"serves chain {chain.w3.eth.chain_id}, not the configured chain 1"):
        connect(chain.rpc_url, expected_chain_id=1)


def test_an_endpoint_that_does_not_answer_is_unavailable():
    with pytest.raises(ChainUnavailable, match="cannot reach the JSON-RPC endpoint http://127.0.0.1:9"):
        connect("http://127.0.0.1:9")
