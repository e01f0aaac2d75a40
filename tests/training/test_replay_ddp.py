"""Replay of a DDP run: two gloo ranks train, rank 0 records both ranks' batches and registers; `audit replay`
re-executes the segment with two ranks and reproduces it bit for bit; a tampered transcript diverges.

Rank 0 runs in this process (it registers on the in-process chain), rank 1 in a spawned process."""

import json
import os
import socket
from dataclasses import replace

import pytest
import torch
import torch.multiprocessing as mp

from modelreg.errors import ReplayUnavailable
from modelreg.formats.manifest import load_manifest
from modelreg.formats.transcript import BatchLeaf
from modelreg.service import replay as replay_lib
from modelreg.training import replay as training_replay
from modelreg.training import trainer
from modelreg.training.register import TrainingRun, train_unregistered

pytestmark = pytest.mark.slow
WORLD = int(os.environ.get("MODELREG_TEST_DDP_WORLD", "2"))  # 3 or more: the fixed-order mean (distributed.wrap)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank, world, port, config, data_dir, run_dir):
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    train_unregistered(config, data_dir, run_dir, resume=False, device="cpu")


@pytest.fixture
def config(small_config):
    return replace(small_config, max_steps=4, eval_interval=2, batch_size=2, block_size=32)


def _train_ddp(registry, data, config, tmp_path, monkeypatch):  # noqa: F811
    """Every rank trains; rank 0, here, registers a version at steps 2 and 4."""
    port, run_dir = _free_port(), tmp_path / "run"
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", str(WORLD))
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(port))
    others = [mp.get_context("spawn").Process(target=_rank, args=(r, WORLD, port, config, data, run_dir))
              for r in range(1, WORLD)]
    for other in others:
        other.start()
    try:
        (tmp_path / "home").mkdir(exist_ok=True)
        commits = TrainingRun(registry, model_name="m", data_dir=data, run_dir=run_dir, config=config,
                              resume=False, quiet=True).execute(device="cpu")
    finally:
        for other in others:
            other.join(120)
    assert [other.exitcode for other in others] == [0] * (WORLD - 1)
    return commits


def test_an_honest_ddp_run_records_every_ranks_batches_and_replays_with_its_world_size(
        registry, data, config, tmp_path, monkeypatch):  # noqa: F811
    commits = _train_ddp(registry, data, config, tmp_path, monkeypatch)
    assert [c.step for c in commits] == [2, 4]
    v2 = replay_lib.audit.history(registry.events(), 1)[1]
    t = load_manifest(registry.ipfs.cat(v2["manifest_cid"]))["transcript"]
    assert (t["format"], t["world_size"], t["first_step"], t["last_step"]) == (
        "modelreg-training-transcript-v3", WORLD, 3, 4)
    leaves = json.loads((tmp_path / "run" / "ckpt-000004.batches.json").read_text())["leaves"]
    assert [len(leaf["offsets"]) for leaf in leaves] == [WORLD * config.batch_size] * 2  # both ranks' samples

    for version in (1, 2):  # from the seeded initialisation, and from a parent's weights and optimizer state
        (verdict,) = replay_lib.replay(registry, "m", version, training_replay.execute).verdicts
        assert (verdict.status, verdict.mode, verdict.steps_run) == ("REPRODUCED", "bit-exact", 2)
        assert verdict.process.startswith(f"{WORLD} processes (DDP ranks, gloo)")
    if torch.cuda.device_count() < WORLD:  # ranks that cannot run: one error, naming why
        with pytest.raises(ReplayUnavailable, match=rf"rank \d of the {WORLD} replay processes failed: the segment "
                                                    rf"ran on {WORLD} ranks; replaying it on cuda needs as many GPUs"):
            replay_lib.replay(registry, "m", 1, training_replay.execute, device="cuda")


def test_a_tampered_ddp_transcript_diverges(registry, data, config, tmp_path, monkeypatch):  # noqa: F811
    real_close = trainer.Segment.close

    def close_tampered(self, step):
        if step == 2:  # v1 claims steps 1..2 but commits no batch for step 2
            self.leaves = [leaf for leaf in self.leaves if leaf.step != 2]
        else:  # v2: step 3's samples moved by one rank, each rank said to have trained on another's
            first = self.leaves[0]
            b = len(first.files) // WORLD
            self.leaves[0] = BatchLeaf(first.step, first.files[b:] + first.files[:b],
                                       first.offsets[b:] + first.offsets[:b], first.tokens)
        return real_close(self, step)

    monkeypatch.setattr(trainer.Segment, "close", close_tampered)
    _train_ddp(registry, data, config, tmp_path, monkeypatch)
    (skipped,) = replay_lib.replay(registry, "m", 1, training_replay.execute).verdicts
    assert (skipped.status, skipped.step, skipped.steps_run) == ("DIVERGED", 2, 1)
    assert "committed no batch for step 2" in skipped.reason
    (swapped,) = replay_lib.replay(registry, "m", 2, training_replay.execute).verdicts
    assert (swapped.status, swapped.step, swapped.steps_run) == ("DIVERGED", 3, 1)
    assert "the batch of step 3 differs from its commitment (files, offsets)" in swapped.reason


def _job(tmp_path, world_size, device="cpu"):
    return replay_lib.ReplayJob(
        config={}, first_step=1, last_step=1, batches=(), data_dir="", dataset_manifest={}, tokenizer_path="",
        tokenizer_sha256="", parent_weights=None, parent_optimizer=None, numerics={}, device=device,
        out_dir=str(tmp_path / "out"), world_size=world_size)


def test_a_world_size_past_the_limit_starts_no_process(tmp_path):
    with pytest.raises(ReplayUnavailable, match="claims 65 ranks; a replay starts at most 64 processes"):
        training_replay.execute(_job(tmp_path, training_replay.MAX_RANKS + 1))
    assert not (tmp_path / "out").exists()

