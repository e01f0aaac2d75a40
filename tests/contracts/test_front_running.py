"""A copier front-runs a commit on anvil, and `audit find-root` tells only what the chain proves.

anvil mines nothing until told (automine off); the copier reads the honest commit from the mempool
and sends the same weights root to its own model with a higher tip; the test mines as a tip-ordering
builder would, the copy in one block and the honest commit in the next.
find-root then lists the copier first, as the first on-chain commit, which is true, with both
committers' accounts and blocks in full, and claims no authorship.
"""

import json

import pytest

from modelreg.chain.client import RegistryClient
from tests.cli.conftest import Modelreg
from tests.conftest import anvil_chain

pytestmark = pytest.mark.slow

ROOT = bytes.fromhex("5e" * 32)
CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
NO_DATASET = (0, bytes(32), "0x" + "00" * 20)


def _send_commit(client: RegistryClient, model_id: int, content: tuple, tip: int) -> tuple[bytes, bytes]:
    """Sign and send a commitVersion without waiting for it to be mined: its hash and raw bytes."""
    w3, signer = client.w3, client.signer
    fn = client.contract.functions.commitVersion(model_id, client._registration(model_id)["nameHash"], content,
                                                 NO_DATASET, 0, 0, CID, client._history(model_id)[1].peaks)
    tx = fn.build_transaction({"from": signer.address, "nonce": w3.eth.get_transaction_count(signer.address),
                               "gas": 200_000, "maxPriorityFeePerGas": tip, "maxFeePerGas": 100 * 10**9})
    raw = signer.sign_transaction(tx).raw_transaction
    return w3.eth.send_raw_transaction(raw), raw


def test_a_front_runner_is_listed_as_the_first_on_chain_commit_and_nothing_more(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    with anvil_chain() as chain:
        w3 = chain.w3
        author, copier = chain.signers[0], chain.signers[1]
        honest = RegistryClient.deploy(w3, author, home)
        thief = RegistryClient.at(w3, copier, honest.address, from_block=honest.from_block)
        original, _ = honest.register_model("original")
        copycat, _ = thief.register_model("copycat")

        w3.provider.make_request("evm_setAutomine", [False])
        honest_tx, honest_raw = _send_commit(honest, original, (ROOT, 4, bytes(32)), tip=10**9)
        # The copier watches the mempool, takes the content of the pending commit, and outbids it.
        pending = w3.provider.make_request("txpool_content", [])["result"]["pending"]
        (seen,) = [tx for txs in pending.values() for tx in txs.values()]
        _, args = thief.contract.decode_function_input(seen["input"])
        c = args["content"]
        copied_tx, _ = _send_commit(thief, copycat, (c["weightsRoot"], c["tensorCount"], c["filesRoot"]),
                                    tip=50 * 10**9)
        # A builder that takes the higher tip first: the copy in one block, the honest commit in the next.
        w3.provider.make_request("anvil_dropTransaction", ["0x" + honest_tx.hex()])
        w3.provider.make_request("evm_mine", [])
        assert w3.eth.send_raw_transaction(honest_raw) == honest_tx
        w3.provider.make_request("evm_mine", [])
        w3.provider.make_request("evm_setAutomine", [True])

        copied, real = (w3.eth.get_transaction_receipt(h) for h in (copied_tx, honest_tx))
        assert copied["status"] == real["status"] == 1
        assert copied["blockNumber"] < real["blockNumber"]  # the copy was mined first

        modelreg = Modelreg(home)
        rpc = ["--rpc-url", chain.rpc_url]
        found = json.loads(modelreg("audit", "find-root", "0x" + ROOT.hex(), *rpc, "--json").output)
        assert [(v["name"], v["committer"], v["block"]) for v in found] == [
            ("copycat", copier.address, copied["blockNumber"]), ("original", author.address, real["blockNumber"])]
        assert all(isinstance(v["log_index"], int) for v in found)
        table = " ".join(modelreg("audit", "find-root", "0x" + ROOT.hex(), *rpc).output.split())
        assert "the first is the first on-chain commit" in table and "that names no author" in table
        assert "published" not in table
        assert table.index("copycat") < table.index("original")
