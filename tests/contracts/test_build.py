"""The reproducible build: a fresh compile must give the committed artifact's bytes."""

import hashlib
import json
import os
import shutil
import subprocess

import pytest
from solcx.wrapper import get_solc_version

from modelreg.contracts import build
from modelreg.contracts.artifact import load_artifact


def _compiler_available() -> bool:
    return build._native_solc() is not None or (
        shutil.which("node") is not None and (build.REPO / "node_modules" / "solc").is_dir())


# CI must never skip the rebuild: there, a missing compiler is a failure.
needs_compiler = pytest.mark.skipif(not _compiler_available() and not os.environ.get("CI"),
                                    reason="no solc 0.8.30: neither native (py-solc-x) nor solc-js (npm ci)")


@pytest.fixture(scope="module")
def fresh():
    return build.compile_artifact()


@needs_compiler
def test_rebuilding_the_contract_gives_the_committed_bytecode(fresh):
    committed = load_artifact()
    assert fresh["bytecode"] == committed["bytecode"]
    assert fresh["deployedBytecode"] == committed["deployedBytecode"]
    assert fresh["abi"] == committed["abi"]
    assert fresh == committed


def test_the_artifact_pins_the_compiler_settings_and_source():
    artifact = load_artifact()
    assert artifact["compiler"] == {"name": "solc", "version": "0.8.30+commit.73712a01"}
    assert artifact["settings"] == {"optimizer": {"enabled": True, "runs": 200}, "viaIR": True,
                                    "evmVersion": "cancun", "metadata": {"bytecodeHash": "ipfs"}}
    source = (build.REPO / build.SOURCE_UNIT).read_bytes()
    assert artifact["source"] == {"path": "contracts/ModelRegistry.sol",
                                  "sha256": hashlib.sha256(source).hexdigest()}
    assert "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol" in artifact["sources"]
    assert "contracts/IModelRegistry.sol" in artifact["sources"]


@pytest.mark.slow
@needs_compiler
def test_check_mode_fails_on_a_stale_artifact(fresh, tmp_path, monkeypatch, capsys):
    stale = dict(fresh, deployedBytecode=fresh["deployedBytecode"][:-2] + "00")
    path = tmp_path / "ModelRegistry.json"
    path.write_text(json.dumps(stale))
    monkeypatch.setattr(build, "ARTIFACT", path)
    assert build.main(["--check"]) == 1
    assert "ModelRegistry.json is stale: deployedBytecode differ" in capsys.readouterr().err
    path.write_text(json.dumps(fresh))
    assert build.main(["--check"]) == 0


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_shim_reports_its_version_as_native_solc_does(tmp_path):
    wrapper = build._shim_wrapper(tmp_path)
    assert str(get_solc_version(wrapper, with_commit_hash=True)) == "0.8.30+commit.73712a01"
    out = subprocess.run([wrapper, "--bogus"], capture_output=True, text=True)
    assert out.returncode == 1 and "supports only --version and --standard-json" in out.stderr
