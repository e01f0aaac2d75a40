"""Diffs: which tensors and files two models (or their manifests) add, remove or change, by name.

Each side is a model path (a safetensors file or a model directory, sealed, so hashed), a
checkpoint manifest path, or a manifest dict. A file is a manifest when it starts with "{" and
has no NUL in its first 8 bytes: a safetensors file starts with its header length as a
little-endian u64, whose top bytes are NUL for any header under the limit. With manifests on
both sides nothing is hashed. A tensor moved to another shard is no change: leaves do not
record shards.
"""

import os
from dataclasses import dataclass
from pathlib import Path

from modelreg._files import open_regular
from modelreg.formats.manifest import load_model
from modelreg.formats.model import SealedModel, seal_model
from modelreg.formats.seal import FileLeaf, SealedCheckpoint, TensorLeaf


@dataclass(frozen=True)
class TensorChange:
    """One tensor present on both sides whose listed parts ("dtype", "shape", "sha256") differ."""

    name: str
    parts: tuple[str, ...]
    before: TensorLeaf
    after: TensorLeaf


@dataclass(frozen=True)
class FileChange:
    """One file present on both sides whose listed parts ("size", "sha256") differ."""

    path: str
    parts: tuple[str, ...]
    before: FileLeaf
    after: FileLeaf


@dataclass(frozen=True)
class TensorDiff:
    """Names added in b, removed from a, and changed between them; all sorted by name.

    `files_*` list the same for the files of a model directory (empty for single files).
    """

    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[TensorChange, ...]
    files_added: tuple[str, ...] = ()
    files_removed: tuple[str, ...] = ()
    files_changed: tuple[FileChange, ...] = ()

    @property
    def identical(self) -> bool:
        return not (self.added or self.removed or self.changed
                    or self.files_added or self.files_removed or self.files_changed)

    def as_dict(self) -> dict:
        tensors = {"added": list(self.added), "removed": list(self.removed),
                   "changed": [{"name": c.name, "parts": list(c.parts)} for c in self.changed]}
        if self.files_added or self.files_removed or self.files_changed:
            tensors["files"] = {"added": list(self.files_added), "removed": list(self.files_removed),
                                "changed": [{"path": c.path, "parts": list(c.parts)} for c in self.files_changed]}
        return tensors


def _is_manifest_file(path: str | os.PathLike) -> bool:
    with open_regular(path) as f:
        head = f.read(8)
    return head.lstrip().startswith(b"{") and b"\0" not in head


def _sealed(side, follow_symlinks: bool) -> SealedModel:
    if isinstance(side, SealedModel):
        return side
    if isinstance(side, SealedCheckpoint):
        return SealedModel(side)
    if isinstance(side, dict) or (not Path(side).is_dir() and _is_manifest_file(side)):
        return load_model(side)[1]
    return seal_model(side, follow_symlinks=follow_symlinks)


def _compare(before: dict, after: dict, parts: tuple[str, ...], change) -> tuple:
    changed = []
    for key in sorted(before.keys() & after.keys()):
        x, y = before[key], after[key]
        differ = tuple(p for p in parts if getattr(x, p) != getattr(y, p))
        if differ:
            changed.append(change(key, differ, x, y))
    return tuple(sorted(after.keys() - before.keys())), tuple(sorted(before.keys() - after.keys())), tuple(changed)


def diff_tensors(a, b, *, follow_symlinks: bool = False) -> TensorDiff:
    """What b adds to a, removes from a, and changes: tensors by name, files by path.

    a and b are safetensors files, model directories, checkpoint manifests or sealed models.
    """
    x, y = _sealed(a, follow_symlinks), _sealed(b, follow_symlinks)
    added, removed, changed = _compare({t.name: t for t in x.tensors.leaves}, {t.name: t for t in y.tensors.leaves},
                                       ("dtype", "shape", "sha256"), TensorChange)
    files_added, files_removed, files_changed = _compare(
        {f.path: f for f in x.file_leaves}, {f.path: f for f in y.file_leaves}, ("size", "sha256"), FileChange)
    return TensorDiff(added, removed, changed, files_added, files_removed, files_changed)
