"""Confirmations on the command line, against a real anvil: commit reports them, --wait rides out a reorg,
verify refuses a version younger than --confirmations."""

import json
import re
import threading
import time

import numpy as np
import pytest
from safetensors.numpy import save_file

from tests.cli.conftest import Modelreg
from tests.conftest import anvil_chain


@pytest.fixture
def anvil():
    with anvil_chain() as chain:
        yield chain


def checkpoint(path, value):
    save_file({"w": np.full((4, 4), value, dtype=np.float32)}, str(path))
    return path


def test_commit_reports_confirmations_and_verify_waits_for_them(tmp_path, anvil):
    modelreg = Modelreg(tmp_path / "home")
    rpc = ["--rpc-url", anvil.rpc_url, "--confirmations", "3"]
    modelreg("deploy", *rpc)
    m1 = checkpoint(tmp_path / "m1.safetensors", 1)
    result = modelreg("commit", m1, "--model", "netm", *rpc)
    assert result.output.startswith(f"Committed {m1} as netm version 1, 1/3 confirmations\n")

    young = modelreg("verify", m1, "--model", "netm", *rpc, expect=1)
    assert "VERIFIED: the file is netm version 1" in young.output
    assert "  depth: 1/3 confirmations\n" in young.output
    assert "NOT FINAL: version 1 is 1 block(s) deep, short of --confirmations 3" in young.output

    assert json.loads(modelreg("audit", "history", "netm", "--final-only", *rpc, "--json").output) == []

    anvil.w3.provider.make_request("anvil_mine", ["0x2"])
    settled = modelreg("verify", m1, "--model", "netm", *rpc)
    assert "  depth: 3/3 confirmations, final\n" in settled.output
    (v1,) = json.loads(modelreg("audit", "history", "netm", "--final-only", *rpc, "--json").output)
    assert v1["depth"] == {"confirmations": 3, "required": 3, "final": True}


def test_commit_wait_sends_its_transaction_again_after_a_reorg(tmp_path, anvil):
    modelreg = Modelreg(tmp_path / "home")
    rpc = ["--rpc-url", anvil.rpc_url, "--confirmations", "3"]
    modelreg("deploy", *rpc)
    modelreg("model", "register", "netm", *rpc)
    start = anvil.w3.eth.block_number
    m2 = checkpoint(tmp_path / "m2.safetensors", 2)
    out = {}
    thread = threading.Thread(target=lambda: out.update(result=modelreg("commit", m2, "--model", "netm", "--wait",
                                                                        *rpc)))
    thread.start()
    deadline = time.monotonic() + 60
    while anvil.w3.eth.block_number == start:  # the commit is mined (automine)
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.3)
    anvil.w3.provider.make_request("anvil_reorg", [1, []])  # its block is replaced by an empty one
    while thread.is_alive() and time.monotonic() < deadline:
        anvil.w3.provider.make_request("evm_mine", [])
        time.sleep(0.2)
    thread.join(5)
    output = out["result"].output
    assert "left the canonical chain" in output and output.count("left the canonical chain") == 1
    assert re.search(rf"Committed {m2} as netm version 1, [3-9]/3 confirmations\n", output)
    history = modelreg("audit", "history", "netm", *rpc, "--json").output
    assert history.count('"version": 1') == 1 and '"version": 2' not in history
