import pytest

from modelreg.training.config import PRESETS
from modelreg.training.data import CORPUS_DIR, seal_directory
from modelreg.training.trainer import train


@pytest.mark.slow
def test_the_tiny_preset_trains_on_the_committed_corpus_and_the_loss_visibly_falls(tmp_path):
    manifest = seal_directory(CORPUS_DIR)
    events = []
    result = train(PRESETS["tiny"], CORPUS_DIR, tmp_path / "run", dataset_manifest=manifest,
                   dataset_root=manifest["root"], on_checkpoint=events.append)
    assert [e.step for e in events] == [100, 200, 300, 400]
    val = [e["val_loss"] for e in result.evals]
    assert val == sorted(val, reverse=True)
    assert val[0] - val[-1] > 2.0  # ~6.9 (uniform over 1024 tokens) down to ~4.5
    assert events[-1].metrics["val_perplexity"] < 150
