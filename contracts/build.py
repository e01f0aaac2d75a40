"""The reproducible build: compile ModelRegistry.sol with pinned solc settings into the committed artifact.

`python -m modelreg.contracts.build` rewrites contracts/ModelRegistry.json; `--check` rebuilds and exits 1
if the bytecode differs from the committed artifact. A native solc 0.8.30 installed through
py-solc-x is used when present, else solc-js from npm through contracts/solc_shim.mjs. Both
produce the same bytes: the metadata hash covers the compiler version, not its platform.
"""

import argparse
import hashlib
import json
import shutil
import stat
import sys
import tempfile
from pathlib import Path

import solcx
from packaging.version import Version

from modelreg._atomic import write_atomic

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SOURCE_UNIT = "contracts/ModelRegistry.sol"
INTERFACE_UNIT = "contracts/IModelRegistry.sol"
CONTRACT = "ModelRegistry"
ARTIFACT = HERE / f"{CONTRACT}.json"

SOLC_VERSION = "0.8.30"
# Everything that changes the bytecode. Recorded in the artifact, so a reader can rebuild it.
SETTINGS = {
    "optimizer": {"enabled": True, "runs": 200},
    "viaIR": True,  # the eleven-field VersionCommitted event is too deep for the legacy pipeline
    "evmVersion": "cancun",  # the newest fork both py-evm 0.12 and anvil run
    "metadata": {"bytecodeHash": "ipfs"},
}


def compile_artifact(solc_binary: Path | None = None) -> dict:
    """Compile the contract and return the artifact: ABI, bytecodes, compiler, settings, sources."""
    source = (REPO / SOURCE_UNIT).read_text(encoding="utf-8")
    standard_input = {
        "language": "Solidity",
        "sources": {SOURCE_UNIT: {"content": source},
                    INTERFACE_UNIT: {"content": (REPO / INTERFACE_UNIT).read_text(encoding="utf-8")}},
        "settings": {
            **SETTINGS,
            "outputSelection": {
                SOURCE_UNIT: {CONTRACT: ["abi", "metadata", "evm.bytecode.object", "evm.deployedBytecode.object"]}
            },
        },
    }
    with tempfile.TemporaryDirectory() as tmp:
        binary = solc_binary or _native_solc() or _shim_wrapper(Path(tmp))
        out = solcx.compile_standard(standard_input, solc_binary=binary, base_path=REPO / "node_modules",
                                     allow_paths=REPO / "node_modules")
    # A warning is a finding in a contract this small: the build refuses to ship one.
    warnings = [e["formattedMessage"] for e in out.get("errors", []) if e["severity"] == "warning"]
    if warnings:
        raise SystemExit("solc warnings:\n" + "\n".join(warnings))
    compiled = out["contracts"][SOURCE_UNIT][CONTRACT]
    metadata = json.loads(compiled["metadata"])
    return {
        "contractName": CONTRACT,
        "abi": compiled["abi"],
        "bytecode": "0x" + compiled["evm"]["bytecode"]["object"],
        "deployedBytecode": "0x" + compiled["evm"]["deployedBytecode"]["object"],
        "compiler": {"name": "solc", "version": metadata["compiler"]["version"]},
        "settings": SETTINGS,
        "source": {"path": SOURCE_UNIT, "sha256": hashlib.sha256(source.encode()).hexdigest()},
        "sources": {name: entry["keccak256"] for name, entry in sorted(metadata["sources"].items())},
    }


def _native_solc() -> Path | None:
    if Version(SOLC_VERSION) in solcx.get_installed_solc_versions():
        return solcx.get_executable(SOLC_VERSION)
    return None


def _shim_wrapper(directory: Path) -> Path:
    # A wrapper rather than the shim itself: an installed or checked-out copy may lose the
    # executable bit, and `node` is found on PATH here rather than through the shebang.
    node = shutil.which("node")
    if node is None or not (REPO / "node_modules" / "solc").is_dir():
        sys.exit("No compiler: install solc 0.8.30 with `python -m solcx.install v0.8.30`, "
                 "or Node 20 and `npm ci` for solc-js.")
    wrapper = directory / "solc"
    wrapper.write_text(f'#!/bin/sh\nexec "{node}" "{HERE / "solc_shim.mjs"}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return wrapper


def _dumps(artifact: dict) -> str:
    return json.dumps(artifact, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="rebuild and compare with the committed artifact instead of writing it")
    args = parser.parse_args(argv)
    try:
        artifact = compile_artifact()
    except solcx.exceptions.SolcError as e:
        print(f"solc failed:\n{e.message}", file=sys.stderr)
        return 2
    if not args.check:
        write_atomic(ARTIFACT, _dumps(artifact))
        print(f"wrote {ARTIFACT.name} ({artifact['compiler']['version']})")
        return 0
    committed = json.loads(ARTIFACT.read_text(encoding="utf-8"))
    differing = [k for k in ("bytecode", "deployedBytecode", "abi") if committed.get(k) != artifact[k]]
    if differing:
        print(f"{ARTIFACT.name} is stale: {', '.join(differing)} differ; "
              "run `python -m modelreg.contracts.build` and commit the result", file=sys.stderr)
        return 1
    print(f"{ARTIFACT.name} matches a fresh build")
    return 0


if __name__ == "__main__":
    sys.exit(main())
