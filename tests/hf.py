"""A tiny randomly initialised GPT-2 built locally (nothing is downloaded), for Hugging Face directory tests."""

from pathlib import Path

import pytest


def tiny_gpt2(seed: int = 0):
    """A 2-layer, 32-wide GPT-2 with a 128-token vocabulary: 31,616 parameters, random weights."""
    pytest.importorskip("transformers")
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(n_layer=2, n_head=2, n_embd=32, vocab_size=128, n_positions=64,
                        bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(config)


def save_tiny_gpt2(directory: Path, max_shard_size: str = "10GB", seed: int = 0) -> Path:
    """save_pretrained of tiny_gpt2(seed) into `directory`, split into shards of at most max_shard_size."""
    tiny_gpt2(seed).save_pretrained(directory, max_shard_size=max_shard_size)
    return directory


class Tokens:
    """Random token sequences, the labels the inputs themselves (causal LM): a map-style dataset for
    `transformers.Trainer` (a length and items are all its DataLoader needs)."""

    def __init__(self, n: int = 16, length: int = 16):
        import torch

        self.ids = torch.randint(0, 128, (n, length), generator=torch.Generator().manual_seed(0))

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "labels": self.ids[i]}
