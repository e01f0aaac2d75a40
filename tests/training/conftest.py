"""Fixtures for the training tests: a two-file dataset and a config that trains in about a second."""

import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from modelreg.training.config import PRESETS
from modelreg.training.data import CORPUS_DIR as CORPUS
from modelreg.training.data import seal_directory


@pytest.fixture
def dataset_dir(tmp_path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    for name in ("sonnets_gut.txt", "tempest_gut.txt"):
        shutil.copy(CORPUS / name, d / name)
    return d


@pytest.fixture
def manifest(dataset_dir) -> dict:
    return seal_directory(dataset_dir)


@pytest.fixture
def small_config():
    return replace(PRESETS["tiny"], n_layer=1, n_head=2, n_embd=32, block_size=32, vocab_size=300,
                   batch_size=4, max_steps=6, warmup_steps=2, eval_interval=3, eval_iters=2)
