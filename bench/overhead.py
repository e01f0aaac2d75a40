"""Registration overhead: the wall time of `modelreg train-and-register` against training alone, in one run.

    python bench/overhead.py [--json] [--repeat N] [--steps N]

A, the baseline, is `training.trainer.train(preset("tiny"), corpus, out)` in a
fresh Python process, so that both sides pay for starting Python and importing
torch, as any training command would. B is the product path, `modelreg --home H
train-and-register --preset tiny --json`, in a subprocess, on the embedded
devnet of a fresh data directory H. Each B gets its own H, with the devnet
started and the contract deployed before the clock starts (that startup is
reported apart), and stopped afterwards. Every run writes to a fresh
directory. The runs alternate A,B then B,A (--repeat pairs in all), because
shared machines are noisy; the overhead is median(B) / median(A) - 1, and the
target is at most 5%.

Where B's time goes is read from the outside, from the modification times of
the files in its run directory: run.json (written once the dataset is
sealed locally), tokenizer.json (training starts), the last checkpoint (the last
step is done) and journal.jsonl (its last line is the last commit). So
`registration_wait_s` is how long the command waited, after the last
checkpoint was written, for registration to finish. CPU seconds are counted
too, the devnet's among them: they are less sensitive to other load than wall
time.
"""

import argparse
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from modelreg.training.config import preset

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "training" / "corpus" / "shakespeare"  # what train-and-register trains on by default
PRESET = "tiny"
# The console script of this interpreter's environment: the same code A runs.
MODELREG = shutil.which("modelreg", path=str(Path(sys.executable).parent)) or shutil.which("modelreg")


def _env() -> dict:
    # A MODELREG_RPC_URL or MODELREG_HOME of the caller would send B to another chain or directory.
    return {k: v for k, v in os.environ.items() if not k.startswith("MODELREG_")}


def _modelreg(home: Path, *args: str) -> str:
    out = subprocess.run([MODELREG, "--home", str(home), *args], capture_output=True, text=True, env=_env())
    if out.returncode != 0:
        raise SystemExit(f"modelreg {' '.join(args)} failed ({out.returncode}): {out.stderr.strip()[-500:]}")
    return out.stdout


def _cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _cpu_of(pid: int) -> float:
    """User + system seconds of another process, from /proc (the devnet is not our child)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _mtime(path: Path) -> float:
    return path.stat().st_mtime_ns / 1e9


def _last_checkpoint_written(run_dir: Path) -> float:
    """When the last step's checkpoint (weights and optimizer state) was on disk."""
    newest = max(run_dir.glob("ckpt-*.safetensors"), key=lambda p: int(p.name.split("-")[1].split(".")[0]))
    step = newest.name.split(".")[0]
    return max(_mtime(p) for p in run_dir.glob(f"{step}.*safetensors"))


ALONE = """
import json, sys
from modelreg.training.config import TrainConfig
from modelreg.training.trainer import train
result = train(TrainConfig.from_dict(json.loads(sys.argv[1])), sys.argv[2], sys.argv[3])
print(len(result.checkpoints))
"""


def run_alone(config, tmp: Path) -> dict:
    """A: the training call alone, in a fresh Python process."""
    out = tmp / "out"
    cpu, start = _cpu_children(), time.time()
    proc = subprocess.run([sys.executable, "-c", ALONE, json.dumps(config.to_dict()), str(CORPUS), str(out)],
                          capture_output=True, text=True, env=_env(), check=True)
    end = time.time()
    tokenizer, last = _mtime(out / "tokenizer.json"), _last_checkpoint_written(out)
    return {"wall_s": end - start, "cpu_s": _cpu_children() - cpu, "checkpoints": int(proc.stdout.split()[-1]),
            "phases_s": {"setup": tokenizer - start, "training": last - tokenizer, "after_last_checkpoint": end - last}}


