from dataclasses import replace

import pytest
import torch

from modelreg.training.checkpoint import load_model
from modelreg.training.trainer import train

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_training_on_cuda_uses_bf16_autocast_and_writes_float32_weights(
        dataset_dir, manifest, small_config, tmp_path):
    events = []
    config = replace(small_config, max_steps=30, eval_interval=30, learning_rate=1e-2)
    result = train(config, dataset_dir, tmp_path / "run", dataset_manifest=manifest,
                   on_checkpoint=events.append, device="cuda")
    assert events[-1].environment["device"] == "cuda:0"
    assert events[-1].environment["dtype"] == "bfloat16-autocast"
    assert result.evals[-1]["val_loss"] < result.evals[0]["val_loss"]
    model, _ = load_model(result.checkpoints[-1])
    assert {p.dtype for p in model.parameters()} == {torch.float32}


def test_a_cuda_run_resumes_on_cuda_to_the_same_step(dataset_dir, manifest, small_config, tmp_path):
    def crash(event):
        if event.step == 3:
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        train(small_config, dataset_dir, tmp_path / "run", dataset_manifest=manifest,
              on_checkpoint=crash, device="cuda")
    result = train(small_config, dataset_dir, tmp_path / "run", dataset_manifest=manifest,
                   resume=True, device="cuda")
    assert result.final_step == 6 and len(result.step_losses) == 3
