"""Proof of training by replay: honest runs reproduce; swapped data, a skipped step, another lr or
tampered optimizer state diverge. Real trainer, registrar, py-evm contract and embedded IPFS."""

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from modelreg.errors import ReplayUnavailable
from modelreg.formats.manifest import load_manifest
from modelreg.service import replay as replay_lib
from modelreg.service.commit import commit_checkpoint
from modelreg.service.registrar import Registrar
from modelreg.training import numerics, trainer
from modelreg.training.register import TrainingRun
from modelreg.training.replay import execute
from tests.training.conftest import in_process

pytestmark = pytest.mark.slow


@pytest.fixture
def config(small_config):
    return replace(small_config, max_steps=8, eval_interval=4, batch_size=4, block_size=32)


def _train(registry, data, config, tmp_path, name="m"):
    (tmp_path / "home").mkdir(exist_ok=True)
    return TrainingRun(registry, model_name=name, data_dir=data, run_dir=tmp_path / f"run-{name}", config=config,
                       resume=False, quiet=True).execute(device="cpu")


def _replay(registry, version, **kw):
    return replay_lib.replay(registry, "m", version, execute, **kw)


def test_an_honest_run_reproduces_every_version_bit_for_bit(registry, data, config, tmp_path):
    commits = _train(registry, data, config, tmp_path)
    assert [c.step for c in commits] == [4, 8]
    for version in (1, 2):
        report = _replay(registry, version)
        (verdict,) = report.verdicts
        assert (verdict.status, verdict.mode, verdict.steps_run) == ("REPRODUCED", "bit-exact", 4)
        assert report.status == "REPRODUCED" and report.share == 1 / version  # of the steps up to it
    recorded = replay_lib.recorded(registry.home, registry.client)
    assert {k: v["status"] for k, v in recorded.items()} == {(1, 1): "REPRODUCED", (1, 2): "REPRODUCED"}


def test_the_transcript_commits_parent_roots_batches_and_numerics(registry, data, config, tmp_path):
    _train(registry, data, config, tmp_path)
    events = registry.events()
    v1, v2 = (v for v in replay_lib.audit.history(events, 1))
    manifest = load_manifest(registry.ipfs.cat(v2["manifest_cid"]))
    t = manifest["transcript"]
    assert manifest["manifest"] == "modelreg-checkpoint-manifest-v2"
    assert (t["first_step"], t["last_step"], t["batches"]["count"]) == (5, 8, 4)
    assert t["parent"]["weights_root"] == v1["weights_root"] and t["parent"]["step"] == 4
    assert t["numerics"]["threads"] >= 1 and t["numerics"]["aten_cpu_capability"] == "avx2"
    assert sorted(t["dataset_files"]) == sorted(p.name for p in data.iterdir())


def _first_step_reading(run_dir: Path, files: list[str], index: int, starts: list[int], config) -> int | None:
    """The first step whose windows overlap file `index`, from the honest run's batch documents."""
    lo, hi = starts[index], starts[index + 1] if index + 1 < len(starts) else float("inf")
    for doc in sorted(run_dir.glob("ckpt-*.batches.json")):
        for leaf in json.loads(doc.read_text())["leaves"]:
            for f, off in zip(leaf["files"], leaf["offsets"]):
                begin = starts[f] + off
                if begin < hi and begin + config.block_size + 1 > lo:
                    return leaf["step"]
    return None


