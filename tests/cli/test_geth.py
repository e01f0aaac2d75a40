"""The same job against a real geth --dev node through --rpc-url: deploy, train and register, verify, audit.

geth seals a block every 2 s (nothing is mined on arrival) and caps eth_getLogs at 3-block ranges, so
every command must wait for receipts and read logs in pieces.
"""

import json

import pytest

from tests.cli.conftest import FAST_RUN, Modelreg
from tests.conftest import DEV_KEYS, GETH_RANGE_LIMIT

pytestmark = pytest.mark.slow


def test_train_register_verify_and_audit_on_geth(geth, tmp_path, small_data, monkeypatch):
    modelreg = Modelreg(tmp_path / "home")
    monkeypatch.setenv("MODELREG_PRIVATE_KEY", "0x" + DEV_KEYS[0].hex())
    rpc = ["--rpc-url", geth.rpc_url]
    signer = ["--signer", "env"]
    deployed = json.loads(modelreg("deploy", *rpc, *signer, "--json").output)
    assert deployed["chain_id"] == 1337
    result = modelreg("train-and-register", "--data", small_data, "--model", "geth-gpt", *FAST_RUN,
                      *rpc, *signer, "--json")
    versions = json.loads(result.output)["versions"]
    assert [v["version"] for v in versions] == [1, 2]

    last = tmp_path / "home" / "runs" / "geth-gpt" / "ckpt-000006.safetensors"
    verdict = json.loads(modelreg("verify", last, "--model", "geth-gpt", *rpc, "--json").output)
    assert (verdict["status"], verdict["version"]) == ("VERIFIED", 2)

    history = json.loads(modelreg("audit", "history", "geth-gpt", *rpc, "--json").output)
    assert [v["tx"] for v in history] == [v["tx"] for v in versions]
    assert geth.w3.eth.block_number - deployed["block"] > GETH_RANGE_LIMIT  # the audit read in pieces
    assert not (tmp_path / "home" / "devnet").exists()  # the embedded devnet was never started
