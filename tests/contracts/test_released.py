"""contracts/released.py names the released runtime code of each ModelRegistry version."""

from eth_utils import keccak

from modelreg.contracts.artifact import load_artifact
from modelreg.contracts.released import RELEASED, version_of_code


def test_each_released_hash_is_its_artifacts_runtime_code():
    for version, name in ((2, "ModelRegistryV2"), (3, "ModelRegistry")):
        code = bytes.fromhex(load_artifact(name)["deployedBytecode"][2:])
        assert RELEASED[version] == "0x" + keccak(code).hex()
        assert version_of_code(code) == version
    assert version_of_code(b"\x00") is None
