"""`modelreg audit replay` on the devnet: verdicts, exit codes, the record in audit show and the report,
and a replay from a process whose CPU settings differ from the trainer's."""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def test_an_honest_version_is_reproduced_and_the_verdict_is_shown_and_reported(trained, tmp_path):
    result = trained("audit", "replay", "gpt-tiny", "--version", "2")
    assert result.output.startswith("REPRODUCED: gpt-tiny v2, steps 4..6 (bit-exact)")
    assert "replayed 50.0% of the 6 steps" in result.output
    shown = trained("audit", "show", "gpt-tiny", "2").output
    assert "replay: REPRODUCED (bit-exact, steps 4..6, recorded locally)" in shown
    assert "replay: not replayed" in trained("audit", "show", "gpt-tiny", "1").output
    out = tmp_path / "report.json"
    trained("audit", "report", "gpt-tiny", "--format", "json", "-o", out)
    assert [v["replay"].split(" ")[0] for v in json.loads(out.read_text())["versions"]] == ["not", "REPRODUCED"]


def test_a_replay_with_other_threads_and_an_older_isa_in_its_environment_is_still_bit_exact(trained):
    # The auditor's process asks for 1 thread and the oldest code paths; the replay runs the recorded ones.
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41",
           "MKL_CBWR": "COMPATIBLE", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "modelreg.cli", "--home", str(trained.home), "audit", "replay",
                           "gpt-tiny", "--version", "1", "--json"], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    (verdict,) = json.loads(done.stdout)["verdicts"]
    assert verdict["status"] == "REPRODUCED"
    assert verdict["process"] == "a separate process with the recorded numerics"
    assert verdict["numerics"]["aten_cpu_capability"] == "avx2"


def test_sampling_waits_for_a_block_after_the_newest_commit(trained):
    result = trained("audit", "replay", "gpt-tiny", "--sample", expect=2)
    assert "sampling uses the hash of block" in result.output
    trained("model", "register", "gpt-other")  # any transaction mines the block sampling needs
    result = trained("audit", "replay", "gpt-tiny", "--sample")
    assert "sampled by block" in result.output and result.output.startswith("REPRODUCED")


def test_a_gpu_replay_must_name_its_tolerance(trained):
    result = trained("audit", "replay", "gpt-tiny", "--device", "cuda", expect=2)
    assert "pass --tolerance ATOL RTOL" in result.output


def test_a_divergence_exits_1_with_its_step_and_the_differing_part(trained, monkeypatch):
    from modelreg.service.replay import ReplayOutcome
    from modelreg.training import replay as training_replay

    def executor_reporting_a_different_batch(job):  # the real divergences are tested in tests/training
        leaf = job.batches[0].to_dict()
        return ReplayOutcome(steps_run=1, step=leaf["step"], committed=leaf,
                             replayed={**leaf, "tokens": "0x" + "00" * 32})

    monkeypatch.setattr(training_replay, "execute", executor_reporting_a_different_batch)
    result = trained("audit", "replay", "gpt-tiny", "--version", "2", expect=1)
    assert result.output.startswith("DIVERGED at step 4: gpt-tiny v2, steps 4..6 (bit-exact): the batch of step 4 "
                                    "differs from its commitment (tokens)")
    assert "replay: DIVERGED at step 4" in trained("audit", "show", "gpt-tiny", "2").output
