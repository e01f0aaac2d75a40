"""The same job against a real anvil node through --rpc-url: deploy, train and register, verify, audit."""

import json

import pytest

from tests.cli.conftest import FAST_RUN, Modelreg
from tests.conftest import anvil_chain

pytestmark = pytest.mark.slow


def test_train_register_verify_and_audit_on_anvil(tmp_path, small_data):
    modelreg = Modelreg(tmp_path / "home")
    with anvil_chain() as chain:
        rpc = ["--rpc-url", chain.rpc_url]
        deployed = json.loads(modelreg("deploy", *rpc, "--json").output)
        assert deployed["chain_id"] == 31337
        result = modelreg("train-and-register", "--data", small_data, "--model", "anvil-gpt", *FAST_RUN,
                          *rpc, "--json")
        versions = json.loads(result.output)["versions"]
        assert [v["version"] for v in versions] == [1, 2]

        last = tmp_path / "home" / "runs" / "anvil-gpt" / "ckpt-000006.safetensors"
        verdict = json.loads(modelreg("verify", last, "--model", "anvil-gpt", *rpc, "--json").output)
        assert (verdict["status"], verdict["version"]) == ("VERIFIED", 2)

        history = json.loads(modelreg("audit", "history", "anvil-gpt", *rpc, "--json").output)
        assert [v["tx"] for v in history] == [v["tx"] for v in versions]
        assert not (tmp_path / "home" / "devnet").exists()  # the embedded devnet was never started
