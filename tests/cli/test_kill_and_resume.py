"""Crash safety: SIGKILL train-and-register at several points, then --resume; each checkpoint lands once."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from modelreg.formats.seal import seal_checkpoint
from tests.cli.conftest import Modelreg

pytestmark = pytest.mark.slow

# 9 steps, a checkpoint every 3: three versions.
RUN = ["--model", "gpt-tiny", "--steps", "9", "--eval-interval", "3"]


def _journal(run_dir: Path) -> list[dict]:
    path = run_dir / "journal.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def _count(kind):
    return lambda run_dir: sum(1 for r in _journal(run_dir) if r["kind"] == kind)


KILL_POINTS = {
    # just after the first checkpoint file is complete, before or while the hook journals it
    "first-checkpoint-written": lambda d: (d / "ckpt-000003.safetensors").exists(),
    # journaled as seen, not yet committed: the registrar is sealing, pinning or sending
    "first-seen": lambda d: _count("seen")(d) >= 1 and _count("committed")(d) == 0,
    "first-committed": lambda d: _count("committed")(d) >= 1,
    "second-seen": lambda d: _count("seen")(d) >= 2,
}


def _start(home: Path, data: Path, *extra) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "modelreg.cli", "--home", str(home), "train-and-register", "--data", str(data),
           *RUN, "--json", *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _kill_when(proc: subprocess.Popen, run_dir: Path, condition, timeout: float = 300) -> bool:
    """SIGKILL the process as soon as `condition(run_dir)` holds; False if it finished first."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        if run_dir.exists() and condition(run_dir):
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.005)
    proc.wait(timeout=60)
    return False


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_a_killed_run_resumes_and_commits_each_checkpoint_exactly_once(point, tmp_path, small_data):
    home = tmp_path / "home"
    run_dir = home / "runs" / "gpt-tiny"
    modelreg = Modelreg(home)
    try:
        modelreg("audit", "models")  # start the devnet and deploy first, so the kill hits training
        killed = _kill_when(_start(home, small_data), run_dir, KILL_POINTS[point])
        assert killed, f"the run finished before reaching {point}"

        resumed = _start(home, small_data, "--resume")
        out, err = resumed.communicate(timeout=600)
        assert resumed.returncode == 0, err.decode()[-3000:]

        checkpoints = sorted(run_dir.glob("ckpt-*[0-9].safetensors"))
        assert [p.name for p in checkpoints] == [f"ckpt-{s:06d}.safetensors" for s in (3, 6, 9)]
        roots = [seal_checkpoint(p).root for p in checkpoints]
        history = json.loads(modelreg("audit", "history", "gpt-tiny", "--json").output)
        assert [v["weights_root"] for v in history] == roots  # each once, in training order
        assert [v["parent"] for v in history] == [None, {"model_id": 1, "version": 1},
                                                   {"model_id": 1, "version": 2}]
        printed = json.loads(out)
        assert [v["root"] for v in printed["versions"]] == roots
    finally:
        from modelreg.devnet import manager

        manager.down(home)


def test_resumed_weights_equal_an_uninterrupted_run(tmp_path, small_data):
    """The resumed run is the same run: its final checkpoint has the root of one never killed."""
    killed_home, clean_home = tmp_path / "killed", tmp_path / "clean"
    try:
        Modelreg(killed_home)("audit", "models")
        assert _kill_when(_start(killed_home, small_data), killed_home / "runs" / "gpt-tiny",
                          KILL_POINTS["first-committed"])
        assert _start(killed_home, small_data, "--resume").wait(timeout=600) == 0
        assert _start(clean_home, small_data).wait(timeout=600) == 0
        final = "runs/gpt-tiny/ckpt-000009.safetensors"
        assert seal_checkpoint(killed_home / final).root == seal_checkpoint(clean_home / final).root
    finally:
        from modelreg.devnet import manager

        manager.down(killed_home)
        manager.down(clean_home)


@pytest.mark.parametrize("keep_training", [False, True], ids=["stops", "keeps-training"])
def test_a_devnet_that_dies_mid_run_is_named_and_resume_restarts_it(tmp_path, small_data, keep_training):
    """Registration fails once the chain is gone: by default training stops at the next checkpoint and
    names the exact command to resume; with --keep-training it trains to the end, journaling."""
    from modelreg.devnet import manager

    home = tmp_path / "home"
    run_dir = home / "runs" / "gpt-tiny"
    long_run = ["--steps", "12", "--eval-interval", "3"]
    try:
        Modelreg(home)("audit", "models")
        cmd = [sys.executable, "-m", "modelreg.cli", "--home", str(home), "train-and-register", "--data",
               str(small_data), "--model", "gpt-tiny", *long_run, *(["--keep-training"] if keep_training else [])]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 300
        while _count("committed")(run_dir) < 1 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(manager.status(home).pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 2, err.decode()[-3000:]
        (line,) = [x for x in err.decode().splitlines() if x.startswith("Error: ")]
        assert f"the embedded devnet of {home} stopped during the run" in line
        written = sorted(p.name for p in run_dir.glob("ckpt-*[0-9].safetensors"))
        if keep_training:
            assert written[-1] == "ckpt-000012.safetensors" and "3 checkpoint(s) are saved but not registered" in line
        else:
            assert "ckpt-000012.safetensors" not in written and "training stopped at step" in line
        resume = line.split("then run: ")[1]
        assert resume.startswith("modelreg --home ") and resume.endswith(" --resume")
        resumed = subprocess.run([sys.executable, "-m", "modelreg.cli", *resume.split()[1:]], capture_output=True,
                                 timeout=600)
        assert resumed.returncode == 0, resumed.stderr.decode()[-3000:]
        history = json.loads(Modelreg(home)("audit", "history", "gpt-tiny", "--json").output)
        assert [v["version"] for v in history] == [1, 2, 3, 4]
    finally:
        manager.down(home)
