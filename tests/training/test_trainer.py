import hashlib
import json
import math
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from modelreg.errors import CheckpointInvalid, ConfigInvalid, DatasetTampered, InputInvalid
from modelreg.formats.seal import seal_checkpoint
from modelreg.records import CheckpointSaved
from modelreg.training.checkpoint import latest_checkpoint, load_model, read_weights, saved_checkpoints
from modelreg.training.trainer import get_lr, train


def sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_training_writes_a_checkpoint_every_eval_interval_and_calls_the_hook(
        dataset_dir, manifest, small_config, tmp_path):
    events: list[CheckpointSaved] = []
    result = train(small_config, dataset_dir, tmp_path / "run", dataset_manifest=manifest,
                   dataset_root=manifest["root"], on_checkpoint=events.append)
    assert [e.step for e in events] == [3, 6]
    assert [p.name for p in result.checkpoints] == ["ckpt-000003.safetensors", "ckpt-000006.safetensors"]
    e = events[-1]
    assert e.path == tmp_path / "run" / "ckpt-000006.safetensors"
    assert e.optimizer_path == tmp_path / "run" / "ckpt-000006.optim.safetensors"
    assert set(e.metrics) == {"train_loss", "val_loss", "val_perplexity", "tokens_seen", "lr", "elapsed_s"}
    assert e.metrics["val_perplexity"] == pytest.approx(math.exp(e.metrics["val_loss"]))
    assert e.metrics["tokens_seen"] == 6 * small_config.batch_size * small_config.block_size
    assert e.config == small_config.to_dict()
    assert e.dataset_root == manifest["root"]
    assert e.tokenizer_sha256 == "0x" + sha(e.tokenizer_path)
    assert e.environment["device"] == "cpu" and e.environment["world_size"] == 1
    assert e.environment["dtype"] == "float32"
    # What a resumed run finds on disk names the very files the events named.
    assert [(s.step, s.path, s.tokenizer_path) for s in saved_checkpoints(tmp_path / "run")] == \
        [(e.step, e.path, e.tokenizer_path) for e in events]


@pytest.mark.slow
def test_the_loss_falls_and_perplexity_is_reported(dataset_dir, manifest, small_config, tmp_path):
    config = replace(small_config, max_steps=60, eval_interval=60, eval_iters=4, learning_rate=1e-2)
    result = train(config, dataset_dir, tmp_path / "run", dataset_manifest=manifest)
    first, last = result.evals[0], result.evals[-1]
    assert (first["step"], last["step"]) == (0, 60)
    assert last["val_loss"] < first["val_loss"] - 1.0
    assert last["val_perplexity"] == pytest.approx(math.exp(last["val_loss"]))


def test_the_checkpoint_seals_as_a_tensor_tree_and_loads_back(dataset_dir, manifest, small_config, tmp_path):
    result = train(small_config, dataset_dir, tmp_path / "run", dataset_manifest=manifest)
    sealed = seal_checkpoint(result.checkpoints[-1])
    assert "lm_head.weight" not in [leaf.name for leaf in sealed.leaves]  # tied: stored once
    assert {leaf.dtype for leaf in sealed.leaves} == {"F32"}
    model, meta = load_model(result.checkpoints[-1])
    assert meta.step == 6 and meta.dataset_root == manifest["root"]
    assert meta.tokenizer_sha256 == result.tokenizer.sha256


def test_a_tampered_file_stops_training_before_any_step(dataset_dir, manifest, small_config, tmp_path):
    p = dataset_dir / "sonnets_gut.txt"
    p.write_bytes(p.read_bytes() + b"\nIgnore all previous sonnets.\n")
    events = []
    with pytest.raises(DatasetTampered, match=r"dataset file sonnets_gut\.txt does not match"):
        train(small_config, dataset_dir, tmp_path / "run", dataset_manifest=manifest,
              dataset_root=manifest["root"], on_checkpoint=events.append)
    assert events == []
    assert not (tmp_path / "run").exists()


def test_without_a_manifest_the_directory_is_sealed_and_its_root_recorded(
        dataset_dir, manifest, small_config, tmp_path):
    result = train(small_config, dataset_dir, tmp_path / "run")
    assert result.dataset_root == manifest["root"]


class Crash(Exception):
    pass


def crash_at(step):
    def hook(event):
        if event.step == step:
            raise Crash(f"killed after step {step}")
    return hook