def test_a_secretly_swapped_file_diverges_at_the_first_step_that_read_it(
        registry, data, config, tmp_path, monkeypatch):
    honest = tmp_path / "honest"
    honest.mkdir()
    honest_registry = in_process(honest / "home", registry.client)
    _train(honest_registry, data, config, honest, name="honest")
    starts = _starts(honest / "run-honest", data, config)
    names = sorted(p.name for p in data.iterdir())
    firsts = {i: _first_step_reading(honest / "run-honest", names, i, starts, config) for i in range(len(names))}
    swapped = next(i for i, s in firsts.items() if s is not None and s > 1)

    real_tokenize = trainer.tokenize

    def tokenize_with_one_file_swapped(dataset, tokenizer, cfg, cache=None):  # the cheat never caches
        # The cheat: file `swapped` is trained on as other tokens of the same length; the dataset root
        # registered, and the files pinned, are the honest ones.
        train, val, starts = real_tokenize(dataset, tokenizer, cfg)
        end = starts[swapped + 1] if swapped + 1 < len(starts) else len(train)
        train = train.clone()
        train[starts[swapped]:end] = (train[starts[swapped]:end] + 1) % cfg.vocab_size
        return train, val, starts

    monkeypatch.setattr(trainer, "tokenize", tokenize_with_one_file_swapped)
    _train(registry, data, config, tmp_path)
    monkeypatch.setattr(trainer, "tokenize", real_tokenize)
    expected = firsts[swapped]
    version = 1 if expected <= 4 else 2
    (verdict,) = _replay(registry, version).verdicts
    assert (verdict.status, verdict.step) == ("DIVERGED", expected)
    assert "differs from its commitment (tokens)" in verdict.reason


def _starts(run_dir, data, config):
    from modelreg.training.data import load_dataset, seal_directory
    from modelreg.training.tokenizer import load_tokenizer

    tokenizer, _ = load_tokenizer(run_dir / "tokenizer.json")
    return trainer.tokenize(load_dataset(data, seal_directory(data)), tokenizer, config)[2]


def test_a_skipped_step_diverges_naming_the_tensors(registry, data, config, tmp_path, monkeypatch):
    real_step = trainer.train_step

    def skip_step_2(model, optimizer, cfg, train_data, step, env, autocast):
        if step == 2:  # the cheat: step 2 is claimed (its batch committed) but never trained
            return 0.0, trainer.batch_positions(
                train_data, cfg, trainer.torch.Generator().manual_seed(trainer._seed(cfg.seed, step, 0, 1)))
        return real_step(model, optimizer, cfg, train_data, step, env, autocast)

    monkeypatch.setattr(trainer, "train_step", skip_step_2)
    _train(registry, data, config, tmp_path)
    monkeypatch.setattr(trainer, "train_step", real_step)
    (verdict,) = _replay(registry, 1).verdicts
    assert (verdict.status, verdict.step) == ("DIVERGED", 4)
    assert "transformer.h.0.attn.c_attn.weight" in [t["name"] for t in verdict.tensors]
    assert verdict.reason.startswith("the replayed weights differ from the committed ones in")


def test_a_changed_learning_rate_diverges(registry, data, config, tmp_path, monkeypatch):
    real_lr = trainer.get_lr
    monkeypatch.setattr(trainer, "get_lr", lambda cfg, step: real_lr(cfg, step) * (1.5 if step >= 6 else 1))
    _train(registry, data, config, tmp_path)
    monkeypatch.setattr(trainer, "get_lr", real_lr)
    assert _replay(registry, 1).verdicts[0].status == "REPRODUCED"  # steps 1-4 kept the schedule
    (verdict,) = _replay(registry, 2).verdicts
    assert (verdict.status, verdict.step) == ("DIVERGED", 8)


def test_tampered_optimizer_state_is_caught_by_its_root_before_any_step(
        registry, data, config, tmp_path, monkeypatch):
    real_register = Registrar._register

    def register_then_tamper(self, record):
        real_register(self, record)
        if record["step"] == 4:  # v1 pinned its optimizer state; the file v2's transcript seals is changed
            path = Path(record["optimizer_path"])
            raw = bytearray(path.read_bytes())
            raw[-1] ^= 0x01
            path.write_bytes(bytes(raw))

    monkeypatch.setattr(Registrar, "_register", register_then_tamper)
    _train(registry, data, config, tmp_path)
    ran = []
    (verdict,) = replay_lib.replay(registry, "m", 2, lambda job: ran.append(job)).verdicts
    assert not ran
    assert (verdict.status, verdict.step, verdict.steps_run) == ("DIVERGED", 5, 0)
    assert "the parent's optimizer state pinned as" in verdict.reason and "no step was run" in verdict.reason


