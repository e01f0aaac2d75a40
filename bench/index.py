"""The event index on a registry of a million events: build, incremental update, warm reads, size, memory.

    python bench/index.py [--json] [--events 100000,1000000] [--models 10000] [--update 1000]
                          [--baseline-max 100000] [--repeat 5]

A synthetic registry (--models models; each registers, then commits about 90 versions with a
revocation and a maintainer change every 20 rounds; every tenth model fine-tunes its neighbour's
version 1, under another owner) is served by a fake log source through the same interface the
chain's is read through: `head()`, `block_hash(n)` and `fetch(first, last)` returning web3-shaped
decoded logs, ten to a block. For each --events size it measures the full index build (events per
second), an update of --update new events, and warm `audit history`, `find-root` and `lineage` of
one model, each from a fresh `EventIndex` as a new CLI process opens it (the chain check included,
Python's start-up not). Aims: warm reads <= 100 ms, update <= 1 s, index <= 2x the raw logs
(topics and ABI data, 32 bytes a word), peak RSS reported.

The baseline, for sizes up to --baseline-max, is what the v1 index did on every read: load the whole
log from one JSON file and scan it in Python (the same audit functions over a list); the ratio is
the index's time over the baseline's. Sizes above it are too big for the baseline's memory.
"""

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

from modelreg.service import audit
from modelreg.service.index import EventIndex

PER_BLOCK = 10  # logs per block
ROUNDS = 20  # each model's events repeat in rounds of 20: 18 commits, a maintainer added, a revocation
ROUND_KIND = ["VersionCommitted"] * 9 + ["MaintainerAdded"] + ["VersionCommitted"] * 9 + ["VersionRevoked"]
COMMITS_BEFORE = [ROUND_KIND[:i].count("VersionCommitted") for i in range(ROUNDS + 1)]


def _b32(*parts: int) -> bytes:
    return b"".join(p.to_bytes(8, "big") for p in parts).rjust(32, b"\0")


def _account(n: int) -> str:
    return "0x" + f"{n:040x}"


