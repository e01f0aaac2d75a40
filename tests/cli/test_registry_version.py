"""A contract that is not a ModelRegistry of this interface version is refused by name, with what to do."""

import pytest

from tests.cli.conftest import Modelreg
from tests.cli.test_errors import fails
from tests.conftest import anvil_chain

# Init code that deploys a one-byte runtime (STOP): code at the address, but no version().
NOT_A_REGISTRY = "0x6001600c60003960016000f300"


@pytest.fixture(scope="module")
def stranger_contract():
    with anvil_chain() as chain:
        w3, owner = chain.w3, chain.signers[0]
        tx = {"from": owner.address, "data": NOT_A_REGISTRY, "gas": 100_000, "chainId": w3.eth.chain_id,
              "nonce": w3.eth.get_transaction_count(owner.address), "maxFeePerGas": 10**10,
              "maxPriorityFeePerGas": 10**9}
        receipt = w3.eth.wait_for_transaction_receipt(
            w3.eth.send_raw_transaction(owner.sign_transaction(tx).raw_transaction))
        yield chain.rpc_url, receipt["contractAddress"]


def test_reading_a_contract_without_the_interface_version_says_what_to_do(stranger_contract, tmp_path):
    url, address = stranger_contract
    fails(Modelreg(tmp_path / "home"), "audit", "models", "--rpc-url", url, "--registry", address,
          match=rf"the code at {address} on chain \d+ is not a released ModelRegistry: 1 bytes hashing to "
                r"0x[0-9a-f]{64}; modelreg reads only the code it built \(released: v2, v3\); run `modelreg deploy --force` .* or pass --registry")
