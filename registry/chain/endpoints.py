"""Flaky JSON-RPC endpoints made dependable: a deadline per operation, retries, fallbacks, a head that never goes back.

A public endpoint answers HTTP 429 when rate-limited, 5xx when its backend is down, resets
connections and sometimes serves a node that lags the chain. `Endpoints.post` sends one JSON-RPC
request and retries it, with exponential backoff and jitter, until the operation's deadline; with
several URLs the next one takes over when the current one fails. Every URL is checked to serve the
same chain (chain id and genesis hash) before its answers are used, and an `eth_blockNumber` below a
head already seen is named as a node that is behind.

A retried write is safe: `eth_sendRawTransaction` carries a signed transaction whose hash is known
before it is sent, and a node that got it once answers "already known" the second time.

Hand-written rather than web3's `ExceptionRetryConfiguration`: that one retries a fixed count with
no deadline, no jitter, no 429 and no fallback URL.
"""

import json
import random
import threading
import time
from collections.abc import Callable, Sequence

import requests
import urllib3

from modelreg._json import loads_outside
from modelreg.errors import ChainIdMismatch, ChainUnavailable, NodeBehind, RpcDeadlineExceeded

DEFAULT_TIMEOUT = 60.0  # seconds per operation: longer than a public endpoint's usual 429 back-off window
_FIRST_DELAY, _MAX_DELAY = 0.1, 5.0  # backoff: 0.1 s, 0.2 s, ... capped, then jittered down to half
_READ_CHUNK = 64 * 1024
_RATE_LIMIT_CODES = (-32005, 429)  # JSON-RPC error codes that public endpoints use for "slow down"


class _Transient(Exception):
    """A failure worth retrying: the same request may succeed later or on another endpoint."""


class _Behind(_Transient):
    """An endpoint's head is below one already seen."""


class _Refused(_Transient):
    """Nothing listens at the endpoint: no node there, rather than a node in trouble."""


