"""The released ModelRegistry contracts, by the keccak256 of their deployed runtime bytecode.

A registry address is trusted only if the code there is exactly one of these: a proxy, a fork with
one changed line, or any other contract answering `version() == 2` is not a ModelRegistry this
modelreg built. The artifact has no immutables, so the runtime code of every deployment of one
release is byte-identical and its hash is a fixed value. A release adds a line here; a line is
never removed, so registries of older releases stay readable.
Version 2 is the artifact kept in contracts/ModelRegistryV2.json (sources in contracts/v2/); version 3
is contracts/ModelRegistry.json. tests/contracts/test_released.py checks both hashes against the artifacts.
"""

# pysha3's keccak256 (a core dependency, as in formats/merkle.py): eth-* stays in chain/ and the devnet
from sha3 import keccak_256

# contract interface version -> "0x" + keccak256(runtime bytecode)
RELEASED: dict[int, str] = {
    2: "0xcb69b5df1374c8b674abcd6fc0a6f7b334350a2dabe499cd214dfbac194937b2",  # ModelRegistryV2.json, solc 0.8.30
    3: "0xe9c71bf5ff73549e2914438fb38d0c881664aee1add6c65a6ff095a6b2b3ca7f",  # ModelRegistry.json, solc 0.8.30
}


def code_hash(code: bytes) -> str:
    return "0x" + keccak_256(bytes(code)).hexdigest()


def version_of_code(code: bytes) -> int | None:
    """The release whose runtime bytecode `code` is, or None when it is none of them."""
    found = code_hash(code)
    return next((version for version, released in RELEASED.items() if released == found), None)
