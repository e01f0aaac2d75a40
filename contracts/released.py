"""The ModelRegistry versions released so far, by the keccak256 of their deployed runtime bytecode.

A client that finds code at an address can tell which released ModelRegistry it is, if any, from
the code alone: `version_of_code(w3.eth.get_code(address))`. Version 2 is the artifact kept in
contracts/ModelRegistryV2.json (sources in contracts/v2/); version 3 is contracts/ModelRegistry.json.
tests/contracts/test_released.py checks both hashes against the artifacts.
"""

from eth_utils import keccak

RELEASED: dict[int, str] = {
    2: "0xcb69b5df1374c8b674abcd6fc0a6f7b334350a2dabe499cd214dfbac194937b2",
    3: "0xe9c71bf5ff73549e2914438fb38d0c881664aee1add6c65a6ff095a6b2b3ca7f",
}


def version_of_code(code: bytes) -> int | None:
    """The released ModelRegistry version whose runtime bytecode is `code`, or None."""
    digest = "0x" + keccak(bytes(code)).hex()
    return next((version for version, released in RELEASED.items() if released == digest), None)
