"""Benchmark: the worst fetches a hostile IPFS node can serve an auditor, with the default caps.

    python bench/hostile_fetch.py [--json]

Each scenario runs in its own process (its peak RSS is its own) against KuboRpcTestDouble, a fake
Kubo RPC server (no daemon can serve a lying DAG on purpose): an endless stream answering a manifest
fetch, a file of a few KiB of blocks declaring 64 GiB, a directory nested past the depth cap, and a
directory of 32,768 files made of a few shared blocks (within the default entry cap: it is written).
Baseline: an honest 1 MiB manifest-sized fetch from the same node. Aim: every refusal within 5 s
and under 300 MB peak RSS.
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SCENARIOS = ("honest-1mib", "endless-stream", "declares-64gib", "depth-65", "shared-32768-files")


def run_scenario(name: str) -> dict:
    from modelreg.errors import ModelregError
    from modelreg.ipfs.store import open_ipfs
    from modelreg.service.audit import fetch_manifest
    from tests.registry.ipfs.kubo_test_double import KuboRpcTestDouble
    from tests.registry.ipfs.test_fetch_caps import lying_file, nested_directory

    with tempfile.TemporaryDirectory() as tmp, KuboRpcTestDouble(Path(tmp) / "stranger") as node:
        auditor = open_ipfs(Path(tmp) / "auditor", api=node.url)
        if name == "honest-1mib":
            cid = node.store.add_bytes(b"{" + b" " * ((1 << 20) - 2) + b"}")
            fetch = lambda: fetch_manifest(auditor.cat, cid)  # noqa: E731
        elif name == "endless-stream":
            node.mode = "endless-export"
            fetch = lambda: fetch_manifest(auditor.cat, "bafkqaaa")  # noqa: E731
        elif name == "declares-64gib":
            cid = lying_file(node.store)
            fetch = lambda: fetch_manifest(auditor.cat, cid)  # noqa: E731
        elif name == "depth-65":
            cid = nested_directory(node.store, depth=65)
            fetch = lambda: auditor.get(cid, Path(tmp) / "out")  # noqa: E731
        else:
            cid = nested_directory(node.store, depth=3, width=32)
            fetch = lambda: auditor.get(cid, Path(tmp) / "out")  # noqa: E731
        start = time.perf_counter()
        try:
            fetch()
            outcome = "fetched"
        except ModelregError as e:
            outcome = f"refused: {type(e).__name__}: {str(e)[:160]}"
        seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"scenario": name, "seconds": round(seconds, 3), "peak_rss_mb": round(peak_kib / 1024, 1),
            "outcome": outcome}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--scenario", choices=SCENARIOS, help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.scenario:
        print(json.dumps(run_scenario(args.scenario)))
        return 0
    results = []
    for name in SCENARIOS:
        out = subprocess.run([sys.executable, __file__, "--scenario", name], cwd=ROOT, capture_output=True,
                             text=True, timeout=600)
        if out.returncode:
            sys.exit(f"{name} failed:\n{out.stderr}")
        results.append(json.loads(out.stdout))
    base = results[0]["seconds"] or 1e-9
    for r in results:
        r["time_vs_honest_1mib"] = round(r["seconds"] / base, 2)
    refused = [r for r in results if r["outcome"].startswith("refused")]
    summary = {"results": results,
               "worst_refusal_s": max(r["seconds"] for r in refused),
               "worst_refusal_peak_rss_mb": max(r["peak_rss_mb"] for r in refused),
               "aim": "refused within 5 s, peak RSS under 300 MB"}
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"{'scenario':<22}{'seconds':>9}{'x honest':>10}{'peak RSS MB':>13}  outcome")
    for r in results:
        print(f"{r['scenario']:<22}{r['seconds']:>9.3f}{r['time_vs_honest_1mib']:>10.2f}{r['peak_rss_mb']:>13.1f}  "
              f"{r['outcome'][:90]}")
    print(f"worst refusal: {summary['worst_refusal_s']} s, {summary['worst_refusal_peak_rss_mb']} MB "
          f"(aim: {summary['aim']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
