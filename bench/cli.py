"""CLI start-up: wall time of three everyday commands against the bare interpreter, in one run.

    python bench/cli.py [--json] [--runs N]

Each command runs as a fresh process, as a user types it; every figure is the median of
--runs runs after one warm-up, and the baseline `python -c pass` (the same interpreter,
so the same site-packages to scan) is measured in the same run, interleaved with the others,
because shared machines are noisy. Targets (issue: one modelreg namespace):

- `modelreg --help`: at most 3x the bare interpreter;
- `modelreg audit history M` against a running devnet with a warm event index: at most 1.0 s;
- `modelreg verify CKPT --model M` of a small checkpoint: at most 1.5 s.

The data directory is made first through the public API: the embedded devnet with three
committed versions of a two-tensor checkpoint, and one history read to warm the index.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

import modelreg
from modelreg.devnet import manager

MODELREG = shutil.which("modelreg", path=str(Path(sys.executable).parent)) or shutil.which("modelreg")
TARGETS = {"help": ("ratio", 3.0), "audit_history": ("seconds", 1.0), "verify": ("seconds", 1.5)}


def _env() -> dict:
    return {k: v for k, v in os.environ.items() if not k.startswith("MODELREG_")}


def _wall(cmd: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, env=_env())
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.decode()[-400:]}")
    return elapsed


def _setup(home: Path) -> Path:
    registry = modelreg.connect(home)
    for i in range(3):
        path = home / f"ckpt-{i}.safetensors"
        save_file({"w": np.full((64, 64), i, dtype=np.float32), "b": np.zeros(64, dtype=np.float32)}, str(path))
        registry.commit(path, "bench-cli", parent=i or None, step=i)
    registry.history("bench-cli")  # the event index is warm from here on
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        last = _setup(home)
        commands = {
            "python_pass": [sys.executable, "-c", "pass"],
            "help": [MODELREG, "--help"],
            "audit_history": [MODELREG, "--home", str(home), "audit", "history", "bench-cli"],
            "verify": [MODELREG, "--home", str(home), "verify", str(last), "--model", "bench-cli"],
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        try:
            for cmd in commands.values():  # warm-up: page cache, .pyc files
                _wall(cmd)
            for _ in range(args.runs):
                for name, cmd in commands.items():
                    times[name].append(_wall(cmd))
        finally:
            manager.down(home)
    base = statistics.median(times["python_pass"])
    result = {"runs": args.runs, "python_pass_s": round(base, 4)}
    for name in TARGETS:
        median = statistics.median(times[name])
        kind, target = TARGETS[name]
        value = median / base if kind == "ratio" else median
        result[name] = {"median_s": round(median, 4), "min_s": round(min(times[name]), 4),
                        "max_s": round(max(times[name]), 4), "ratio_to_python": round(median / base, 2),
                        "target": f"<= {target}{'x python' if kind == 'ratio' else ' s'}",
                        "meets_target": value <= target}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"python -c pass: {base * 1000:.1f} ms (median of {args.runs})")
    for name in TARGETS:
        r = result[name]
        print(f"{name:14} {r['median_s'] * 1000:8.1f} ms  {r['ratio_to_python']:6.2f}x python   "
              f"target {r['target']:>16}  {'met' if r['meets_target'] else 'NOT met'}")


if __name__ == "__main__":
    main()
