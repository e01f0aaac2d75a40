"""Gas of every ModelRegistry operation, v2 beside v3, on anvil and geth --dev in one run, with an EAS
attestation measured on each chain as the baseline.

Pricing differs by chain: anvil (and eth-tester, the devnet) price storage as before Amsterdam; geth
1.17.10 `--dev` runs Amsterdam's opcode table, whose EIP-8037 state gas makes every new storage slot
cost about 90,000 more. ModelRegistry v3 creates no slot per version, so its commits cost the same on
both; v2's cost two slots each. Baselines measured here, on each chain:

- a plain ether transfer: the 21,000 gas floor of any transaction;
- an Ethereum Attestation Service `attest` of a 224-byte schema (seven 32-byte fields, the size of
  what a version commits), on EAS 1.4.1 as npm publishes it (its compiled artifacts, deployed
  here). The package is fetched once with `npm pack` into the gitignored .cache/eas; when that is
  impossible (offline), the output says "not measured" and gives no figure.

`verifyTensor` at 10,000 versions is an eth_estimateGas with a state override: the model's version
count and accumulator are set to those of a 10,000-leaf range (built here, one leaf the real record
of the 100,000-leaf version), so the call checks a real 13-sibling version path and 5 peaks without
sending 10,000 transactions.

`python bench/gas.py [--chains anvil,geth] [--json]`
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

from eth_abi import encode
from eth_utils import keccak
from web3 import Web3
from web3.providers.eth_tester import EthereumTesterProvider

from modelreg.chain.client import RegistryClient
from modelreg.chain.signer import Signer
from modelreg.formats import mmr
from modelreg.formats.merkle import StandardMerkleTree
from modelreg.records import VersionRef

REPO = Path(__file__).resolve().parent.parent
GETH = REPO / ".cache" / "bin" / "geth"
ANVIL = REPO / "node_modules" / ".bin" / "anvil"
TENSOR_TYPES = ["string", "string", "uint256[]", "bytes32"]
FILE_TYPES = ["string", "uint256", "bytes32"]
TREE_SIZES = (10, 1_000, 100_000)
MANY_VERSIONS = 10_000
CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"  # CIDv1 base32, 59 characters
# The targets, on geth --dev (Amsterdam) pricing.
TARGETS = {"commitVersion": 100_000, "registerModel": 300_000, "registerDataset": 150_000,
           "revokeVersion": 100_000, f"verifyTensor[100000 leaves, {MANY_VERSIONS} versions]": 100_000}
EAS_PACKAGE = "@ethereum-attestation-service/eas-contracts@1.4.1"
EAS_DIR = REPO / ".cache" / "eas"
EAS_SCHEMA = ("bytes32 weightsRoot,uint256 tensorCount,bytes32 filesRoot,bytes32 datasetRoot,"
              "uint256 parentModel,uint256 parentVersion,address committer")
# ModelRegistry v3's storage layout (solc assigns slots in declaration order).
V3_MODELS_SLOT, V3_ACCUMULATORS_SLOT = 1, 2


def tensor_leaves(n: int) -> list[list]:
    """`n` leaves shaped like a GPT's tensors: long names, 2-D shapes."""
    return [[f"transformer.h.{i // 12}.mlp.c_fc.weight.{i % 12}", "BF16", [768, 3072],
             "0x" + i.to_bytes(32, "big").hex()] for i in range(n)]


def file_leaves() -> list[list]:
    """The other files of a Hugging Face style model directory."""
    names = ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
             "special_tokens_map.json", "vocab.json", "merges.txt", "README.md"]
    return [[name, 1000 + 37 * i, "0x" + bytes([i + 1]).hex() * 32] for i, name in enumerate(names)]


def _send(w3: Web3, signer: Signer, fn) -> dict:
    tx = fn.build_transaction({"from": signer.address, "nonce": w3.eth.get_transaction_count(signer.address)})
    return w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(signer.sign_transaction(tx).raw_transaction))


def _transfer(w3: Web3, sender: Signer, to: str) -> dict:
    return w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(sender.sign_transaction({
        "to": to, "value": 1, "gas": 21_000, "chainId": w3.eth.chain_id,
        "nonce": w3.eth.get_transaction_count(sender.address), "maxFeePerGas": 2 * w3.eth.gas_price + 10**9,
        "maxPriorityFeePerGas": 10**9}).raw_transaction))


def _tensor(leaf) -> tuple:
    return (leaf[0], leaf[1], leaf[2], bytes.fromhex(leaf[3][2:]))


