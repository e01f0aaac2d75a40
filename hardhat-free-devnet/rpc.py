"""JSON-RPC 2.0 wire format: error codes, and parsing and encoding of Ethereum hex values."""

from eth_utils import is_hex, to_canonical_address

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
SERVER_ERROR = -32000  # geth's code for a transaction the node refuses (nonce, funds)
EXECUTION_REVERTED = 3  # geth and anvil: `data` carries the revert bytes for clients to decode

BLOCK_TAGS = ("latest", "earliest", "pending", "safe", "finalized")


class RpcError(Exception):
    """An error answered to the client as a JSON-RPC error object."""

    def __init__(self, code: int, message: str, data: str | None = None):
        super().__init__(message)
        self.code, self.message, self.data = code, message, data

    def to_json(self) -> dict:
        error = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


def invalid(message: str) -> RpcError:
    return RpcError(INVALID_PARAMS, message)


# --- encoding ----------------------------------------------------------------------------
def quantity(n: int) -> str:
    return hex(n)


def data(b: bytes) -> str:
    return "0x" + bytes(b).hex()


# --- parsing -----------------------------------------------------------------------------
def parse_quantity(value, name: str) -> int:
    """A hex quantity like "0x1a" (ints are accepted too: some clients send them)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.startswith(("0x", "0X")) and len(value) > 2:
        try:
            return int(value, 16)
        except ValueError:
            pass
    raise invalid(f"{name}: expected a hex quantity like 0x1a, got {value!r}")


def parse_data(value, name: str) -> bytes:
    if isinstance(value, str) and value.startswith(("0x", "0X")) and is_hex(value):
        body = value[2:]
        if len(body) % 2 == 0:
            return bytes.fromhex(body)
    raise invalid(f"{name}: expected 0x-prefixed hex bytes of even length, got {value!r}")


def parse_address(value, name: str) -> bytes:
    raw = parse_data(value, name)
    if len(raw) != 20:
        raise invalid(f"{name}: expected a 20-byte address, got {value!r}")
    return to_canonical_address(raw)


def parse_hash(value, name: str) -> bytes:
    raw = parse_data(value, name)
    if len(raw) != 32:
        raise invalid(f"{name}: expected a 32-byte hash, got {value!r}")
    return raw


def parse_block(value, name: str = "block") -> str | int | bytes:
    """A block tag, a number, or an EIP-1898 object ({"blockNumber"} or {"blockHash"})."""
    if value in BLOCK_TAGS:
        return value
    if isinstance(value, dict):
        if "blockHash" in value:
            return parse_hash(value["blockHash"], f"{name}.blockHash")
        if "blockNumber" in value:
            return parse_block(value["blockNumber"], f"{name}.blockNumber")
    try:
        return parse_quantity(value, name)
    except RpcError:
        raise invalid(f"{name}: expected a block number or one of {', '.join(BLOCK_TAGS)}, "
                      f"got {value!r}") from None


def parse_object(value, name: str) -> dict:
    if not isinstance(value, dict):
        raise invalid(f"{name}: expected an object, got {value!r}")
    return value
