"""ethers v6 and viem, from npm, run the same steps against the devnet, anvil and geth side by side.

The steps (tests/js/rpc_clients.mjs) are what those libraries call on their own: deployments and
transactions, contract event filters and block filters, block receipts, transactions by position,
eth_call with a state override, access lists, and the node-status methods.
"""

import pytest

from modelreg.contracts.artifact import load_artifact
from tests.conftest import CHAIN_FACTORIES, DEV_KEYS
from tests.nodejs import run_node

pytestmark = pytest.mark.slow

CHAINS = ("devnet", "anvil", "geth")
# geth 1.17 no longer serves eth_coinbase (method not found); anvil and the devnet do.
NOT_ON = {("geth", "coinbase")}
FORTY_TWO = "0x" + "00" * 31 + "2a"


@pytest.fixture(scope="module")
def answers(geth) -> dict:
    """Each library's step results on each chain: {chain: {library: {step: result}}}."""
    artifact = load_artifact()

    def run(chain):  # every chain funds DEV_KEYS
        return run_node("rpc_clients.mjs", {"url": chain.rpc_url, "key": "0x" + DEV_KEYS[0].hex(),
                                            "abi": artifact["abi"], "bytecode": artifact["bytecode"]})
    results = {"geth": run(geth)}
    for name in ("devnet", "anvil"):
        with CHAIN_FACTORIES[name]() as chain:
            results[name] = run(chain)
    return results


@pytest.mark.parametrize("library", ["ethers", "viem"])
def test_every_step_succeeds_on_every_chain(answers, library):
    failed = {(chain, step): r["error"] for chain in CHAINS
              for step, r in answers[chain][library].items() if not r["ok"]}
    assert set(failed) == NOT_ON, failed


@pytest.mark.parametrize("library", ["ethers", "viem"])
def test_every_chain_gives_the_same_answers(answers, library):
    def values(chain):
        return {step: r.get("value") for step, r in answers[chain][library].items()
                if step != "chain id" and (chain, step) not in NOT_ON}
    assert values("devnet") == values("anvil")
    assert values("geth") == {step: v for step, v in values("devnet").items() if ("geth", step) not in NOT_ON}
    assert values("devnet")["state override"] == FORTY_TWO
    assert values("devnet")["eip-1559 fees"] == 2
