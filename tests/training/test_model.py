import math
from dataclasses import replace

import torch

from modelreg.training.config import PRESETS
from modelreg.training.model import GPT

CONFIG = replace(PRESETS["tiny"], n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=300)


def test_forward_gives_logits_of_shape_b_t_vocab_and_a_loss_near_log_vocab():
    torch.manual_seed(0)
    model = GPT(CONFIG)
    idx = torch.randint(CONFIG.vocab_size, (3, 16))
    logits, loss = model(idx, idx)
    assert logits.shape == (3, 16, CONFIG.vocab_size)
    assert abs(loss.item() - math.log(CONFIG.vocab_size)) < 0.5


def test_attention_is_causal_a_later_token_never_changes_earlier_logits():
    torch.manual_seed(0)
    model = GPT(CONFIG).eval()
    idx = torch.randint(CONFIG.vocab_size, (1, 16))
    changed = idx.clone()
    changed[0, 10] = (changed[0, 10] + 1) % CONFIG.vocab_size
    a, _ = model(idx)
    b, _ = model(changed)
    assert torch.equal(a[0, :10], b[0, :10])
    assert not torch.equal(a[0, 10:], b[0, 10:])


def test_embedding_and_output_head_are_one_tensor_stored_once():
    model = GPT(CONFIG)
    assert model.lm_head.weight is model.transformer.wte.weight
    stored = model.state_tensors()
    assert "lm_head.weight" not in stored and "transformer.wte.weight" in stored
    fresh = GPT(CONFIG)
    fresh.load_state_tensors(stored)
    assert torch.equal(fresh.lm_head.weight, model.lm_head.weight)
    assert fresh.lm_head.weight is fresh.transformer.wte.weight


def test_weight_decay_applies_to_matrices_and_embeddings_not_to_gains():
    model = GPT(CONFIG)
    opt = model.configure_optimizer(CONFIG, "cpu")
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == CONFIG.weight_decay and no_decay["weight_decay"] == 0.0
    assert all(p.dim() == 2 for p in decay["params"])
    assert all(p.dim() == 1 for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_generate_appends_the_requested_number_of_tokens():
    torch.manual_seed(0)
    model = GPT(CONFIG).eval()
    out = model.generate(torch.zeros((1, 1), dtype=torch.long), max_new_tokens=20, top_k=10)
    assert out.shape == (1, 21)
