"""The byte-level BPE tokenizer: trained on the run's dataset, saved as tokenizer.json, known by its sha256."""

import hashlib
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from modelreg._atomic import write_atomic
from modelreg.errors import CheckpointInvalid

EOT = "<|endoftext|>"  # separates documents in the token stream, as in GPT-2


@dataclass(frozen=True)
class TokenizerArtifact:
    """A saved tokenizer file and the digest that names it in a checkpoint's lineage."""

    path: Path
    sha256: str  # "0x" + hex of the tokenizer.json bytes
    vocab_size: int
    format: str = "huggingface-tokenizers-bpe-bytelevel-v1"


def train_tokenizer(texts: list[str], vocab_size: int, path: Path) -> TokenizerArtifact:
    """Train a ByteLevel BPE on texts (in the order given) and save it to path, atomically.

    The same texts and vocab_size give the same file bytes: the BPE merges are chosen by
    count with ties broken by the pair itself, and the JSON is written in a fixed order.
    """
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte encodable, even unseen ones
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    data = tok.to_str(pretty=False).encode()
    write_atomic(Path(path), data)
    return TokenizerArtifact(Path(path), "0x" + hashlib.sha256(data).hexdigest(), tok.get_vocab_size())


def load_tokenizer(path: Path, sha256: str | None = None) -> tuple[Tokenizer, TokenizerArtifact]:
    """Load tokenizer.json; with sha256 given, refuse a file whose digest differs."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointInvalid(f"tokenizer {path} does not exist; it is written beside the "
                                "checkpoints of the run") from None
    digest = "0x" + hashlib.sha256(data).hexdigest()
    if sha256 is not None and digest != sha256:
        raise CheckpointInvalid(f"tokenizer {path} has sha256 {digest}, the checkpoint records {sha256}; "
                                "restore the run's tokenizer.json")
    tok = Tokenizer.from_str(data.decode())
    return tok, TokenizerArtifact(path, digest, tok.get_vocab_size())
