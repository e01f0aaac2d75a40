"""A minimal JSON-RPC client for the reads that must be quick: chain id, head block, block hashes.

web3 takes about a second to import; a read-only command whose event index is up to date needs
only these calls, so it answers without web3. Everything else goes through `RegistryClient`.
"""

from modelreg.chain.endpoints import DEFAULT_TIMEOUT, Endpoints
from modelreg.errors import ChainUnavailable


class JsonRpc:
    """JSON-RPC 2.0 over HTTP POST, through `Endpoints` (retries, fallbacks, a deadline per call)."""

    def __init__(self, url: "str | Endpoints", timeout: float = DEFAULT_TIMEOUT):
        self.endpoints = url if isinstance(url, Endpoints) else Endpoints(url, timeout=timeout)

    @property
    def url(self) -> str:
        return self.endpoints.url

    def call(self, method: str, *params):
        try:
            return self.endpoints.call(method, *params)
        except ValueError as e:  # an answer that is not JSON
            raise ChainUnavailable(f"{self.url} answered {method} with something that is not JSON-RPC ({e})",
                                   endpoint=self.url) from None

    def chain_id(self) -> int:
        return int(self.call("eth_chainId"), 16)

    def block_number(self) -> int:
        return int(self.call("eth_blockNumber"), 16)

    def block_hash(self, number: int) -> str:
        block = self.call("eth_getBlockByNumber", hex(number), False)
        if block is None:
            raise ChainUnavailable(f"{self.url} has no block {number}")
        return block["hash"]
