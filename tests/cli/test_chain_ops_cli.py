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
from tests.cli.test_errors import fails
from tests.conftest import anvil_chain
from tests.rpc_faults import FaultInjectingRpcProxy


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


def test_a_second_rpc_url_takes_over_when_the_first_is_down(tmp_path, anvil):
    modelreg = Modelreg(tmp_path / "home")
    modelreg("deploy", "--rpc-url", anvil.rpc_url)
    result = modelreg("audit", "models", "--rpc-url", "http://127.0.0.1:9", "--rpc-url", anvil.rpc_url, "--json")
    assert json.loads(result.stdout) == []
    assert f"http://127.0.0.1:9 failed (connection refused); trying {anvil.rpc_url}" in result.stderr


def test_a_slow_drip_endpoint_ends_the_command_at_its_deadline_naming_the_endpoint(tmp_path, anvil):
    modelreg = Modelreg(tmp_path / "home")
    with FaultInjectingRpcProxy(anvil.rpc_url) as proxy:
        proxy.drip = 0.5  # a byte every half second: an answer of 40 bytes takes 20 s
        started = time.monotonic()
        line = fails(modelreg, "audit", "models", "--rpc-url", proxy.url, "--timeout", "2",
                     match=rf"^Error: {proxy.url} was still sending its answer when the 2 s deadline passed")
        assert time.monotonic() - started < 6
    assert "raise --timeout" in line


def test_chain_settings_are_checked_with_the_value_named(tmp_path):
    modelreg = Modelreg(tmp_path / "home")
    fails(modelreg, "audit", "models", "--rpc-url", "http://127.0.0.1:9", "--confirmations", "soon",
          match=r"chain.confirmations must be a number of blocks, safe, finalized or auto, got 'soon'")
    fails(modelreg, "init", "--rpc-url", "http://127.0.0.1:9", "--rpc-url", "ftp://x",
          match=r"chain.rpc_url must be an http\(s\):// URL, got 'ftp://x'")
    modelreg("init", "--rpc-url", "http://a:1", "--rpc-url", "http://b:2", "--confirmations", "finalized",
             "--timeout", "8")
    shown = json.loads(modelreg("config", "show", "--json").output)
    assert (shown["chain"]["rpc_url"], shown["chain"]["confirmations"], shown["network"]["timeout"]) == (
        "http://a:1 http://b:2", "finalized", 8)