class Endpoints:
    """One or more JSON-RPC URLs of one chain, used first to last; counts what it retried.

    `notify(message)` is told each event a person should know of, once: a fallback taking over, a
    node behind the head. `retries` and `failovers` count for benchmarks and tests.
    """

    def __init__(self, urls: str | Sequence[str], *, timeout: float = DEFAULT_TIMEOUT,
                 notify: Callable[[str], None] | None = None):
        self.urls = [urls] if isinstance(urls, str) else list(urls)
        if not self.urls:
            raise ValueError("no JSON-RPC URL given")
        self.timeout = float(timeout)
        self.notify = notify or (lambda message: None)
        self.retries = self.failovers = 0
        self.head, self._head_from = -1, ""
        self._current = 0
        self._identity: dict[str, tuple[str, str]] = {}  # url -> (chain id, genesis hash)
        self._session = requests.Session()
        self._lock = threading.Lock()  # web3 may be used from the registrar's thread and the caller's
        self._id = 0

    @property
    def url(self) -> str:
        """The URL in use now."""
        return self.urls[self._current]

    def call(self, method: str, *params):
        """One JSON-RPC call; its `result`, or ChainUnavailable for an error answer."""
        with self._lock:
            self._id += 1
            request_id = self._id
        body = json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": list(params)})
        reply = loads_outside(self.post(method, body.encode()), what=f"the answer of {self.url} to {method}")
        if "error" in reply:
            raise ChainUnavailable(f"{self.url} answered {method} with error {reply['error']}", endpoint=self.url)
        return reply["result"]

    def post(self, method: str, body: bytes) -> bytes:
        """Send one encoded JSON-RPC request and return the raw answer, retrying transient failures
        until `timeout` seconds have passed; RpcDeadlineExceeded then, naming the endpoint."""
        deadline = time.monotonic() + self.timeout
        attempt, last = 0, ""
        while True:
            url = self.url
            try:
                if len(self.urls) > 1 and url not in self._identity:
                    self._check_identity(url, deadline)
                raw = self._post_once(url, body, deadline)
                if method == "eth_blockNumber":
                    self._check_head(url, raw)
                return raw
            except _Refused as e:
                if len(self.urls) == 1:  # no node there: waiting out the deadline would not start one
                    raise ChainUnavailable(f"cannot reach the JSON-RPC endpoint {url} ({e})", endpoint=url) from None
                last, behind = str(e), False
            except _Transient as e:
                last, behind = str(e), isinstance(e, _Behind)
            self.retries += 1
            if len(self.urls) > 1:
                self._current = (self._current + 1) % len(self.urls)
                self.failovers += 1
                self.notify(f"{url} failed ({last}); trying {self.url}")
            delay = min(_MAX_DELAY, _FIRST_DELAY * 2 ** attempt) * random.uniform(0.5, 1.0)
            if time.monotonic() + delay >= deadline:
                if behind:
                    raise NodeBehind(f"{last}; no endpoint caught up within the {self.timeout:g} s deadline",
                                     endpoint=url)
                raise RpcDeadlineExceeded(
                    f"{method} did not succeed within the {self.timeout:g} s deadline; the last try, at {url}, "
                    f"failed: {last}", endpoint=url)
            time.sleep(delay)
            attempt += 1

    def _post_once(self, url: str, body: bytes, deadline: float) -> bytes:
        """One HTTP POST, read in chunks so that an endpoint dripping its answer byte by byte is cut
        off at the deadline (a socket timeout alone restarts with every byte)."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise RpcDeadlineExceeded(f"{url} did not answer within the {self.timeout:g} s deadline", endpoint=url)
        try:
            response = self._session.post(url, data=body, headers={"Content-Type": "application/json"},
                                          timeout=(min(left, 10), min(left, 10)), stream=True)
            with response:
                if response.status_code == 429 or response.status_code >= 500:
                    raise _Transient(f"HTTP {response.status_code}")
                if response.status_code != 200:
                    raise ChainUnavailable(f"{url} answered HTTP {response.status_code}; is it a JSON-RPC "
                                           "endpoint?", endpoint=url)
                chunks = []
                # read1: whatever has arrived, at most a chunk (read(n) would wait for all n bytes).
                while chunk := response.raw.read1(_READ_CHUNK, decode_content=True):  # geth gzips
                    chunks.append(chunk)
                    if time.monotonic() > deadline:
                        raise RpcDeadlineExceeded(
                            f"{url} was still sending its answer when the {self.timeout:g} s deadline passed "
                            "(a slow or stalled endpoint)", endpoint=url)
        except requests.ConnectionError as e:
            if "refused" in str(e).lower():
                raise _Refused("connection refused") from None
            raise _Transient(f"{type(e).__name__}") from None
        except (requests.Timeout, requests.exceptions.ChunkedEncodingError, urllib3.exceptions.HTTPError) as e:
            raise _Transient(f"{type(e).__name__}") from None
        raw = b"".join(chunks)
        if _rate_limited(raw):
            raise _Transient("rate limited")
        return raw

    def _check_identity(self, url: str, deadline: float) -> None:
        """`url` must serve the chain of the first URL checked: same chain id, same genesis block."""
        def result(method, *params):
            body = json.dumps({"jsonrpc": "2.0", "id": 0, "method": method, "params": list(params)}).encode()
            reply = loads_outside(self._post_once(url, body, deadline), what=f"the answer of {url} to {method}")
            if "error" in reply:
                raise _Transient(f"{method} answered {reply['error']}")
            return reply["result"]

        identity = (result("eth_chainId"), (result("eth_getBlockByNumber", "0x0", False) or {}).get("hash"))
        for other, known in self._identity.items():
            if known != identity:
                raise ChainIdMismatch(f"{url} serves another chain than {other}: chain id {int(identity[0], 16)} "
                                      f"and genesis {identity[1]}, not {int(known[0], 16)} and {known[1]}; "
                                      "every --rpc-url must be an endpoint of the same chain", endpoint=url)
        self._identity[url] = identity

    def _check_head(self, url: str, raw: bytes) -> None:
        try:
            head = int(loads_outside(raw, what=f"the answer of {url}")["result"], 16)
        except (ValueError, KeyError, TypeError):
            return  # an error answer: the caller reports it
        if head >= self.head:
            self.head, self._head_from = head, url
            return
        message = (f"{url} is behind: its head is block {head}, but block {self.head} was already seen "
                   f"from {self._head_from}")
        if len(self.urls) == 1:
            # Nothing to compare against: the chain itself may have been rolled back. Said, then taken.
            self.notify(message)
            self.head, self._head_from = head, url
            return
        self.notify(message)
        raise _Behind(message)


def _rate_limited(raw: bytes) -> bool:
    """Whether a 200 answer is a JSON-RPC rate-limit error (Infura and others answer -32005)."""
    if b'"error"' not in raw[:4096]:
        return False
    try:
        error = loads_outside(raw, what="an answer").get("error") or {}
    except (ValueError, AttributeError):
        return False
    return isinstance(error, dict) and (error.get("code") in _RATE_LIMIT_CODES
                                        or "rate limit" in str(error.get("message", "")).lower())


def web3_provider(endpoints: Endpoints):
    """A web3 HTTP provider whose every request goes through `endpoints` (retries, fallbacks, deadline)."""
    from web3 import Web3

    class _Provider(Web3.HTTPProvider):
        def _make_request(self, method, request_data: bytes) -> bytes:
            return endpoints.post(method, request_data)

        def decode_rpc_response(self, raw_response: bytes):
            # the bounded parser (modelreg._json): a hostile endpoint's deeply nested answer is an error
            return loads_outside(raw_response, what=f"the answer of {endpoints.url}")

    return _Provider(endpoints.urls[0])
