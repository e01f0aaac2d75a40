"""Gas of every ModelRegistry operation, and of tensor proofs over trees of 10 to 100,000 leaves.

Measured on the in-process eth-tester chain (py-evm; the fork its default genesis runs). The
baseline, measured in the same run, is a plain ether transfer: the 21,000 gas floor of any
transaction. `python bench/gas.py [--json]`.
"""

import argparse
import json
import time

from eth_tester import EthereumTester, PyEVMBackend
from web3 import Web3
from web3.providers.eth_tester import EthereumTesterProvider

from modelreg.chain.client import RegistryClient
from modelreg.chain.signer import Signer
from modelreg.formats.merkle import StandardMerkleTree

TYPES = ["string", "string", "uint256[]", "bytes32"]
TREE_SIZES = (10, 1_000, 100_000)
CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"  # CIDv1 base32, 59 characters
COMMIT_TARGET = 100_000
EAS_ATTESTATION = 200_000  # about what one EAS attestation costs, for comparison


def tensor_leaves(n: int) -> list[list]:
    """`n` leaves shaped like a GPT's tensors: long names, 2-D shapes."""
    return [[f"transformer.h.{i // 12}.mlp.c_fc.weight.{i % 12}", "BF16", [768, 3072],
             "0x" + i.to_bytes(32, "big").hex()] for i in range(n)]


def measure() -> dict:
    tester = EthereumTester(PyEVMBackend())
    w3 = Web3(EthereumTesterProvider(tester))
    owner, maintainer = (Signer.from_key(i.to_bytes(32, "big")) for i in (1, 2))
    transfer = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(owner.sign_transaction({
        "to": maintainer.address, "value": 1, "gas": 21_000, "chainId": w3.eth.chain_id,
        "nonce": w3.eth.get_transaction_count(owner.address), "maxFeePerGas": 10**10,
        "maxPriorityFeePerGas": 1}).raw_transaction))

    registry = RegistryClient.deploy(w3, owner)
    (deploy_tx,) = w3.eth.get_block(registry.from_block)["transactions"]
    gas = {"baseline_transfer": transfer["gasUsed"],
           "deploy": w3.eth.get_transaction_receipt(deploy_tx)["gasUsed"]}
    model_id, r = registry.register_model("gpt-tiny", json.dumps({"architecture": "gpt", "n_layer": 12}))
    gas["registerModel"] = r["gasUsed"]
    dataset_root = "0x" + "da" * 32
    gas["registerDataset"] = registry.register_dataset(dataset_root, CID)["gasUsed"]
    registry.add_maintainer(model_id, maintainer.address)
    as_maintainer = RegistryClient.at(w3, maintainer, registry.address)

    base_id, _ = registry.register_model("gpt-base")
    registry.commit_version(base_id, "0x" + "ba" * 32, None, None, CID)
    trees, commits, proofs = {}, {}, {}
    parent = (base_id, 1)  # every measured commit names a parent: same work, only the tree size varies
    for n in TREE_SIZES:
        started = time.perf_counter()
        tree = StandardMerkleTree.of(tensor_leaves(n), TYPES)
        trees[n] = (tree, time.perf_counter() - started)
        # The worst path: a maintainer, with dataset and parent. Gas must not grow with n.
        version, r = as_maintainer.commit_version(model_id, tree.root, dataset_root, parent, CID)
        commits[n] = r["gasUsed"]
        parent = (model_id, version)
        leaf, proof = tree.values[n // 2], tree.proof(n // 2)
        assert registry.verify_tensor(model_id, version, leaf, proof), f"a proof over {n} leaves must verify"
        fn = registry.contract.functions.verifyTensor(
            model_id, version, (leaf[0], leaf[1], leaf[2], bytes.fromhex(leaf[3][2:])),
            [bytes.fromhex(p[2:]) for p in proof])
        proofs[n] = {"proof_length": len(proof), "verifyTensor": fn.estimate_gas()}

    gas["commitVersion"] = {str(n): g for n, g in commits.items()}
    gas["revokeVersion"] = registry.revoke_version(model_id, 1, "trained on a leaked test split",
                                                   replacement=2)["gasUsed"]
    gas["verifyTensor"] = {str(n): p for n, p in proofs.items()}
    return {"chain": "eth-tester (py-evm)", "gas": gas,
            "tree_build_seconds": {str(n): round(t, 2) for n, (_, t) in trees.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args()
    result = measure()
    gas = result["gas"]
    base = gas["baseline_transfer"]
    worst_commit = max(gas["commitVersion"].values())
    result["ratios"] = {"commit_over_transfer": round(worst_commit / base, 2),
                        "commit_over_target": round(worst_commit / COMMIT_TARGET, 3),
                        "commit_over_eas_attestation": round(worst_commit / EAS_ATTESTATION, 3)}
    if args.json:
        print(json.dumps(result, sort_keys=True))
        return
    rows = [("ether transfer (baseline)", base), ("deploy", gas["deploy"]),
            ("registerModel", gas["registerModel"]), ("registerDataset", gas["registerDataset"])]
    rows += [(f"commitVersion, {int(n):,}-tensor model", g) for n, g in gas["commitVersion"].items()]
    rows += [("revokeVersion", gas["revokeVersion"])]
    rows += [(f"verifyTensor, {int(n):,} leaves ({p['proof_length']} proof nodes)", p["verifyTensor"])
             for n, p in gas["verifyTensor"].items()]
    print(f"gas on {result['chain']}")
    for label, g in rows:
        print(f"  {label:<48} {g:>10,} {g / base:6.2f}x")
    r = result["ratios"]
    print(f"worst commitVersion: {r['commit_over_target']:.0%} of the {COMMIT_TARGET:,} target, "
          f"{r['commit_over_eas_attestation']:.0%} of an EAS attestation (~{EAS_ATTESTATION:,})")


if __name__ == "__main__":
    main()