def run_registered(config, tmp: Path) -> dict:
    """B: train-and-register in a subprocess, on a devnet started (and a contract deployed) beforehand."""
    home = tmp / "home"
    run_dir = home / "runs" / "bench"  # a run directory must lie inside the data directory
    t0 = time.perf_counter()
    devnet = json.loads(_modelreg(home, "devnet", "up", "--port", "0", "--json"))
    _modelreg(home, "audit", "models", "--json")  # connects, so deploys the contract
    startup = time.perf_counter() - t0
    try:
        cpu, devnet_cpu, start = _cpu_children(), _cpu_of(devnet["pid"]), time.time()
        out = _modelreg(home, "train-and-register", "--preset", PRESET, "--steps", str(config.max_steps),
                        "--run-dir", str(run_dir), "--json")
        end = time.time()
        cpu, devnet_cpu = _cpu_children() - cpu, _cpu_of(devnet["pid"]) - devnet_cpu
    finally:
        _modelreg(home, "devnet", "down")
    registered = _mtime(run_dir / "run.json")
    tokenizer, last = _mtime(run_dir / "tokenizer.json"), _last_checkpoint_written(run_dir)
    committed = _mtime(run_dir / "journal.jsonl")
    return {"wall_s": end - start, "cpu_s": cpu + devnet_cpu, "devnet_cpu_s": devnet_cpu,
            "checkpoints": len(json.loads(out)["versions"]), "devnet_startup_s": startup,
            "phases_s": {"startup_and_dataset_seal": registered - start, "model_and_setup": tokenizer - registered,
                         "training": last - tokenizer, "registration_wait": committed - last,
                         "exit": end - committed}}


def median_of(runs: list[dict], *keys: str) -> float:
    def get(run):
        for k in keys:
            run = run[k]
        return run

    return statistics.median(get(r) for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--repeat", type=int, default=1, help="A/B pairs, alternating AB, BA, ...")
    parser.add_argument("--steps", type=int, help="optimizer steps [default: the preset's]")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still stop the devnet and remove temp dirs
    config = preset(PRESET)
    if args.steps:
        config = replace(config, max_steps=args.steps)

    runs = {"A": [], "B": []}
    order = "".join("AB" if i % 2 == 0 else "BA" for i in range(args.repeat))
    load_before = os.getloadavg()
    for i, which in enumerate(order):
        with tempfile.TemporaryDirectory(prefix=f"overhead-{which}-") as tmp:
            run = (run_alone if which == "A" else run_registered)(config, Path(tmp))
        runs[which].append({"order": i, **run})
        if not args.json:
            print(f"  {i + 1}/{len(order)} {which}: {run['wall_s']:7.1f} s wall  {run['cpu_s']:7.1f} s CPU  "
                  + "  ".join(f"{k} {v:.1f}" for k, v in run["phases_s"].items()), flush=True)

    a, b = runs["A"], runs["B"]
    phases_b = {k: median_of(b, "phases_s", k) for k in b[0]["phases_s"]}
    report = {
        "bench": "overhead", "preset": PRESET, "steps": config.max_steps, "repeat": args.repeat, "order": order,
        "cpus": len(os.sched_getaffinity(0)), "load_avg_before": load_before, "load_avg_after": os.getloadavg(),
        "runs": runs,
        "median_wall_s": {"A": median_of(a, "wall_s"), "B": median_of(b, "wall_s")},
        "median_cpu_s": {"A": median_of(a, "cpu_s"), "B": median_of(b, "cpu_s")},
        "overhead": median_of(b, "wall_s") / median_of(a, "wall_s") - 1,
        "cpu_overhead": median_of(b, "cpu_s") / median_of(a, "cpu_s") - 1,
        "median_phases_s": {"A": {k: median_of(a, "phases_s", k) for k in a[0]["phases_s"]}, "B": phases_b},
        "median_registration_wait_s": phases_b["registration_wait"],
        "median_devnet_startup_s": median_of(b, "devnet_startup_s"),
        "target": 0.05, "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    report["within_target"] = report["overhead"] <= report["target"]
    if args.json:
        print(json.dumps(report))
        return
    wall, cpu = report["median_wall_s"], report["median_cpu_s"]
    print(f"{PRESET} preset, {config.max_steps} steps, {b[0]['checkpoints']} checkpoints, order {order}, "
          f"{report['cpus']} CPUs, load {load_before[0]:.1f} -> {report['load_avg_after'][0]:.1f}")
    print(f"  training alone (A)       median {wall['A']:7.1f} s wall  {cpu['A']:7.1f} s CPU")
    print(f"  train-and-register (B)   median {wall['B']:7.1f} s wall  {cpu['B']:7.1f} s CPU "
          f"(devnet {median_of(b, 'devnet_cpu_s'):.1f})")
    print(f"  overhead B/A - 1         {report['overhead']:+.1%} wall  {report['cpu_overhead']:+.1%} CPU  "
          f"(target <= {report['target']:.0%}: {'met' if report['within_target'] else 'MISSED'})")
    print(f"  B waited {report['median_registration_wait_s']:.1f} s after the last checkpoint for registration; "
          f"devnet start + deploy {report['median_devnet_startup_s']:.1f} s (not counted)")


if __name__ == "__main__":
    main()
