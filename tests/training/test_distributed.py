import os
import socket
from dataclasses import replace

import pytest
import torch.multiprocessing as mp

from modelreg.training.checkpoint import load_model
from modelreg.training.trainer import train


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _record_rank(event):
    with open(os.environ["HOOK_LOG"], "a") as f:
        f.write(f"{os.environ['RANK']} {event.step}\n")


def _worker(rank, world_size, port, config, data_dir, out_dir, manifest):
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    train(config, data_dir, out_dir, dataset_manifest=manifest, on_checkpoint=_record_rank, device="cpu")


@pytest.mark.slow
def test_two_ddp_processes_on_gloo_train_and_only_rank_0_writes_and_calls_the_hook(
        dataset_dir, manifest, small_config, tmp_path, monkeypatch):
    log = tmp_path / "hook.log"
    monkeypatch.setenv("HOOK_LOG", str(log))
    config = replace(small_config, max_steps=4, eval_interval=2)
    mp.spawn(_worker, args=(2, _free_port(), config, dataset_dir, tmp_path / "run", manifest), nprocs=2)
    assert log.read_text().split("\n")[:-1] == ["0 2", "0 4"]
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [  # the batches of both ranks, by rank 0
        "ckpt-000002.batches.json", "ckpt-000002.optim.safetensors", "ckpt-000002.safetensors",
        "ckpt-000004.batches.json", "ckpt-000004.optim.safetensors", "ckpt-000004.safetensors", "tokenizer.json"]
    model, meta = load_model(tmp_path / "run" / "ckpt-000004.safetensors")
    assert meta.step == 4
