"""Seal throughput on a ~1 GiB checkpoint against a one-core sha256 pass and sigstore's model_signing.

    python bench/seal.py [--json] [--size-mib 1024] [--repeat 3]

Each measurement runs in a fresh process (so its peak RSS is its own) over
the same file, already in the page cache (a warm-up pass reads it first), and
the best of --repeat runs is kept. Ratios are against the single-threaded
`hashlib.file_digest(f, "sha256")` pass: the one-core limit.

model_signing (sigstore/model-transparency) is not a project dependency; it
lives in its own environment, which this script creates on first use:

    python -m venv /tmp/bench-venv
    /tmp/bench-venv/bin/pip install model-signing pyopenssl

(pyopenssl because model-signing 1.1.1 imports OpenSSL without declaring it.)
Its default configuration (`model_signing.hashing.hash`, one sha256 per file)
and its shard serialization (a file split into 1 GiB shards hashed in
parallel) are both timed. If the venv cannot be built, those rows say why.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

ROOT = Path(__file__).resolve().parent.parent
BENCH_VENV = Path("/tmp/bench-venv")

_MEASURE = r"""
import hashlib, json, sys, time
kind, path = sys.argv[1], sys.argv[2]
if kind == "seal":
    from modelreg.formats.seal import seal_checkpoint
    run = lambda: seal_checkpoint(path)
elif kind == "sha256":
    def run():
        with open(path, "rb") as f:
            hashlib.file_digest(f, "sha256")
elif kind == "model_signing":
    import model_signing.hashing
    run = lambda: model_signing.hashing.hash(path)
elif kind == "model_signing_shards":
    import model_signing.hashing
    run = lambda: model_signing.hashing.Config().use_shard_serialization().hash(path)
start = time.perf_counter()
run()
seconds = time.perf_counter() - start
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"seconds": seconds, "peak_rss": int(hwm.split()[1]) * 1024}))
"""


def build_checkpoint(directory: Path, size_mib: int) -> tuple[Path, int]:
    """A GPT-shaped checkpoint of mixed tensor sizes, about size_mib MiB; returns (path, largest tensor bytes)."""
    rng = np.random.default_rng(0)
    scale = size_mib / 1024
    d, vocab = 1024, max(1024, int(32768 * scale))
    tensors = {"wte.weight": rng.standard_normal((vocab, 2 * d), dtype=np.float32).astype(np.float16),
               "lm_head.weight": rng.standard_normal((vocab, 4 * d), dtype=np.float32).astype(np.float16),
               "step": np.array(1000, dtype=np.int64)}
    for i in range(max(1, int(12 * scale))):
        for name, shape in [("attn.c_attn.weight", (d, 3 * d)), ("attn.c_proj.weight", (d, d)),
                            ("mlp.c_fc.weight", (d, 4 * d)), ("mlp.c_proj.weight", (4 * d, d)),
                            ("ln_1.weight", (d,)), ("ln_1.bias", (d,)), ("mlp.c_fc.bias", (4 * d,))]:
            tensors[f"h.{i}.{name}"] = rng.standard_normal(shape, dtype=np.float32)
    path = directory / "bench.safetensors"
    save_file(tensors, path)
    return path, max(t.nbytes for t in tensors.values())


def bench_python() -> tuple[str | None, str]:
    """The interpreter with model_signing installed, creating /tmp/bench-venv if needed; or None and why."""
    python = BENCH_VENV / "bin" / "python"
    check = [str(python), "-c", "import model_signing.hashing"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return str(python), ""
    try:
        subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True, capture_output=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "model-signing", "pyopenssl"],
                       check=True, capture_output=True)
        subprocess.run(check, check=True, capture_output=True)
    except subprocess.CalledProcessError as e:
        return None, f"could not install model-signing into {BENCH_VENV}: {e.stderr.decode()[-300:]}"
    return str(python), ""


def measure(python: str, kind: str, path: Path, repeat: int) -> dict:
    runs = []
    for _ in range(repeat):
        out = subprocess.run([python, "-c", _MEASURE, kind, str(path)], capture_output=True, check=True,
                             cwd=ROOT, text=True).stdout
        runs.append(json.loads(out))
    best = min(runs, key=lambda r: r["seconds"])
    return {**best, "peak_rss": max(r["peak_rss"] for r in runs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path, largest = build_checkpoint(Path(tmp), args.size_mib)
        size = path.stat().st_size
        measure(sys.executable, "sha256", path, 1)  # warm-up: the file is in the page cache for everyone
        rows = {kind: measure(sys.executable, kind, path, args.repeat) for kind in ("sha256", "seal")}
        python, why = bench_python()
        for kind in ("model_signing", "model_signing_shards"):
            rows[kind] = measure(python, kind, path, args.repeat) if python else {"skipped": why}
    base = rows["sha256"]["seconds"]
    for row in rows.values():
        if "seconds" in row:
            row["mib_per_s"] = size / 2**20 / row["seconds"]
            row["speedup_vs_sha256"] = base / row["seconds"]
    report = {"file_bytes": size, "largest_tensor_bytes": largest, "rows": rows,
              "seal_peak_rss_over_largest_tensor": rows["seal"]["peak_rss"] / largest,
              "cpus": len(__import__("os").sched_getaffinity(0)), "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    if args.json:
        print(json.dumps(report))
        return
    print(f"file {size / 2**20:.0f} MiB, largest tensor {largest / 2**20:.0f} MiB, {report['cpus']} CPUs")
    for kind, row in rows.items():
        if "skipped" in row:
            print(f"{kind:22} skipped: {row['skipped']}")
        else:
            print(f"{kind:22} {row['seconds']:7.3f} s  {row['mib_per_s']:7.0f} MiB/s  "
                  f"{row['speedup_vs_sha256']:5.2f}x sha256  peak RSS {row['peak_rss'] / 2**20:6.0f} MiB")


if __name__ == "__main__":
    main()