def measure_registry(w3: Web3, owner: Signer, maintainer: Signer, heir: Signer, trees: dict,
                     version: int) -> dict:
    """Gas of each operation on a fresh ModelRegistry of interface `version`."""
    registry = RegistryClient.deploy(w3, owner, interface_version=version)
    (deploy_tx,) = w3.eth.get_block(registry.from_block)["transactions"]
    gas = {"deploy": w3.eth.get_transaction_receipt(deploy_tx)["gasUsed"]}
    model_id, r = registry.register_model("gpt-tiny", json.dumps({"architecture": "gpt", "n_layer": 12}))
    gas["registerModel"] = r["gasUsed"]
    base_id, r = registry.register_model("gpt-base", json.dumps({"architecture": "gpt", "n_layer": 12}))
    gas["registerModel (second)"] = r["gasUsed"]
    dataset_root = "0x" + "da" * 32
    gas["registerDataset"] = registry.register_dataset(dataset_root, CID)["gasUsed"]
    gas["addMaintainer"] = registry.add_maintainer(model_id, maintainer.address)["gasUsed"]
    as_maintainer = RegistryClient.at(w3, maintainer, registry.address)

    files = StandardMerkleTree.of(file_leaves(), FILE_TYPES)
    registry.commit_version(base_id, "0x" + "ba" * 32, tensor_count=1, manifest_cid=CID)
    parent = VersionRef(base_id, 1)  # every measured commit names a parent: same work, only the tree size varies
    for n in TREE_SIZES:
        tree = trees[n]
        # The worst path: a maintainer, every field filled (count, files root, dataset, parent, full CID).
        v, r = as_maintainer.commit_version(model_id, tree.root, tensor_count=n, files_root=files.root,
                                            dataset_root=dataset_root, parent=parent, manifest_cid=CID)
        gas[f"commitVersion[{n} leaves, v{v}]"] = r["gasUsed"]
        parent = VersionRef(model_id, v)
        leaf, proof = tree.values[n // 2], tree.proof(n // 2)
        assert registry.verify_tensor(model_id, v, leaf, proof), f"a proof over {n} leaves must verify"
        fn = registry.contract.functions.verifyTensor(*registry._proven(model_id, v), _tensor(leaf),
                                                      [bytes.fromhex(p[2:]) for p in proof])
        gas[f"verifyTensor[{n} leaves, {v} versions]"] = fn.estimate_gas()

    leaf, proof = files.values[3], files.proof(3)
    assert registry.verify_file(model_id, parent.version, leaf, proof), "a file proof must verify"
    fn = registry.contract.functions.verifyFile(*registry._proven(model_id, parent.version),
                                                (leaf[0], leaf[1], bytes.fromhex(leaf[2][2:])),
                                                [bytes.fromhex(p[2:]) for p in proof])
    gas["verifyFile"] = fn.estimate_gas()
    gas["revokeVersion"] = registry.revoke_version(model_id, 1, "trained on a leaked test split",
                                                   replacement=2)["gasUsed"]
    # Versions 1 to 32 keep their revoked bit in the model's slot; a revocation among 33 and up is
    # the first in its 256-version word here, which creates that word.
    while registry.version_count(model_id) < 33:
        registry.commit_version(model_id, "0x" + (registry.version_count(model_id) + 1).to_bytes(32, "big").hex(),
                                tensor_count=1, manifest_cid=CID)
    gas["revokeVersion[v33, first in its word]"] = registry.revoke_version(model_id, 33, "superseded")["gasUsed"]
    if version >= 3:
        gas[f"verifyTensor[100000 leaves, {MANY_VERSIONS} versions]"] = _verify_at_many_versions(
            registry, model_id, parent.version, trees[TREE_SIZES[-1]])
    gas["transferOwnership"] = registry.transfer_ownership(model_id, heir.address)["gasUsed"]
    gas["acceptOwnership"] = RegistryClient.at(w3, heir, registry.address).accept_ownership(model_id)["gasUsed"]
    return gas


def _verify_at_many_versions(registry: RegistryClient, model_id: int, real_version: int, tree) -> int:
    """verifyTensor's gas when the model has MANY_VERSIONS versions: a state override gives the model a
    range of that many leaves, where leaf 4242 is the real record of `real_version` renumbered."""
    logs, _ = registry._history(model_id)
    record = list(registry._version_proof(model_id, real_version)[3])
    target = 4242
    rng = os.urandom
    leaves = [rng(32) for _ in range(MANY_VERSIONS)]
    leaves[target - 1] = mmr.leaf_hash(model_id, target, tuple(record))
    mountain = mmr.MountainRange(leaves)
    proof = mountain.proof(target - 1)
    name_hash = registry._registration(model_id)["nameHash"]
    model_slot = keccak(encode(["uint256", "uint256"], [model_id, V3_MODELS_SLOT]))
    word = int.from_bytes(registry.w3.eth.get_storage_at(registry.address, model_slot), "big")
    word = (word & ~(0xFFFFFFFF << 160)) | (MANY_VERSIONS << 160)
    override = {registry.address: {"stateDiff": {
        "0x" + model_slot.hex(): "0x" + word.to_bytes(32, "big").hex(),
        "0x" + keccak(name_hash + V3_ACCUMULATORS_SLOT.to_bytes(32, "big")).hex():
            "0x" + mountain.accumulator(model_id).hex()}}}
    n = TREE_SIZES[-1]
    leaf, tensor_proof = tree.values[n // 2], tree.proof(n // 2)
    fn = registry.contract.functions.verifyTensor(
        (model_id, name_hash, target, tuple(record), proof.peaks, proof.path), _tensor(leaf),
        [bytes.fromhex(p[2:]) for p in tensor_proof])
    tx = fn.build_transaction({"from": registry.signer.address, "gas": 10_000_000})
    call = {"from": tx["from"], "to": tx["to"], "data": tx["data"]}
    ok = registry.w3.codec.decode(["bool"], registry.w3.eth.call(call, "latest", override))[0]
    assert ok, "the overridden 10,000-version proof must verify"
    return registry.w3.eth.estimate_gas(call, "latest", override)


def _eas_artifacts() -> Path | None:
    """The unpacked EAS npm package, fetched once with `npm pack`; None if that cannot be done."""
    package = EAS_DIR / "package"
    if (package / "artifacts").is_dir():
        return package
    npm = shutil.which("npm")
    if npm is None:
        return None
    EAS_DIR.mkdir(parents=True, exist_ok=True)
    try:
        out = subprocess.run([npm, "pack", EAS_PACKAGE, "--pack-destination", str(EAS_DIR)],
                             capture_output=True, text=True, timeout=300, check=True)
    except (subprocess.SubprocessError, OSError):
        return None
    with tarfile.open(EAS_DIR / out.stdout.strip().splitlines()[-1]) as tar:
        tar.extractall(EAS_DIR, filter="data")
    return package


def measure_eas(w3: Web3, attester: Signer) -> dict:
    """Gas of one EAS `attest` of a 224-byte schema, deployed and run on this chain."""
    package = _eas_artifacts()
    if package is None:
        return {"gas": None, "measured": False, "source": f"{EAS_PACKAGE} could not be fetched with npm"}

    def load(name: str) -> dict:
        return json.loads((package / "artifacts" / "contracts" / f"{name}.sol" / f"{name}.json").read_text())

    def deploy(artifact: dict, *args):
        receipt = _send(w3, attester, w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
                        .constructor(*args))
        return w3.eth.contract(address=receipt["contractAddress"], abi=artifact["abi"])

    schemas = deploy(load("SchemaRegistry"))
    eas = deploy(load("EAS"), schemas.address)
    receipt = _send(w3, attester, schemas.functions.register(EAS_SCHEMA, "0x" + "00" * 20, True))
    uid = schemas.events.Registered().process_receipt(receipt)[0]["args"]["uid"]
    data = w3.codec.encode(["bytes32", "uint256", "bytes32", "bytes32", "uint256", "uint256", "address"],
                           [b"\xa1" * 32, 100_000, b"\xf1" * 32, b"\xda" * 32, 7, 41, attester.address])
    request = (uid, (attester.address, 0, True, b"\0" * 32, data, 0))
    attest = _send(w3, attester, eas.functions.attest(request))
    return {"gas": attest["gasUsed"], "measured": True, "eas_version": eas.functions.version().call(),
            "source": f"{EAS_PACKAGE} (npm artifacts), schema {len(data)} bytes"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(w3: Web3, proc, what: str) -> None:
    deadline = time.monotonic() + 30
    while not w3.is_connected():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{what} did not start")
        time.sleep(0.1)


def open_chain(name: str, tmp: Path, signers: list[Signer]):
    """(Web3, process to stop or None) for a fresh chain, the signers funded."""
    if name == "eth-tester":
        return Web3(EthereumTesterProvider()), None
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    if name == "anvil":
        proc = subprocess.Popen([str(ANVIL), "--host", "127.0.0.1", "--port", str(port), "--silent"],
                                stdout=subprocess.DEVNULL)
        w3 = Web3(Web3.HTTPProvider(url))
        _wait(w3, proc, f"anvil ({ANVIL}); run `npm ci`")
        for s in signers:
            w3.provider.make_request("anvil_setBalance", [s.address, hex(10**24)])
        return w3, proc
    if not GETH.exists():
        raise SystemExit(f"{GETH} is missing: run `make setup`")
    # --dev.period 0: a block as soon as a transaction arrives, so the run takes seconds, not minutes.
    log = open(tmp / "geth.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [str(GETH), "--dev", "--dev.period", "0", "--datadir", str(tmp / "geth"), "--ipcdisable", "--http",
         "--http.addr", "127.0.0.1", "--http.port", str(port), "--http.api", "eth,net,web3",
         "--authrpc.port", str(_free_port()), "--port", "0", "--verbosity", "2"],
        stdout=subprocess.DEVNULL, stderr=log)
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 120}))
    _wait(w3, proc, f"geth ({GETH})")
    (funder,) = w3.eth.accounts
    for s in signers:
        w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction({"from": funder, "to": s.address,
                                                                     "value": 10**24}))
    return w3, proc


