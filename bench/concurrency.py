"""Benchmark: one data directory shared by many processes: adds, commits and gc at once, no pin lost.

    python bench/concurrency.py [--adds 64] [--commits 32] [--procs 1,4,16] [--gc-blocks 10000] [--json]

Measured, each in a fresh data directory on this machine's disk:

- adds/s: `--adds` adds of 2 MiB each (two 1 MiB leaves and a node, pinned), split across 1, 4
  and 16 processes of `EmbeddedIpfs.add_bytes`. Processes start and open the store before the
  clock starts (a barrier), so the figure is the store's, not Python's start-up.
- commits/s: `--commits` commits of distinct 64 KiB safetensors files to one model through
  `modelreg.connect(home).commit` on the embedded devnet, split across 1, 4 and 16 processes,
  connected before the clock starts.
- gc: `ipfs gc` of a store of `--gc-blocks` blocks (half pinned, half not), alone (the baseline)
  and while 4 processes keep adding; gc waits for the writers' pins, never deletes their blocks.

Ratios are against the 1-process run of the same run of this script. After every run, every pin a
process reported must be in the pin set and `ipfs check` must pass: `lost_pins` counts the misses
(aim: 0 in every run; throughput with 4 processes >= 1.5x one process on 2 cores).
"""

import argparse
import json
import multiprocessing
import os
import queue
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from safetensors.numpy import save_file  # noqa: E402

import modelreg  # noqa: E402
from modelreg.devnet import manager  # noqa: E402
from modelreg.ipfs.embedded import EmbeddedIpfs  # noqa: E402

CTX = multiprocessing.get_context("spawn")
MiB = 1 << 20


def _adder(home, seed, count, start, out) -> None:
    ipfs = EmbeddedIpfs(home)
    start.wait()
    for i in range(count):
        out.put(ipfs.add_bytes(os.urandom(16) + bytes([seed % 256, i % 256]) * MiB))


def _committer(home, files, start, out) -> None:
    registry = modelreg.connect(home)
    registry.model_id_or_register("bench", "")
    start.wait()
    for path in files:
        out.put(registry.commit(path, "bench").checkpoint_cid)


def _run(target, jobs: list[tuple], count: int) -> tuple[float, list[str]]:
    """Start one process per job, release them together, time until `count` results came back."""
    start, out = CTX.Event(), CTX.Queue()
    procs = [CTX.Process(target=target, args=(*job, start, out)) for job in jobs]
    for p in procs:
        p.start()
    time.sleep(min(2 + len(procs) * 0.5, 20))  # every process opened its store (or connected)
    t0 = time.perf_counter()
    start.set()
    results = []
    while len(results) < count:
        try:
            results.append(out.get(timeout=1))
        except queue.Empty:
            if not any(p.is_alive() for p in procs) and out.empty():
                break  # a process failed (its traceback is on stderr): the rest count as failures
    elapsed = time.perf_counter() - t0
    for p in procs:
        p.join(60)
    return elapsed, results


def _lost(home, reported: list[str]) -> int:
    ipfs = EmbeddedIpfs(home)
    ipfs.gc()  # anything gc could wrongly take, it takes now
    report = ipfs.check()
    if report.problems:
        print("check found:", *report.problems[:5], sep="\n  ", file=sys.stderr)
    return len(set(reported) - set(ipfs.pins())) + len(report.problems)


