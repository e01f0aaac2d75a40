"""train-and-register under torchrun: two CPU ranks train with DDP (gloo), rank 0 alone registers; the
version replays with two ranks."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import FAST_RUN, Modelreg

pytestmark = pytest.mark.slow

TORCHRUN = Path(sys.executable).parent / "torchrun"


@pytest.mark.skipif(not TORCHRUN.exists() and shutil.which("torchrun") is None, reason="no torchrun")
def test_two_ranks_train_and_rank_0_alone_registers(tmp_path, small_data):
    home = tmp_path / "home"
    try:
        proc = subprocess.run([str(TORCHRUN), "--nproc_per_node=2", "-m", "modelreg.cli", "--home", str(home),
                               "train-and-register", "--data", str(small_data), "--model", "ddp", *FAST_RUN,
                               "--json"], capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        printed = json.loads(proc.stdout)  # one rank printed the table: the other registered nothing
        assert [v["version"] for v in printed["versions"]] == [1, 2]
        shown = json.loads(Modelreg(home)("audit", "show", "ddp", "2", "--json").output)
        assert shown["manifest"]["environment"]["world_size"] == 2
        assert shown["verification"] == "manifest verified"
        # rank 0 recorded both ranks' batches; the replay runs two gloo ranks and reproduces the weights
        assert shown["manifest"]["transcript"]["world_size"] == 2
        replayed = json.loads(Modelreg(home)("audit", "replay", "ddp", "--version", "2", "--json").output)
        assert replayed["status"] == "REPRODUCED", replayed
    finally:
        from modelreg.devnet import manager

        manager.down(home)
