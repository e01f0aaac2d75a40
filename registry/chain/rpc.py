"""A minimal JSON-RPC client for the reads that must be quick: chain id, head block, block hashes.

web3 takes about a second to import; a read-only command whose event index is up to date needs
only these calls, so it answers without web3. Everything else goes through `RegistryClient`.
"""

import json
import urllib.error
import urllib.request

from modelreg._json import loads_outside
from modelreg.errors import ChainUnavailable, JsonInvalid


class JsonRpc:
    """JSON-RPC 2.0 over HTTP POST to one endpoint."""

    def __init__(self, url: str, timeout: float = 30):
        self.url, self.timeout = url, timeout
        self._id = 0

    def call(self, method: str, *params):
        self._id += 1
        body = json.dumps({"jsonrpc": "2.0", "id": self._id, "method": method, "params": list(params)})
        request = urllib.request.Request(self.url, body.encode(), {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                reply = loads_outside(response.read(), what=f"the answer of {self.url} to {method}")
        except JsonInvalid as e:
            raise ChainUnavailable(f"{e}; it is no JSON-RPC endpoint, or a hostile one", endpoint=self.url) from None
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise ChainUnavailable(f"cannot reach the JSON-RPC endpoint {self.url} "
                                   f"({type(e).__name__}: {getattr(e, 'reason', e)})", endpoint=self.url) from None
        if "error" in reply:
            raise ChainUnavailable(f"{self.url} answered {method} with error {reply['error']}")
        return reply["result"]

    def chain_id(self) -> int:
        return int(self.call("eth_chainId"), 16)

    def block_number(self) -> int:
        return int(self.call("eth_blockNumber"), 16)

    def block_hash(self, number: int) -> str:
        block = self.call("eth_getBlockByNumber", hex(number), False)
        if block is None:
            raise ChainUnavailable(f"{self.url} has no block {number}")
        return block["hash"]
