"""Benchmark the hardhat-free devnet against anvil: commitVersion throughput and eth_getLogs latency.

    python bench/devnet.py [--versions 1000] [--json]

Both chains run in this process's run, on this machine, through web3's HTTPProvider and the
same RegistryClient. Ratios are devnet / anvil. Also measures the devnet's restart time on the
chain just written (about `versions` blocks).
"""

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from web3 import Web3

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # not bench/: this file would shadow the `devnet` package

from modelreg.chain.client import RegistryClient  # noqa: E402
from modelreg.chain.signer import Signer  # noqa: E402
from modelreg.devnet import manager  # noqa: E402
from modelreg.devnet.accounts import dev_accounts  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_workload(url: str, versions: int) -> dict:
    w3 = Web3(Web3.HTTPProvider(url))
    registry = RegistryClient.deploy(w3, Signer.from_key(dev_accounts()[0].key))
    model_id, _ = registry.register_model("bench-model")
    start = time.perf_counter()
    for i in range(versions):
        registry.commit_version(model_id, (i + 1).to_bytes(32, "big"), tensor_count=1, manifest_cid=f"bafy{i}")
    elapsed = time.perf_counter() - start
    latencies = []
    for _ in range(20):
        t = time.perf_counter()
        logs = w3.eth.get_logs({"address": registry.address, "fromBlock": 0, "toBlock": "latest"})
        latencies.append(time.perf_counter() - t)
    assert len(logs) >= versions, f"expected {versions} logs, got {len(logs)}"
    return {"commits_per_s": versions / elapsed,
            "get_logs_ms": statistics.median(latencies) * 1000, "logs": len(logs)}


def bench_devnet(versions: int) -> dict:
    with tempfile.TemporaryDirectory() as home:
        url = manager.up(Path(home), port=0).url
        try:
            result = run_workload(url, versions)
        finally:
            manager.down(Path(home))
        t = time.perf_counter()
        manager.up(Path(home), port=0)
        result["restart_s"] = time.perf_counter() - t  # process start + opening the chain
        manager.down(Path(home))
    return result


def bench_anvil(versions: int) -> dict:
    port = _free_port()
    process = subprocess.Popen([str(ROOT / "node_modules/.bin/anvil"), "--port", str(port),
                                "--silent"])
    url = f"http://127.0.0.1:{port}"
    try:
        w3 = Web3(Web3.HTTPProvider(url))
        while not w3.is_connected():
            time.sleep(0.1)
        return run_workload(url, versions)
    finally:
        process.terminate()
        process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=1000)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    devnet, anvil = bench_devnet(args.versions), bench_anvil(args.versions)
    report = {
        "versions": args.versions, "devnet": devnet, "anvil": anvil,
        "ratio_commits_per_s": devnet["commits_per_s"] / anvil["commits_per_s"],
        "ratio_get_logs_ms": devnet["get_logs_ms"] / anvil["get_logs_ms"],
    }
    if args.json:
        print(json.dumps(report))
        return
    print(f"{args.versions} commitVersion transactions, then eth_getLogs over all of them (median of 20)")
    for name, r in (("devnet", devnet), ("anvil", anvil)):
        print(f"  {name:7s} {r['commits_per_s']:8.1f} commits/s   getLogs {r['get_logs_ms']:8.1f} ms")
    print(f"  devnet/anvil: throughput x{report['ratio_commits_per_s']:.2f}, "
          f"getLogs latency x{report['ratio_get_logs_ms']:.2f}")
    print(f"  devnet restart on {args.versions + 2}-block chain: {devnet['restart_s']:.2f} s")


if __name__ == "__main__":
    main()