def test_tolerance_mode_is_labelled_and_reports_each_tensors_distance(registry, data, config, tmp_path):
    _train(registry, data, config, tmp_path)
    (verdict,) = _replay(registry, 2, tolerance=replay_lib.Tolerance(atol=1e-6, rtol=1e-5)).verdicts
    assert (verdict.status, verdict.mode) == ("REPRODUCED", "tolerance")
    assert "tolerance-based, not bit-exact" in verdict.reason
    assert all(t["max_abs"] == 0.0 for t in verdict.tensors)


def test_sampling_picks_a_segment_from_a_block_mined_after_the_commit(registry, data, config, tmp_path):
    _train(registry, data, config, tmp_path)
    with pytest.raises(ReplayUnavailable, match="the chain is at block"):
        _replay(registry, None, sample=True)
    registry.client.register_model("another")  # the chain moves on: a block the trainer could not foresee
    report = _replay(registry, None, sample=True)
    block = registry.client.w3.eth.get_block(report.sampling["block"])
    assert report.sampling["hash"] == "0x" + bytes(block["hash"]).hex()
    assert report.sampling["candidates"] == [1, 2]
    assert report.status == "REPRODUCED" and report.share == 0.5


def test_numerics_pin_a_portable_code_path_and_replay_records_it():
    here = numerics.current()
    assert here["aten_cpu_capability"] == "avx2"  # pinned when modelreg.training was imported
    env = numerics.environment({**here, "onednn_max_cpu_isa": None, "threads": 3}, {"ONEDNN_MAX_CPU_ISA": "SSE41"})
    assert "ONEDNN_MAX_CPU_ISA" not in env and env["OMP_NUM_THREADS"] == "3"
    assert env["MODELREG_PIN_NUMERICS"] == "0"


def test_a_version_without_a_transcript_cannot_be_replayed(registry, tmp_path):
    path = tmp_path / "w.safetensors"
    save_file({"w": np.ones((2, 2), dtype=np.float32)}, str(path))
    model_id, _ = registry.client.register_model("m")
    commit_checkpoint(registry.client, registry.ipfs, path, model_id=model_id, model_name="m")  # modelreg commit's way
    with pytest.raises(ReplayUnavailable, match="carries no training transcript"):
        _replay(registry, 1)


def test_copying_the_data_directory_keeps_replays_independent_of_paths(registry, data, config, tmp_path):
    _train(registry, data, config, tmp_path)
    shutil.rmtree(data)  # the auditor needs nothing local: every input comes from IPFS and the chain
    assert _replay(registry, 2).status == "REPRODUCED"


@pytest.mark.parametrize("forged", [{"aten_cpu_capability": "default"}, {"onednn_max_cpu_isa": "SSE41"}])
def test_replaying_with_other_numerics_than_recorded_diverges(registry, data, config, tmp_path, forged):
    # The control for the pins: the same segment on another ISA path is not bit-exact, which is why the
    # transcript records the paths and a replay runs with exactly those. (Thread counts change the bits
    # only once tensors pass ATen's parallel grain size: docs/replay.md, not this test's tiny model.)
    _train(registry, data, config, tmp_path)
    forge = lambda job: execute(replace(job, numerics={**job.numerics, **forged}))  # noqa: E731
    (verdict,) = replay_lib.replay(registry, "m", 2, forge).verdicts
    assert (verdict.status, verdict.step) == ("DIVERGED", 8)


def test_a_step_without_a_committed_batch_diverges_there_as_skipped(registry, data, config, tmp_path):
    _train(registry, data, config, tmp_path)
    drop_step_6 = lambda job: execute(replace(job, batches=tuple(b for b in job.batches if b.step != 6)))  # noqa: E731
    (verdict,) = replay_lib.replay(registry, "m", 2, drop_step_6).verdicts
    assert (verdict.status, verdict.step, verdict.steps_run) == ("DIVERGED", 6, 1)
    assert verdict.reason == "the run committed no batch for step 6: it skipped the step"