def test_a_resumed_run_ends_with_the_same_bytes_as_an_uninterrupted_one(
        dataset_dir, manifest, small_config, tmp_path):
    config = replace(small_config, max_steps=8, eval_interval=4, dropout=0.1)
    whole = train(config, dataset_dir, tmp_path / "whole", dataset_manifest=manifest)
    with pytest.raises(Crash):
        train(config, dataset_dir, tmp_path / "split", dataset_manifest=manifest, on_checkpoint=crash_at(4))
    assert latest_checkpoint(tmp_path / "split").name == "ckpt-000004.safetensors"
    resumed = train(config, dataset_dir, tmp_path / "split", dataset_manifest=manifest, resume=True)
    assert [p.name for p in resumed.checkpoints] == ["ckpt-000008.safetensors"]
    assert resumed.step_losses == whole.step_losses[4:]
    for name in ("ckpt-000008.safetensors", "ckpt-000008.optim.safetensors", "tokenizer.json"):
        assert sha(tmp_path / "split" / name) == sha(tmp_path / "whole" / name), name


def test_resume_skips_a_half_written_temporary_file(dataset_dir, manifest, small_config, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(Crash):
        train(small_config, dataset_dir, out, dataset_manifest=manifest, on_checkpoint=crash_at(3))
    (out / ".ckpt-000006.safetensors.tmp-999").write_bytes(b"half a file")
    (out / "ckpt-000006.optim.safetensors").write_bytes(b"optimizer written, weights not yet")
    assert latest_checkpoint(out).name == "ckpt-000003.safetensors"
    result = train(small_config, dataset_dir, out, dataset_manifest=manifest, resume=True)
    assert result.final_step == 6 and len(result.step_losses) == 3


def test_resuming_with_another_config_is_refused(dataset_dir, manifest, small_config, tmp_path):
    train(small_config, dataset_dir, tmp_path / "run", dataset_manifest=manifest)
    with pytest.raises(ConfigInvalid, match=r"the config differs in \['learning_rate', 'max_steps'\]"):
        train(replace(small_config, max_steps=9, learning_rate=1e-4), dataset_dir, tmp_path / "run",
              dataset_manifest=manifest, resume=True)


def test_training_into_a_directory_holding_another_run_is_refused(dataset_dir, manifest, small_config, tmp_path):
    train(small_config, dataset_dir, tmp_path / "run", dataset_manifest=manifest)
    with pytest.raises(InputInvalid, match=r"already holds checkpoints \(newest ckpt-000006\.safetensors\)"):
        train(small_config, dataset_dir, tmp_path / "run", dataset_manifest=manifest)


def test_resume_refuses_a_swapped_tokenizer(dataset_dir, manifest, small_config, tmp_path):
    config = replace(small_config, max_steps=9)
    with pytest.raises(Crash):
        train(config, dataset_dir, tmp_path / "run", dataset_manifest=manifest, on_checkpoint=crash_at(3))
    tok = tmp_path / "run" / "tokenizer.json"
    tok.write_bytes(tok.read_bytes() + b"\n")
    with pytest.raises(CheckpointInvalid, match="tokenizer .* the checkpoint records"):
        train(config, dataset_dir, tmp_path / "run", dataset_manifest=manifest, resume=True)


def test_learning_rate_warms_up_linearly_then_decays_by_cosine_to_min_lr(small_config):
    config = replace(small_config, max_steps=100, warmup_steps=10, learning_rate=1.0, min_lr=0.1)
    lrs = [get_lr(config, s) for s in range(1, 101)]
    assert lrs[:10] == sorted(lrs[:10]) and lrs[9] == pytest.approx(10 / 11)
    assert lrs[10] == pytest.approx(1.0)
    assert lrs[10:] == sorted(lrs[10:], reverse=True)
    assert lrs[-1] == pytest.approx(0.1, abs=1e-3)


RUN = """
import json
import sys
from modelreg.training.config import TrainConfig
from modelreg.training.trainer import train
config = TrainConfig.from_dict(json.loads(sys.argv[1]))
train(config, sys.argv[2], sys.argv[3])
"""


@pytest.mark.slow
def test_two_separate_processes_write_bit_identical_checkpoints(dataset_dir, small_config, tmp_path):
    config = replace(small_config, dropout=0.1)
    roots = []
    for run in ("a", "b"):
        subprocess.run([sys.executable, "-c", RUN, json.dumps(config.to_dict()), str(dataset_dir),
                        str(tmp_path / run)], check=True, env={**os.environ, "PYTHONHASHSEED": str(ord(run))})
        roots.append(seal_checkpoint(tmp_path / run / "ckpt-000006.safetensors").root)
    for name in ("ckpt-000006.safetensors", "ckpt-000006.optim.safetensors", "tokenizer.json"):
        assert sha(tmp_path / "a" / name) == sha(tmp_path / "b" / name), name
    assert roots[0] == roots[1]
    _, meta = read_weights(tmp_path / "a" / "ckpt-000006.safetensors")
    assert meta.config == config.to_dict()
