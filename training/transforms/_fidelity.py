"""How far a derived model's outputs are from its source's: a probe batch, and validation perplexity.

The probe batch is PROBE_BATCH sequences of block_size token ids drawn by a generator seeded with
the source's training seed, so anyone recomputes the same batch from the manifest. Perplexity is
exp(mean next-token cross-entropy) over the first VAL_WINDOWS non-overlapping windows of the
validation split (the tail of the committed dataset's token stream, as training splits it), for the
source and for the derived model.
"""

import math
from pathlib import Path

import torch
from torch.nn import functional as F

from modelreg.training.transforms import Logits, Source, gpt_logits

PROBE_BATCH = 4
VAL_WINDOWS = 8


def fidelity(source: Source, derived: Logits | None, job) -> dict | None:
    """The fidelity record of a derivation; None when the source is no GPT (nothing to run)."""
    if derived is None:
        return None
    config = source.config
    original = gpt_logits(source.tensors, config)
    g = torch.Generator().manual_seed(config.seed)
    probe = torch.randint(0, config.vocab_size, (PROBE_BATCH, config.block_size), generator=g)
    diff = float((original(probe) - derived(probe)).abs().max())
    record = {"probe": {"batch": PROBE_BATCH, "tokens": config.block_size, "seed": config.seed},
              "max_abs_logit_diff": diff, "perplexity": None}
    windows = _validation_windows(job, config)
    if windows is not None:
        record["perplexity"] = {"split": "validation", "windows": len(windows[0]),
                                "source": _perplexity(original, *windows),
                                "derived": _perplexity(derived, *windows)}
    return record


def _validation_windows(job, config):
    """(inputs, targets) of the validation split, or None when the job carries no dataset."""
    if not (job.data_dir and job.dataset_manifest and job.tokenizer_path):
        return None
    from modelreg.training.data import load_dataset
    from modelreg.training.tokenizer import load_tokenizer
    from modelreg.training.trainer import tokenize

    dataset = load_dataset(job.data_dir, job.dataset_manifest)
    tokenizer, _ = load_tokenizer(Path(job.tokenizer_path), job.tokenizer_sha256)
    _, val, _ = tokenize(dataset, tokenizer, config)
    T = config.block_size
    n = min(VAL_WINDOWS, (len(val) - 1) // T)
    x = torch.stack([val[i * T:(i + 1) * T] for i in range(n)])
    y = torch.stack([val[i * T + 1:(i + 1) * T + 1] for i in range(n)])
    return x, y


def _perplexity(logits: Logits, x: torch.Tensor, y: torch.Tensor) -> float:
    out = logits(x).double()  # float64 loss: a float32 mean would hide differences below its rounding
    return math.exp(float(F.cross_entropy(out.reshape(-1, out.size(-1)), y.reshape(-1))))
