"""A version trained on another machine (tests/fixtures/replay_anywhere, its CPU named in its README)
replays bit for bit on whatever machine runs the suite."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "replay_anywhere" / "home"

pytestmark = pytest.mark.slow


@pytest.mark.skipif(not FIXTURE.is_dir(), reason="the fixture is made by tests/fixtures/replay_anywhere/make.py")
def test_the_committed_fixture_reproduces_here(tmp_path):
    home = tmp_path / "home"
    shutil.copytree(FIXTURE, home)
    cli = [sys.executable, "-m", "modelreg.cli", "--home", str(home)]
    try:
        done = subprocess.run([*cli, "audit", "replay", "fixture-gpt", "--version", "1", "--json"],
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
        report = json.loads(done.stdout)
        (verdict,) = report["verdicts"]
        assert (report["status"], verdict["mode"], verdict["steps_run"]) == ("REPRODUCED", "bit-exact", 4)
    finally:
        subprocess.run([*cli, "devnet", "down"], capture_output=True, timeout=120)
