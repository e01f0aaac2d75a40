"""Typed records shared by every layer: a version reference, a committed version, a saved checkpoint.

One concept, one type: the chain client, the manifest code, the registrar, the audit and the
public API all pass these; dicts appear only where JSON is written or read.
"""

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

from modelreg._hex import to_hex

ZERO_ROOT = "0x" + "00" * 32
"""How the contract spells "no root" in a bytes32 field (a version with no files root), and a
`modelreg-derivation-v1` record after it. Everywhere else, in the API and in JSON, it is None:
`root_or_none` and `root_or_zero` are the one conversion between the two."""


def root_or_none(value: bytes | str) -> str | None:
    """A bytes32 root as the contract or an event gives it (bytes, or 0x-hex): 0x-hex, or None for zero."""
    root = value if isinstance(value, str) else to_hex(value)
    return None if int(root, 16) == 0 else root


def root_or_zero(root: str | None) -> str:
    """The other way: a root, or None, as the contract's bytes32 spells it (0x-hex, zero for None)."""
    return ZERO_ROOT if root is None else root


class VersionRef(NamedTuple):
    """A version of a model on one registry: (model id, version number), both counted from 1.

    A NamedTuple, so it is frozen, hashable and unpacks as `model_id, version = ref`.
    """

    model_id: int
    version: int

    def to_dict(self) -> dict:
        return {"model_id": self.model_id, "version": self.version}

    @classmethod
    def from_dict(cls, data: dict | None) -> "VersionRef | None":
        """From the JSON edge: `{"model_id": 1, "version": 2}` (older manifests: `model`), or None."""
        if not data:
            return None
        return cls(int(data.get("model_id", data.get("model"))), int(data["version"]))


@dataclass(frozen=True)
class Commit:
    """One committed version, as `commit` returns it, the registrar journals it and the CLI prints it."""

    model_id: int
    version: int
    root: str
    checkpoint_cid: str
    manifest_cid: str
    tx: str
    block: int
    step: int | None = None
    val_loss: float | None = None
    existing: bool = False  # the model already held this content: nothing new was committed
    tensor_count: int | None = None
    files_root: str | None = None  # None: a single file, or a directory of shards alone

    @property
    def ref(self) -> VersionRef:
        return VersionRef(self.model_id, self.version)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Commit":
        fields = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in fields})


@dataclass(frozen=True)
class CheckpointSaved:
    """One checkpoint on disk, as a trainer hands it to the registrar: a file or a model directory and
    its step; the rest is what the trainer knows of it.

    The one shape of the event: modelreg's trainer sends it to its `on_checkpoint` hook,
    `BackgroundCommitter.submit` and the Transformers callback build it, and the registrar journals
    it (`to_record`). Only `path` and `step` are required.
    """

    path: Path  # the weights file, or the model directory
    step: int
    metrics: dict = field(default_factory=dict)  # modelreg's trainer: train_loss, val_loss, val_perplexity, ...
    config: dict = field(default_factory=dict)
    environment: dict = field(default_factory=dict)  # torch, device, dtype, world_size, ...
    privacy: dict | None = None  # a DP claim of the user's own trainer: recorded, not checkable by replay
    # What modelreg's trainer adds (training/trainer.py, training/checkpoint.py):
    optimizer_path: Path | None = None  # the optimizer state beside the weights, pinned for the next replay
    tokenizer_path: Path | None = None
    tokenizer_sha256: str | None = None
    dataset_root: str | None = None
    transcript: dict | None = None  # the segment since the parent checkpoint: see trainer.Segment.close

    def to_record(self) -> dict:
        """The fields as the registrar's journal holds them: paths as strings, None where absent."""
        return {"step": self.step, "path": str(self.path), "metrics": dict(self.metrics),
                "config": dict(self.config), "environment": dict(self.environment),
                "tokenizer_path": str(self.tokenizer_path) if self.tokenizer_path else None,
                "tokenizer_sha256": self.tokenizer_sha256,
                "optimizer_path": str(self.optimizer_path) if self.optimizer_path else None,
                "transcript": self.transcript, "privacy": self.privacy}
