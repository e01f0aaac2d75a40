"""Typed records shared by every layer: a version reference and a committed version.

One concept, one type: the chain client, the manifest code, the registrar, the audit and the
public API all pass these; dicts appear only where JSON is written or read.
"""

from dataclasses import asdict, dataclass
from typing import NamedTuple


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