def measure(chain: str, trees: dict) -> dict:
    signers = [Signer.from_key(i.to_bytes(32, "big")) for i in (1, 2, 3)]
    with tempfile.TemporaryDirectory() as tmp:
        w3, proc = open_chain(chain, Path(tmp), signers)
        try:
            owner, maintainer, heir = signers
            result = {"transfer": _transfer(w3, owner, maintainer.address)["gasUsed"]}
            for version in (2, 3):
                result[f"v{version}"] = measure_registry(w3, owner, maintainer, heir, trees, version)
            result["eas_attest"] = measure_eas(w3, owner)
            result["client_version"] = w3.client_version
            return result
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait()


def table(results: dict) -> list[dict]:
    """One row per operation: v2 and v3 gas on each chain, v3 over v2, and v3 over the chain's EAS attest."""
    rows = []
    chains = list(results)
    ops = [op for op in results[chains[0]]["v3"]]
    for op in ops:
        row = {"operation": op}
        for c in chains:
            v2, v3 = results[c]["v2"].get(op), results[c]["v3"][op]
            eas = results[c]["eas_attest"]["gas"]
            row[c] = {"v2": v2, "v3": v3, "v3_over_v2": round(v3 / v2, 3) if v2 else None,
                      "v3_over_eas_attest": round(v3 / eas, 3) if eas else None}
        target = next((t for k, t in TARGETS.items() if op.startswith(k)), None)
        if target is not None and "geth" in results:
            row["geth_target"] = target
            row["within_target"] = results["geth"]["v3"][op] <= target
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chains", default="anvil,geth",
                        help="comma-separated, from eth-tester, anvil, geth (default anvil,geth)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args()
    trees = {n: StandardMerkleTree.of(tensor_leaves(n), TENSOR_TYPES) for n in TREE_SIZES}
    results = {c: measure(c, trees) for c in args.chains.split(",")}
    rows = table(results)
    no_dearer = {c: [r["operation"] for r in rows if r[c]["v2"] and r[c]["v3"] > r[c]["v2"]] for c in results}
    out = {"chains": results, "table": rows, "v3_dearer_than_v2": no_dearer,
           "targets_met": all(r.get("within_target", True) for r in rows)}
    if args.json:
        print(json.dumps(out, sort_keys=True))
        return
    header = f"  {'operation':<42}" + "".join(f" {c + ' v2':>12} {c + ' v3':>12} {'v3/v2':>6}" for c in results)
    for c, r in results.items():
        eas = r["eas_attest"]
        print(f"{c}: {r['client_version']}; transfer {r['transfer']:,} gas; EAS attest "
              + (f"{eas['gas']:,} gas (measured, {eas['source']})" if eas["measured"] else
                 f"NOT measured ({eas['source']})"))
    print(header + "  geth target")
    for row in rows:
        line = f"  {row['operation']:<42}"
        for c in results:
            v2, v3, ratio = row[c]["v2"], row[c]["v3"], row[c]["v3_over_v2"]
            line += f" {v2 or 0:>12,} {v3:>12,} {ratio if ratio is not None else '-':>6}"
        if "geth_target" in row:
            line += f"  <= {row['geth_target']:,} {'ok' if row['within_target'] else 'OVER'}"
        print(line)
    for c, ops in no_dearer.items():
        print(f"{c}: v3 dearer than v2 for: {', '.join(ops) if ops else 'nothing'}")


if __name__ == "__main__":
    main()