def _split(total: int, n: int) -> list[int]:
    return [total // n + (i < total % n) for i in range(n)]


def bench_adds(root: Path, total: int, procs: int) -> dict:
    home = root / f"adds-{procs}"
    EmbeddedIpfs(home)
    elapsed, cids = _run(_adder, [(home, i, c) for i, c in enumerate(_split(total, procs))], total)
    return {"processes": procs, "adds": total, "failed": total - len(cids), "seconds": elapsed,
            "per_s": len(cids) / elapsed, "lost_pins": _lost(home, cids)}


def bench_commits(root: Path, total: int, procs: int) -> dict:
    home = root / f"commits-{procs}"
    models = root / f"models-{procs}"
    models.mkdir()
    files = []
    for i in range(total):
        path = models / f"m{i}.safetensors"
        save_file({"w": np.random.default_rng(i + 1000 * procs).standard_normal(16 * 1024).astype(np.float32)}, path)
        files.append(path)
    modelreg.connect(home)  # the devnet started and the registry deployed, untimed
    try:
        chunks, at = [], 0
        for c in _split(total, procs):
            chunks.append((home, files[at:at + c]))
            at += c
        elapsed, cids = _run(_committer, chunks, total)
        lost = _lost(home, cids)
    finally:
        manager.down(home)
    return {"processes": procs, "commits": total, "failed": total - len(cids), "seconds": elapsed,
            "per_s": len(cids) / elapsed, "lost_pins": lost}


def _store_of_blocks(home: Path, blocks: int) -> None:
    """About `blocks` blocks: two directories of small files, one pinned, one not."""
    ipfs = EmbeddedIpfs(home)
    for name, pin in (("kept", True), ("dropped", False)):
        tree = home.parent / f"tree-{name}"
        tree.mkdir()
        for i in range(blocks // 2):
            (tree / f"f{i:05d}").write_bytes(f"{name} {i}\n".encode())
        ipfs.add(tree, pin=pin)
        shutil.rmtree(tree)


def _writer_loop(home, seed, stop, out) -> None:
    ipfs = EmbeddedIpfs(home)
    i = 0
    while not stop.is_set():
        out.put(ipfs.add_bytes(os.urandom(16) + bytes([seed, i % 256]) * (MiB // 4)))
        i += 1


def bench_gc(root: Path, blocks: int, writers: int) -> dict:
    home = root / f"gc-{writers}" / "home"
    home.parent.mkdir()
    _store_of_blocks(home, blocks)
    stored = sum(1 for _ in EmbeddedIpfs(home).store.cids())
    stop, out = CTX.Event(), CTX.Queue()
    procs = [CTX.Process(target=_writer_loop, args=(home, i, stop, out)) for i in range(writers)]
    for p in procs:
        p.start()
    if procs:
        time.sleep(3)  # the writers are adding
    t0 = time.perf_counter()
    removed = EmbeddedIpfs(home).gc()
    elapsed = time.perf_counter() - t0
    stop.set()
    reported = []
    for p in procs:
        while p.is_alive():
            while not out.empty():
                reported.append(out.get())
            p.join(0.1)
    while not out.empty():
        reported.append(out.get())
    return {"writers": writers, "blocks": stored, "removed": removed, "seconds": elapsed,
            "writer_adds": len(reported), "lost_pins": _lost(home, reported)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adds", type=int, default=64)
    parser.add_argument("--commits", type=int, default=32)
    parser.add_argument("--procs", default="1,4,16", help="process counts, comma-separated; the first is the baseline")
    parser.add_argument("--gc-blocks", type=int, default=10_000)
    parser.add_argument("--dir", default=None, help="where the data directories go [default: a temp directory]")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    counts = [int(n) for n in args.procs.split(",")]
    root = Path(tempfile.mkdtemp(prefix="bench-concurrency-", dir=args.dir))
    try:
        adds = [bench_adds(root, args.adds, n) for n in counts]
        commits = [bench_commits(root, args.commits, n) for n in counts]
        gc = [bench_gc(root, args.gc_blocks, w) for w in (0, 4)]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    for runs in (adds, commits):
        for r in runs:
            r["ratio"] = r["per_s"] / runs[0]["per_s"]
    gc[1]["ratio"] = gc[1]["seconds"] / gc[0]["seconds"]
    lost = sum(r["lost_pins"] for r in [*adds, *commits, *gc])
    failed = sum(r["failed"] for r in [*adds, *commits])
    four = next((r for r in adds if r["processes"] == 4), None)
    report = {"cpus": os.cpu_count(), "load_avg": os.getloadavg(), "adds": adds, "commits": commits, "gc": gc,
              "lost_pins": lost, "failed": failed, "target_met": lost == failed == 0 and (four is None or four["ratio"] >= 1.5)}
    if args.json:
        print(json.dumps(report))
        return
    print(f"{report['cpus']} CPUs, load {report['load_avg'][0]:.1f}")
    for r in adds:
        print(f"  adds    {r['processes']:>3} procs: {r['per_s']:7.1f}/s  {r['ratio']:5.2f}x  lost {r['lost_pins']}  failed {r['failed']}")
    for r in commits:
        print(f"  commits {r['processes']:>3} procs: {r['per_s']:7.2f}/s  {r['ratio']:5.2f}x  lost {r['lost_pins']}  "
              f"failed {r['failed']}")
    for r in gc:
        print(f"  gc of {r['blocks']} blocks, {r['writers']} writers: {r['seconds']:.2f} s, removed {r['removed']}, "
              f"writers added {r['writer_adds']}, lost {r['lost_pins']}" + (f"  {r['ratio']:.2f}x alone" if r["writers"] else ""))
    print(f"  lost pins in all runs: {lost}, failed operations: {failed}; target met: {report['target_met']}")


if __name__ == "__main__":
    main()
