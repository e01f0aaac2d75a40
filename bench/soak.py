"""SIGKILL soak of train-and-register: kill it at random moments, resume each time, then compare.

    python bench/soak.py [--json] [--kills 10] [--steps 45] [--eval-interval 3] [--seed 0]
                         [--devnet-kills 2]

One data directory trains a run of --steps steps and is SIGKILLed --kills times at random moments
(as a checkpoint file appears, as one is journaled for registration, as one is committed, or a
random delay into training), each time started again with --resume; --devnet-kills of those also SIGKILL the embedded devnet. A final --resume runs it to the
end. A second data directory trains the same run uninterrupted: the baseline. The figures: versions
on-chain against checkpoints written, duplicate roots (must be 0), whether every version's parent is
the one before, and whether the final checkpoint's root equals the uninterrupted run's. The ratio is
the soak's wall time over the baseline's.
"""

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "training" / "corpus" / "shakespeare"
MODEL = "soak"


def _cli(home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "modelreg.cli", "--home", str(home), *args]


def _run_args(data: Path, args) -> list[str]:
    return ["train-and-register", "--data", str(data), "--model", MODEL, "--steps", str(args.steps),
            "--eval-interval", str(args.eval_interval), "--json"]


def _journal(run_dir: Path) -> list[dict]:
    path = run_dir / "journal.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def _phase(run_dir: Path) -> str:
    records = _journal(run_dir)
    seen = {r["step"] for r in records if r["kind"] == "seen"}
    committed = {r["step"] for r in records if r["kind"] == "committed"}
    if not (run_dir / "run.json").exists():
        return "starting"
    return "registering" if seen - committed else "training"


def _small_data(directory: Path) -> Path:
    """Two files cut from the committed corpus (as the CLI tests use): a tiny run in seconds."""
    directory.mkdir()
    for source in sorted(DATA.glob("*.txt"))[:2]:
        (directory / source.name).write_bytes(source.read_bytes()[:30_000])
    return directory


def _count(run_dir: Path, kind: str) -> int:
    return sum(1 for r in _journal(run_dir) if r["kind"] == kind)


def _trigger(run_dir: Path, rng: random.Random):
    """A random moment to kill at, as a condition polled every 10 ms: when a checkpoint file appears,
    when one is journaled as seen (registration under way), when one is committed, or a random delay
    into training. Timers alone mostly hit start-up on a loaded machine."""
    done = _count(run_dir, "committed")
    kind = rng.choice(["file", "seen", "committed", "delay"])
    if kind == "file":
        count = len(list(run_dir.glob("ckpt-*[0-9].safetensors"))) + 1
        return kind, lambda: len(list(run_dir.glob("ckpt-*[0-9].safetensors"))) >= count
    if kind in ("seen", "committed"):
        target = _count(run_dir, kind) + 1 if kind == "seen" else done + 1
        return kind, lambda: _count(run_dir, kind) >= target
    delay, started = rng.uniform(0.0, 3.0), []

    def after_delay():
        if not started and (run_dir / "tokenizer.json").exists():
            started.append(time.monotonic())
        return bool(started) and time.monotonic() - started[0] >= delay

    return kind, after_delay


def soak(work: Path, data: Path, args, rng: random.Random) -> dict:
    from modelreg.devnet import manager

    home = work / "soaked"
    run_dir = home / "runs" / MODEL
    subprocess.run(_cli(home, "audit", "models"), check=True, capture_output=True)  # devnet up, deployed
    kills, devnet_kills, phases, triggers, start = 0, 0, {}, {}, time.perf_counter()
    first = True
    while kills < args.kills:
        trigger, condition = _trigger(run_dir, rng)
        proc = subprocess.Popen(_cli(home, *_run_args(data, args), *([] if first else ["--resume"])),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        first = False
        while proc.poll() is None and not condition():
            time.sleep(0.01)
        if proc.poll() is not None:  # finished (or failed) before the kill: a failure is a finding
            if proc.returncode != 0:
                raise SystemExit(f"a resumed run failed:\n{proc.stderr.read().decode()[-3000:]}")
            break
        phase = _phase(run_dir)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        phases[phase] = phases.get(phase, 0) + 1
        triggers[trigger] = triggers.get(trigger, 0) + 1
        if devnet_kills < args.devnet_kills and rng.random() < 0.5:
            status = manager.status(home)
            if status.running:
                os.kill(status.pid, signal.SIGKILL)
                devnet_kills += 1
    final = subprocess.run(_cli(home, *_run_args(data, args), "--resume"), capture_output=True)
    if final.returncode != 0:
        raise SystemExit(f"the final resume failed:\n{final.stderr.decode()[-3000:]}")
    seconds = time.perf_counter() - start
    history = json.loads(subprocess.run(_cli(home, "audit", "history", MODEL, "--json"), check=True,
                                        capture_output=True).stdout)
    manager.down(home)
    return {"home": home, "kills": kills, "devnet_kills": devnet_kills, "kill_phases": phases,
            "kill_triggers": triggers, "history": history, "seconds": seconds}


def baseline(work: Path, data: Path, args) -> tuple[Path, float]:
    from modelreg.devnet import manager

    home = work / "clean"
    subprocess.run(_cli(home, "audit", "models"), check=True, capture_output=True)
    start = time.perf_counter()
    subprocess.run(_cli(home, *_run_args(data, args)), check=True, capture_output=True)
    seconds = time.perf_counter() - start
    manager.down(home)
    return home, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="one JSON object instead of text")
    parser.add_argument("--kills", type=int, default=10, help="SIGKILLs of train-and-register")
    parser.add_argument("--devnet-kills", type=int, default=2, help="of those, how many also kill the devnet")
    parser.add_argument("--steps", type=int, default=45, help="enough checkpoints that the kills land mid-run")
    parser.add_argument("--eval-interval", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0, help="seeds the kill times")
    args = parser.parse_args()
    from modelreg.formats.seal import seal_checkpoint

    with tempfile.TemporaryDirectory(prefix="modelreg-soak-") as tmp:
        work = Path(tmp)
        data = _small_data(work / "data")
        clean_home, clean_seconds = baseline(work, data, args)
        result = soak(work, data, args, random.Random(args.seed))
        run_dir = result["home"] / "runs" / MODEL
        written = sorted(run_dir.glob("ckpt-*[0-9].safetensors"))
        roots = [seal_checkpoint(p).root for p in written]
        history = result["history"]
        on_chain = [v["weights_root"] for v in history]
        final = f"runs/{MODEL}/ckpt-{args.steps:06d}.safetensors"
        figures = {
            "kills": result["kills"], "devnet_kills": result["devnet_kills"], "kill_phases": result["kill_phases"],
            "kill_triggers": result["kill_triggers"],
            "checkpoints_written": len(written), "versions_on_chain": len(history),
            "duplicate_roots": len(on_chain) - len(set(on_chain)),
            "versions_in_training_order": on_chain == roots,
            "parents_chain": all(v["parent"] == (None if i == 0 else {"model_id": v["model_id"], "version": i})
                                 for i, v in enumerate(history)),
            "final_root_equals_uninterrupted": seal_checkpoint(result["home"] / final).root
                                               == seal_checkpoint(clean_home / final).root,
            "soak_seconds": round(result["seconds"], 1), "baseline_seconds": round(clean_seconds, 1),
            "ratio": round(result["seconds"] / clean_seconds, 2),
        }
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    for key, value in figures.items():
        print(f"{key:<34} {value}")


if __name__ == "__main__":
    main()
