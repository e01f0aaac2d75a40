"""The code at a registry address must be a released ModelRegistry: proxies and look-alikes are refused."""

import pytest

from modelreg.chain.client import INTERFACE_VERSION, RegistryClient
from modelreg.contracts.artifact import load_artifact
from modelreg.contracts.released import RELEASED, code_hash, version_of_code
from modelreg.errors import RegistryCodeUnknown


def _deploy(registry: RegistryClient, init_code: bytes) -> str:
    w3, signer = registry.w3, registry.signer
    tx = {"from": signer.address, "data": "0x" + init_code.hex(), "gas": 300_000, "chainId": w3.eth.chain_id,
          "nonce": w3.eth.get_transaction_count(signer.address, "pending"),
          "maxFeePerGas": 2 * w3.eth.gas_price + 10**9, "maxPriorityFeePerGas": 10**9}
    receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(signer.sign_transaction(tx).raw_transaction))
    return receipt["contractAddress"]


def minimal_proxy(implementation: str) -> bytes:
    """EIP-1167: init code deploying a runtime that DELEGATECALLs everything to `implementation`."""
    runtime = (bytes.fromhex("363d3d373d3d3d363d73") + bytes.fromhex(implementation[2:])
               + bytes.fromhex("5af43d82803e903d91602b57fd5bf3"))
    return bytes.fromhex("3d602d80600a3d3981f3") + runtime


def upgradeable_proxy(implementation: str) -> bytes:
    """A proxy whose implementation is read from storage slot 0 (set by the constructor): the shape of
    an upgradeable proxy, whose owner can swap the logic under its users."""
    runtime = bytes.fromhex(
        "365f5f37"  # CALLDATACOPY(0, 0, CALLDATASIZE)
        "5f5f365f5f545af4"  # DELEGATECALL(GAS, SLOAD(0), 0, CALLDATASIZE, 0, 0)
        "3d5f5f3e"  # RETURNDATACOPY(0, 0, RETURNDATASIZE)
        "601657"  # JUMPI to 0x16 on success
        "3d5ffd"  # REVERT(0, RETURNDATASIZE)
        "5b3d5ff3")  # JUMPDEST RETURN(0, RETURNDATASIZE)
    constructor = (b"\x73" + bytes.fromhex(implementation[2:]) + bytes.fromhex("5f55")  # SSTORE(0, impl)
                   + bytes([0x60, len(runtime), 0x60, 33, 0x5F, 0x39, 0x60, len(runtime), 0x5F, 0xF3]))
    assert len(constructor) == 33
    return constructor + runtime


def test_the_released_table_holds_the_committed_artifacts_code():
    code = bytes.fromhex(load_artifact()["deployedBytecode"][2:])
    assert RELEASED[INTERFACE_VERSION] == code_hash(code)
    assert version_of_code(code) == INTERFACE_VERSION
    assert version_of_code(code + b"\x00") is None


@pytest.mark.parametrize("proxy, found", [(minimal_proxy, "an EIP-1167 minimal proxy to 0x"),
                                          (upgradeable_proxy, "it uses DELEGATECALL: a proxy")],
                         ids=["eip1167", "upgradeable"])
def test_a_proxy_that_answers_like_the_registry_is_refused(registry, proxy, found):
    address = _deploy(registry, proxy(registry.address))
    through_proxy = registry.w3.eth.contract(address=address, abi=load_artifact()["abi"])
    assert through_proxy.functions.version().call() == INTERFACE_VERSION  # what the old check trusted
    with pytest.raises(RegistryCodeUnknown, match=f"the code at {address} on chain \\d+ is not a released "
                                                  f"ModelRegistry: \\d+ bytes hashing to 0x[0-9a-f]{{64}} \\({found}"):
        RegistryClient.at(registry.w3, None, address)


def test_the_real_registry_is_still_read(registry):
    assert RegistryClient.at(registry.w3, None, registry.address).address == registry.address
