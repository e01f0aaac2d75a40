"""Replay on any machine: the token-stream cache a replay reuses, and the step dump that finds the first
operation whose output differs between two CPUs (docs/replay.md)."""

import json
import os
import subprocess
import sys
from dataclasses import replace

import pytest
import torch

from modelreg.training.data import CORPUS_DIR, seal_and_load
from modelreg.training.tokenizer import load_tokenizer, train_tokenizer
from modelreg.training.trainer import _tokenize, token_cache, tokenize


@pytest.fixture
def small(tmp_path, small_config):
    d = tmp_path / "data"
    d.mkdir()
    for f in sorted(CORPUS_DIR.glob("*.txt"))[:2]:
        (d / f.name).write_bytes(f.read_bytes()[:20_000])
    dataset = seal_and_load(d)
    train_tokenizer([f.text for f in dataset.files], small_config.vocab_size, tmp_path / "tok.json")
    tokenizer, artifact = load_tokenizer(tmp_path / "tok.json")
    return dataset, tokenizer, artifact, replace(small_config, block_size=32)


def test_a_token_cache_gives_the_same_stream_and_a_damaged_one_is_rebuilt(small, tmp_path):
    dataset, tokenizer, artifact, config = small
    path = token_cache(tmp_path / "cache", dataset.root, artifact.sha256)
    plain = tokenize(dataset, tokenizer, config)
    first = tokenize(dataset, tokenizer, config, path)  # writes the cache
    assert path.exists()
    second = tokenize(dataset, tokenizer, config, path)  # reads it
    for a, b, c in zip(plain, first, second):
        assert (torch.equal(a, b) and torch.equal(a, c)) if isinstance(a, torch.Tensor) else a == b == c
    raw = bytearray(path.read_bytes())
    raw[-8] ^= 1  # one token id changed: the stored sha256 no longer matches
    path.write_bytes(bytes(raw))
    third = tokenize(dataset, tokenizer, config, path)
    assert torch.equal(third[0], plain[0])
    assert torch.equal(tokenize(dataset, tokenizer, config, path)[0], _tokenize(dataset, tokenizer)[0][:len(plain[0])])


@pytest.mark.slow
def test_the_step_dump_names_the_first_operation_another_kernel_profile_changes(tmp_path):
    def dump(name, **env):
        out = tmp_path / f"{name}.safetensors"
        done = subprocess.run([sys.executable, "-m", "modelreg.training.stepdump", "dump", str(out), "--bytes",
                               "15000"], env={**os.environ, "OMP_NUM_THREADS": "2", **env},
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        return out

    def compare(a, b):
        done = subprocess.run([sys.executable, "-m", "modelreg.training.stepdump", "compare", str(a), str(b)],
                              capture_output=True, text=True, timeout=600)
        return done.returncode, json.loads(done.stdout)

    a = dump("a")
    code, same = compare(a, a)
    assert (code, same["differing"], same["first"]) == (0, 0, None) and same["tensors"] > 100
    other = dump("default", ATEN_CPU_CAPABILITY="default")  # 8-wide vectors sum in another order
    code, result = compare(a, other)
    assert code == 1 and result["differing"] > 0
    assert result["b"]["numerics"]["aten_cpu_capability"] == "default"
    # computation order: the token stream agrees; the first difference is named (with the default
    # kernels it is already the seeded initialisation: torch's normal_ fills 8 or 16 lanes at a time)
    assert result["first"]["name"] == "init/transformer.wte.weight" and result["first"]["max_abs"] > 0
    assert all(not d["name"].startswith("data/") for d in result["first_10"])


def test_the_ieee_adamw_is_torchs_adamw_but_for_a_correctly_rounded_sqrt(monkeypatch):
    import numpy as np

    from modelreg.training import optim

    torch.manual_seed(0)
    shapes = [(64, 32), (32,), (7, 5, 3)]
    params = [torch.randn(s) for s in shapes]
    grads = [[torch.randn(s) * 10 ** -k for s in shapes] for k in range(4)]

    def run(make):
        ps = [torch.nn.Parameter(p.clone()) for p in params]
        opt = make([{"params": ps[:2], "weight_decay": 0.1}, {"params": ps[2:], "weight_decay": 0.0}])
        for gs in grads:
            for p, g in zip(ps, gs):
                p.grad = g.clone()
            opt.step()
        return ps, opt

    kw = {"lr": 3e-3, "betas": (0.9, 0.99)}
    theirs, their_opt = run(lambda g: torch.optim.AdamW(g, foreach=False, **kw))
    with monkeypatch.context() as m:  # the same formula: with torch's sqrt, the same bits
        m.setattr(optim, "ieee_sqrt", torch.sqrt)
        same, _ = run(lambda g: optim.IeeeAdamW(g, **kw))
    assert all(torch.equal(a, b) for a, b in zip(theirs, same))
    ours, our_opt = run(lambda g: optim.IeeeAdamW(g, **kw))
    assert all(torch.allclose(a, b, rtol=1e-5, atol=1e-7) for a, b in zip(theirs, ours))
    # its square root is the correctly rounded one (float64 sqrt of a float32 rounds correctly to float32)
    v = our_opt.state[our_opt.param_groups[0]["params"][0]]["exp_avg_sq"]
    assert torch.equal(optim.ieee_sqrt(v), torch.from_numpy(np.sqrt(v.numpy().astype(np.float64)).astype(np.float32)))
    # and its state is torch's: each loads the other's
    their_opt.load_state_dict(our_opt.state_dict())
    assert set(our_opt.state_dict()["state"][0]) == {"step", "exp_avg", "exp_avg_sq"}
