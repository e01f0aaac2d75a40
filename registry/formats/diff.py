"""Diffs: which tensors two checkpoints (or their manifests) add, remove or change, by name.

Each side is a safetensors path (sealed, so hashed), a manifest path, or a
manifest dict. A path is a manifest when its file starts with "{" and has no
NUL in its first 8 bytes: a safetensors file starts with its header length as
a little-endian u64, whose top bytes are NUL for any header under the limit.
With manifests on both sides nothing is hashed.
"""

import os
from dataclasses import dataclass

from modelreg.errors import InputInvalid
from modelreg.formats.manifest import CHECKPOINT_MANIFEST, load_sealed
from modelreg.formats.seal import SealedCheckpoint, TensorLeaf, seal_checkpoint


@dataclass(frozen=True)
class TensorChange:
    """One tensor present on both sides whose listed parts ("dtype", "shape", "sha256") differ."""

    name: str
    parts: tuple[str, ...]
    before: TensorLeaf
    after: TensorLeaf


@dataclass(frozen=True)
class TensorDiff:
    """Names added in b, removed from a, and changed between them; all sorted by name."""

    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[TensorChange, ...]

    @property
    def identical(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def as_dict(self) -> dict:
        return {"added": list(self.added), "removed": list(self.removed),
                "changed": [{"name": c.name, "parts": list(c.parts)} for c in self.changed]}


def _is_manifest_file(path: str | os.PathLike) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise InputInvalid(f"{os.fspath(path)!r} cannot be read: {e.strerror}") from None
    return head.lstrip().startswith(b"{") and b"\0" not in head


def _sealed(side) -> SealedCheckpoint:
    if isinstance(side, SealedCheckpoint):
        return side
    if isinstance(side, dict) or _is_manifest_file(side):
        manifest, sealed = load_sealed(side)
        if manifest["manifest"] != CHECKPOINT_MANIFEST:
            raise InputInvalid(f"{manifest['manifest']} is not a checkpoint manifest; diff compares tensors")
        return sealed
    return seal_checkpoint(side)


def diff_tensors(a, b) -> TensorDiff:
    """The tensors b adds to a, removes from a, and changes; a and b are checkpoints or manifests."""
    before = {leaf.name: leaf for leaf in _sealed(a).leaves}
    after = {leaf.name: leaf for leaf in _sealed(b).leaves}
    changed = []
    for name in sorted(before.keys() & after.keys()):
        x, y = before[name], after[name]
        parts = tuple(p for p in ("dtype", "shape", "sha256") if getattr(x, p) != getattr(y, p))
        if parts:
            changed.append(TensorChange(name, parts, x, y))
    return TensorDiff(added=tuple(sorted(after.keys() - before.keys())),
                      removed=tuple(sorted(before.keys() - after.keys())),
                      changed=tuple(changed))
