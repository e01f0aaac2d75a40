"""Endpoints against a real anvil behind a FaultInjectingRpcProxy: retries, fallbacks, deadlines, lagging heads."""

import time

import pytest

from modelreg.chain.endpoints import Endpoints
from modelreg.errors import ChainIdMismatch, NodeBehind, RpcDeadlineExceeded
from tests.conftest import anvil_chain
from tests.rpc_faults import FaultInjectingRpcProxy


@pytest.fixture(scope="module")
def anvil():
    with anvil_chain() as chain:
        yield chain


@pytest.fixture
def proxy(anvil):
    with FaultInjectingRpcProxy(anvil.rpc_url) as p:
        yield p


def test_429s_and_resets_are_retried_until_the_node_answers(anvil, proxy):
    proxy.queue("429", "503", "reset", "429")
    endpoints = Endpoints(proxy.url, timeout=10)
    assert int(endpoints.call("eth_chainId"), 16) == 31337
    assert endpoints.retries == 4
    assert proxy.injected == {"429": 2, "503": 1, "reset": 1}


def test_a_slow_drip_endpoint_is_cut_off_at_the_deadline_naming_it(proxy):
    proxy.drip = 0.3  # a byte every 0.3 s: each byte resets a socket timeout, never the deadline
    endpoints = Endpoints(proxy.url, timeout=1.5)
    started = time.monotonic()
    with pytest.raises(RpcDeadlineExceeded, match=rf"{proxy.url}.*1\.5 s deadline"):
        endpoints.call("eth_blockNumber")
    assert time.monotonic() - started < 3


def test_an_endpoint_that_never_recovers_fails_within_the_deadline(proxy):
    proxy.chance = {"429": 1.0}
    endpoints = Endpoints(proxy.url, timeout=1)
    started = time.monotonic()
    with pytest.raises(RpcDeadlineExceeded, match=r"eth_chainId did not succeed within the 1 s deadline.*HTTP 429"):
        endpoints.call("eth_chainId")
    assert time.monotonic() - started < 1.5
    assert endpoints.retries >= 3  # backed off, not given up at once


def test_the_fallback_endpoint_takes_over_when_the_first_fails(anvil, proxy):
    proxy.chance = {"reset": 1.0}
    told = []
    endpoints = Endpoints([proxy.url, anvil.rpc_url], timeout=10, notify=told.append)
    assert int(endpoints.call("eth_chainId"), 16) == 31337
    assert endpoints.url == anvil.rpc_url and endpoints.failovers == 1
    assert told == [f"{proxy.url} failed (ConnectionError); trying {anvil.rpc_url}"]


def test_a_node_behind_a_head_already_seen_is_named_and_skipped(anvil, proxy):
    anvil.w3.provider.make_request("anvil_mine", ["0x5"])
    with FaultInjectingRpcProxy(anvil.rpc_url) as lagging:
        lagging.lag = 3
        told = []
        endpoints = Endpoints([proxy.url, lagging.url], timeout=10, notify=told.append)
        head = int(endpoints.call("eth_blockNumber"), 16)
        proxy.queue("reset")  # the next read goes to the lagging node, which is behind
        assert int(endpoints.call("eth_blockNumber"), 16) == head
        assert any(f"{lagging.url} is behind: its head is block {head - 3}, but block {head} was already "
                   f"seen from {proxy.url}" in m for m in told)


def test_a_lagging_node_alone_past_the_deadline_is_reported_as_behind(anvil, proxy):
    anvil.w3.provider.make_request("anvil_mine", ["0x5"])
    with FaultInjectingRpcProxy(anvil.rpc_url) as lagging:
        lagging.lag = 4
        endpoints = Endpoints([proxy.url, lagging.url], timeout=1)
        endpoints.call("eth_blockNumber")
        proxy.chance = {"503": 1.0}
        with pytest.raises(NodeBehind, match=rf"{lagging.url} is behind"):
            endpoints.call("eth_blockNumber")


def test_an_endpoint_of_another_chain_is_refused(anvil, proxy):
    with anvil_chain() as other:  # chain id 31337 too, but another genesis block
        anvil.w3.provider.make_request("evm_mine", [])
        endpoints = Endpoints([anvil.rpc_url, other.rpc_url], timeout=10)
        endpoints.call("eth_chainId")
        endpoints._current = 1  # as a failover would
        with pytest.raises(ChainIdMismatch, match=rf"{other.rpc_url} serves another chain than {anvil.rpc_url}"):
            endpoints.call("eth_chainId")