class SyntheticRegistry:
    """Event i of a registry of `models` models, computed from i alone: a log source of any length that
    holds nothing in memory."""

    def __init__(self, models: int, events: int):
        self.models, self.events = models, events

    @property
    def head(self) -> int:
        return (self.events - 1) // PER_BLOCK

    def owner(self, m: int) -> str:
        return _account(0x1000 + m)

    def version_of_round(self, r: int) -> int:
        return (r // ROUNDS) * COMMITS_BEFORE[ROUNDS] + COMMITS_BEFORE[r % ROUNDS] + 1

    def event(self, i: int) -> dict:
        block, log_index = divmod(i, PER_BLOCK)
        base = {"blockNumber": block, "logIndex": log_index, "transactionHash": _b32(i, 7)}
        if i < self.models:
            m = i + 1
            return {**base, "event": "ModelRegistered",
                    "args": {"modelId": m, "name": f"model-{m:05d}", "owner": self.owner(m), "metadata": ""}}
        k = i - self.models
        m, r = k % self.models + 1, k // self.models
        kind = ROUND_KIND[r % ROUNDS]
        if kind == "MaintainerAdded":
            return {**base, "event": kind, "args": {"modelId": m, "account": _account(0x9000 + r)}}
        version = self.version_of_round(r)
        if kind == "VersionRevoked":
            return {**base, "event": kind, "args": {"modelId": m, "version": version - 1, "reason": "superseded",
                                                    "replacement": version, "revoker": self.owner(m)}}
        parent = (m, version - 1) if version > 1 else ((m - 1, 1) if m % 10 == 0 else (0, 0))
        return {**base, "event": kind, "args": {
            "modelId": m, "version": version, "weightsRoot": _b32(m, version, 1), "tensorCount": 148,
            "filesRoot": bytes(32), "datasetId": 1 + m % 50, "datasetRoot": _b32(1 + m % 50, 2),
            "parentModel": parent[0], "parentVersion": parent[1],
            "manifestCid": "bafkrei" + f"{m:08d}{version:06d}".ljust(52, "a"), "committer": self.owner(m)}}

    def fetch(self, first: int, last: int) -> list[dict]:
        start, stop = first * PER_BLOCK, min((last + 1) * PER_BLOCK, self.events)
        return [self.event(i) for i in range(start, stop)]

    def index(self, home: Path) -> EventIndex:
        return EventIndex(home, chain_id=31337, address=_account(0xABC), from_block=0, head=lambda: self.head,
                          block_hash=lambda n: "0x" + f"{n:064x}", fetch=self.fetch)


def raw_size(e: dict) -> int:
    """The log as the chain stores it: 32 bytes a topic, and the ABI-encoded data (a word per static
    value; a string is an offset, a length and its padded bytes)."""
    topics = {"ModelRegistered": 3, "MaintainerAdded": 3, "VersionRevoked": 4, "VersionCommitted": 4}[e["event"]]
    strings = [v for k, v in e["args"].items() if isinstance(v, str) and not v.startswith("0x")]
    static = {"ModelRegistered": 2, "MaintainerAdded": 0, "VersionRevoked": 2, "VersionCommitted": 8}[e["event"]]
    return 32 * topics + 32 * static + sum(32 + 32 * ((len(s.encode()) + 31) // 32) for s in strings)


def _best(run, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reads(source: SyntheticRegistry, home: Path, model: int, repeat: int) -> dict[str, float]:
    """Warm history, find-root and lineage of `model`, each through a fresh index as a CLI run opens it."""
    name, root = f"model-{model:05d}", "0x" + _b32(model, 1, 1).hex()

    def fresh():
        return source.index(home).events()

    def history():
        events = fresh()
        return audit.history(events, audit.find_model(events, name)["id"])

    def find_root():
        return audit.find_root(fresh(), root)

    def lineage():
        events = fresh()
        return audit.lineage(events, audit.find_model(events, name)["id"])

    assert len(history()) > 1 and len(find_root()) == 1 and len(lineage()["edges"]) > 1
    return {"history_s": _best(history, repeat), "find_root_s": _best(find_root, repeat),
            "lineage_s": _best(lineage, repeat)}


def measure_index(events: int, models: int, update: int, repeat: int, home: Path) -> dict:
    source = SyntheticRegistry(models, events)
    raw = sum(raw_size(source.event(i)) for i in range(events))
    index = source.index(home)
    start = time.perf_counter()
    added = index.update()
    build = time.perf_counter() - start
    index.close()
    assert added == events, (added, events)
    source.events += update
    index = source.index(home)
    start = time.perf_counter()
    added = index.update()
    incremental = time.perf_counter() - start
    index.close()  # the last connection: SQLite folds the write-ahead log back into the file
    assert added == update, (added, update)
    size = sum(p.stat().st_size for p in index.path.parent.glob(index.path.name + "*"))
    return {"events": events, "models": models, "build_s": build, "build_events_per_s": events / build,
            "update_events": update, "update_s": incremental,
            **reads(source, home, models // 2 if models >= 20 else 10, repeat),
            "index_bytes": size, "raw_log_bytes": raw, "size_ratio": size / raw, "peak_rss_mb": _rss_mb()}


def measure_baseline(events: int, models: int, repeat: int, home: Path) -> dict[str, float]:
    """The v1 index's read: the whole log from one JSON file, scanned in Python for each question."""
    source = SyntheticRegistry(models, events)
    log = home / "v1.json"
    log.write_text(json.dumps({"events": [audit.normalize(source.event(i)) for i in range(events)]}))
    model = models // 2 if models >= 20 else 10
    name, root = f"model-{model:05d}", "0x" + _b32(model, 1, 1).hex()

    def load():
        return json.loads(log.read_text())["events"]

    def history():
        events = load()
        return audit.history(events, audit.find_model(events, name)["id"])

    def lineage():
        events = load()
        return audit.lineage(events, audit.find_model(events, name)["id"])

    return {"history_s": _best(history, repeat), "find_root_s": _best(lambda: audit.find_root(load(), root), repeat),
            "lineage_s": _best(lineage, repeat)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    parser.add_argument("--events", default="100000,1000000", help="registry sizes, comma-separated")
    parser.add_argument("--models", type=int, default=10_000)
    parser.add_argument("--update", type=int, default=1_000, help="new events in the incremental update")
    parser.add_argument("--baseline-max", type=int, default=100_000,
                        help="largest size at which the v1 JSON baseline is measured too")
    parser.add_argument("--repeat", type=int, default=5, help="runs per read; the best is kept")
    args = parser.parse_args()
    sizes = [int(s) for s in args.events.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="modelreg-bench-index-") as tmp:
        for n in sizes:  # every index first: the baseline's memory would hide the index's peak RSS
            rows.append(measure_index(n, args.models, args.update, args.repeat, Path(tmp) / f"index-{n}"))
            print(f"indexed {n} events", file=sys.stderr)
        for row in rows:
            if row["events"] <= args.baseline_max:
                base = measure_baseline(row["events"], args.models, max(1, args.repeat // 2), Path(tmp))
                row["baseline"] = base
                row["ratios"] = {k: row[k] / base[k] for k in base}
    if args.json:
        print(json.dumps({"rows": rows}, indent=2))
        return
    for r in rows:
        print(f"{r['events']:,} events, {r['models']:,} models")
        print(f"  full build      {r['build_s']:8.1f} s    {r['build_events_per_s']:,.0f} events/s")
        print(f"  update of {r['update_events']:,}  {r['update_s'] * 1000:8.1f} ms   (aim <= 1000 ms)")
        for key, label in (("history_s", "audit history"), ("find_root_s", "find-root"), ("lineage_s", "lineage")):
            ratio = f"   {r['ratios'][key]:.4f}x the v1 JSON index ({r['baseline'][key] * 1000:.0f} ms)" \
                if "ratios" in r else ""
            print(f"  warm {label:<14}{r[key] * 1000:8.1f} ms (aim <= 100 ms){ratio}")
        print(f"  index on disk   {r['index_bytes'] / 1e6:8.1f} MB   {r['size_ratio']:.2f}x the raw logs "
              f"({r['raw_log_bytes'] / 1e6:.1f} MB; aim <= 2x)")
        print(f"  peak RSS        {r['peak_rss_mb']:8.0f} MB")


if __name__ == "__main__":
    main()
