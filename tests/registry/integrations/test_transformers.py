"""RegistryCallback with the real transformers.Trainer: a tiny GPT-2 trained on CPU, every checkpoint committed."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")

from transformers import Trainer, TrainerState, TrainingArguments  # noqa: E402

import modelreg  # noqa: E402
from modelreg.devnet import manager  # noqa: E402
from modelreg.formats.manifest import load_model  # noqa: E402
from modelreg.formats.model import seal_model  # noqa: E402
from modelreg.formats.seal import seal_dataset  # noqa: E402
from modelreg.integrations.transformers import RegistryCallback, logged_metrics  # noqa: E402
from tests.hf import Tokens, tiny_gpt2  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]


def _args(output_dir, **overrides):
    settings = dict(output_dir=str(output_dir), max_steps=6, save_steps=2, logging_steps=1,
                    per_device_train_batch_size=4, learning_rate=1e-3, report_to=[], use_cpu=True,
                    disable_tqdm=True, seed=0)
    return TrainingArguments(**{**settings, **overrides})


@pytest.mark.slow
def test_the_trainer_commits_every_checkpoint_verified_and_chained_by_parents(registry, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "tokens.txt").write_text("random token ids, seed 0")
    callback = RegistryCallback("hf-gpt2", dataset=data, registry=registry, code_revision="my-trainer-v1")
    out = tmp_path / "out"
    Trainer(model=tiny_gpt2(), args=_args(out), train_dataset=Tokens(), callbacks=[callback]).train()
    checkpoints = [out / f"checkpoint-{step}" for step in (2, 4, 6)]
    assert [c.step for c in callback.commits] == [2, 4, 6]
    assert [c.version for c in callback.commits] == [1, 2, 3]
    history = registry.history("hf-gpt2")
    assert [v["parent"] and v["parent"]["version"] for v in history] == [None, 1, 2]
    assert {v["dataset_root"] for v in history} == {seal_dataset(data).root}
    for checkpoint, commit in zip(checkpoints, callback.commits):
        verdict = registry.verify(str(checkpoint), "hf-gpt2")
        assert verdict.ok and verdict.version == commit.version
        files = [leaf.path for leaf in seal_model(checkpoint).file_leaves]
        assert {"config.json", "optimizer.pt", "trainer_state.json", "training_args.bin"} <= set(files)
    manifest, _ = load_model(registry.ipfs.cat(callback.commits[-1].manifest_cid))
    assert manifest["step"] == 6 and "loss" in manifest["metrics"] and "learning_rate" in manifest["metrics"]
    assert manifest["config"]["training_args"]["save_steps"] == 2
    assert manifest["code_revision"] == "my-trainer-v1"


@pytest.mark.slow
def test_with_a_save_total_limit_each_checkpoint_is_committed_before_it_can_be_deleted(registry, tmp_path):
    callback = RegistryCallback("hf-gpt2-limited", registry=registry)
    out = tmp_path / "out"
    Trainer(model=tiny_gpt2(1), args=_args(out, save_total_limit=1), train_dataset=Tokens(),
            callbacks=[callback]).train()
    assert [c.step for c in callback.commits] == [2, 4, 6]
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-6"]


def test_a_process_other_than_the_main_one_commits_nothing(tmp_path):
    callback = RegistryCallback("never", home=tmp_path / "no-home")
    state = TrainerState(is_world_process_zero=False, global_step=2)
    args = _args(tmp_path / "out")
    callback.on_train_begin(args, state, None)
    callback.on_save(args, state, None)
    callback.on_train_end(args, state, None)
    assert callback.commits == [] and not (tmp_path / "no-home").exists()


def test_metrics_are_the_latest_finite_numbers_logged_up_to_the_step():
    history = [{"loss": 3.0, "learning_rate": 1e-3, "step": 1}, {"loss": 2.5, "grad_norm": float("nan"), "step": 2},
               {"eval_loss": 2.7, "step": 2}, {"loss": 2.0, "step": 3}]
    assert logged_metrics(history, 2) == {"loss": 2.5, "learning_rate": 1e-3, "eval_loss": 2.7}


def _run(*argv, torchrun: bool = False):
    launcher = [sys.executable, *(["-m", "torch.distributed.run", "--nproc_per_node=2"] if torchrun else [])]
    proc = subprocess.run([*launcher, str(Path(__file__).parent / "trainer_run.py"), *map(str, argv)],
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.slow
def test_under_torchrun_only_the_main_process_commits(tmp_path):
    home, out = tmp_path / "home", tmp_path / "out"
    try:
        _run(home, out, "ddp-gpt2", 4, torchrun=True)
        registry = modelreg.connect(home, write=False)
        history = registry.history("ddp-gpt2")
        assert [v["parent"] and v["parent"]["version"] for v in history] == [None, 1]
        journal = [json.loads(line) for line in (out / "modelreg-commits.jsonl").read_text().splitlines()]
        for kind in ("seen", "committed"):  # one record of each per checkpoint: one process journaled
            assert [r["step"] for r in journal if r["kind"] == kind] == [2, 4]
        for step, version in ((2, 1), (4, 2)):
            verdict = registry.verify(str(out / f"checkpoint-{step}"), "ddp-gpt2")
            assert verdict.ok and verdict.version == version
        manifest, _ = load_model(registry.ipfs.cat(history[-1]["manifest_cid"]))
        assert manifest["environment"]["world_size"] == 2
    finally:
        manager.down(home)


@pytest.mark.slow
def test_a_resumed_training_run_continues_the_chain_of_parents(tmp_path):
    home, out = tmp_path / "home", tmp_path / "out"
    try:
        _run(home, out, "resumed-gpt2", 4)
        _run(home, out, "resumed-gpt2", 6, "--resume")
        history = modelreg.connect(home, write=False).history("resumed-gpt2")
        assert [v["parent"] and v["parent"]["version"] for v in history] == [None, 1, 2]
        assert len({v["weights_root"] for v in history}) == 3
    finally:
        manager.down(home)
