"""Benchmark the hardhat-free devnet against anvil and geth: commit throughput, eth_getLogs latency, start-up.

    python bench/devnet.py [--versions 1000] [--sealed-versions 10] [--json]

Every chain runs in this process's run, on this machine, through web3's HTTPProvider and the same
RegistryClient; each commit waits for its receipt. geth runs twice: `--dev` mining each transaction
on arrival (comparable with the devnet and anvil, which do the same), and `--dev --dev.period 2`,
sealing a block every 2 s as a real network does, where a commit waits for the next block.
Cold start-up is process spawn to the first eth_blockNumber answer on a fresh data directory
(median of 3). Ratios are against anvil. Also measures the devnet's restart on the chain just written.
"""

import argparse
import contextlib
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from web3 import Web3

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # not bench/: this file would shadow the `devnet` package

from modelreg.chain.client import RegistryClient  # noqa: E402
from modelreg.chain.signer import Signer  # noqa: E402
from modelreg.devnet import manager  # noqa: E402
from modelreg.devnet.accounts import dev_accounts  # noqa: E402

ANVIL = ROOT / "node_modules" / ".bin" / "anvil"
GETH = ROOT / ".cache" / "bin" / "geth"  # `make setup` builds it


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(url: str) -> bool:
    request = urllib.request.Request(
        url, data=b'{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}',
        headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return "result" in json.loads(response.read())
    except OSError:
        return False


def _command(chain: str, directory: Path, port: int, *geth_flags: str) -> list[str]:
    if chain == "devnet":
        return [sys.executable, "-m", "modelreg.devnet", "--home", str(directory), "--port", str(port)]
    if chain == "anvil":
        return [str(ANVIL), "--port", str(port), "--silent"]
    return [str(GETH), "--dev", *geth_flags, "--datadir", str(directory), "--ipcdisable", "--http",
            "--http.addr", "127.0.0.1", "--http.port", str(port), "--http.api", "eth,net,web3",
            "--authrpc.port", str(_free_port()), "--port", "0", "--verbosity", "1"]


@contextlib.contextmanager
def started(chain: str, *geth_flags: str):
    """Start `chain` on a fresh data directory; yield (url, seconds until it answered)."""
    with tempfile.TemporaryDirectory() as directory:
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        t = time.perf_counter()
        process = subprocess.Popen(_command(chain, Path(directory), port, *geth_flags),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while not _answers(url):
                if process.poll() is not None:
                    raise RuntimeError(f"{chain} exited with {process.returncode} before answering")
                time.sleep(0.01)
            yield url, time.perf_counter() - t
        finally:
            process.terminate()
            process.wait()


def cold_start(chain: str, tries: int = 3) -> float:
    times = []
    for _ in range(tries):
        with started(chain) as (_, seconds):
            times.append(seconds)
    return statistics.median(times)


def _fund_from_geth(w3: Web3, address: str) -> None:
    (funder,) = w3.eth.accounts  # geth --dev's unlocked developer account
    w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction({"from": funder, "to": address, "value": 10**24}))


def run_workload(url: str, versions: int, fund=None) -> dict:
    w3 = Web3(Web3.HTTPProvider(url))
    signer = Signer.from_key(dev_accounts()[0].key)
    if fund is not None:
        fund(w3, signer.address)
    registry = RegistryClient.deploy(w3, signer)
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
    result["cold_start_s"] = cold_start("devnet")
    return result


def bench_anvil(versions: int) -> dict:
    with started("anvil") as (url, _):
        result = run_workload(url, versions)
    result["cold_start_s"] = cold_start("anvil")
    return result


def bench_geth(versions: int, sealed_versions: int) -> dict:
    with started("geth") as (url, _):
        result = run_workload(url, versions, fund=_fund_from_geth)
    with started("geth", "--dev.period", "2") as (url, _):
        sealed = run_workload(url, sealed_versions, fund=_fund_from_geth)
    result["sealed_commits_per_s"] = sealed["commits_per_s"]
    result["cold_start_s"] = cold_start("geth")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=1000)
    parser.add_argument("--sealed-versions", type=int, default=10,
                        help="commits on geth sealing a block every 2 s (each takes up to 2 s)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if not GETH.exists():
        sys.exit(f"{GETH} is missing: run `make setup` to build it")
    devnet, anvil = bench_devnet(args.versions), bench_anvil(args.versions)
    geth = bench_geth(args.versions, args.sealed_versions)
    report = {"versions": args.versions, "sealed_versions": args.sealed_versions,
              "devnet": devnet, "anvil": anvil, "geth": geth}
    for name, r in (("devnet", devnet), ("geth", geth)):
        report[f"{name}_vs_anvil"] = {"commits_per_s": r["commits_per_s"] / anvil["commits_per_s"],
                                      "get_logs_ms": r["get_logs_ms"] / anvil["get_logs_ms"],
                                      "cold_start_s": r["cold_start_s"] / anvil["cold_start_s"]}
    if args.json:
        print(json.dumps(report))
        return
    print(f"{args.versions} commitVersion transactions, receipts awaited, then eth_getLogs over all "
          "of them (median of 20); cold start to first answer (median of 3)")
    for name, r in (("devnet", devnet), ("anvil", anvil), ("geth", geth)):
        print(f"  {name:7s} {r['commits_per_s']:8.1f} commits/s   getLogs {r['get_logs_ms']:8.1f} ms   "
              f"cold start {r['cold_start_s']:6.2f} s")
    for name in ("devnet", "geth"):
        ratio = report[f"{name}_vs_anvil"]
        print(f"  {name}/anvil: throughput x{ratio['commits_per_s']:.2f}, getLogs latency "
              f"x{ratio['get_logs_ms']:.2f}, cold start x{ratio['cold_start_s']:.2f}")
    print(f"  geth sealing every 2 s: {geth['sealed_commits_per_s']:.2f} commits/s "
          f"({args.sealed_versions} commits, each waiting for its block)")
    print(f"  devnet restart on {args.versions + 2}-block chain: {devnet['restart_s']:.2f} s")


if __name__ == "__main__":
    main()
