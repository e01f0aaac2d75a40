"""Manifests: a sealed checkpoint or dataset as canonical JSON, every leaf listed and the root checkable.

Canonical JSON is sorted keys, UTF-8 (not \\u escapes), separators "," and
":", no NaN or infinity: the same manifest always gives the same bytes, so
its IPFS CID is stable. Two shapes:

- `modelreg-dataset-manifest-v1`: {"manifest", "format": "modelreg-files-v1",
  "root", "leaves": [{"path", "size", "sha256"}, ...]}
- `modelreg-checkpoint-manifest-v1`: {"manifest", "format":
  "modelreg-tensors-v1" (or "modelreg-tensors-v2": formats.seal), "root", "leaves": [{"name", "dtype", "shape",
  "sha256"}, ...]} plus the lineage keys (LINEAGE_KEYS), all of them or, for
  a manifest of the sealed weights alone, none. A model directory with files besides its
  weights adds "files": {"format": "modelreg-files-v1", "root", "leaves": [{"path", "size",
  "sha256"}, ...]}; a single file has no "files" key (its files root is zero). An optional
  "note" holds the committer's free text, an optional "derivation" the `modelreg-derivation-v1`
  of a version derived from another (formats.derivation).
- `modelreg-checkpoint-manifest-v2`: v1 plus the lineage key "transcript", a
  `modelreg-training-transcript-v1` (formats.transcript): what `audit replay`
  re-executes. v1 manifests stay readable; they have no transcript.

Leaves are listed sorted by name (path): the order of the sealed leaves.
"""

import json
import os
import re
from pathlib import Path

from modelreg import caps
from modelreg._json import loads_outside
from modelreg.errors import JsonInvalid, JsonTooDeep, JsonTooLarge, ManifestInvalid
from modelreg.formats.derivation import check_derivation
from modelreg.formats.model import SealedModel
from modelreg.formats.paths import check_paths
from modelreg.formats.privacy import check as check_privacy
from modelreg.formats.privacy import from_transcript as privacy_from_transcript
from modelreg.formats.seal import (
    FILES_FORMAT,
    TENSOR_DTYPES,
    TENSORS_FORMATS,
    FileLeaf,
    SealedCheckpoint,
    SealedDataset,
    TensorLeaf,
)
from modelreg.formats.transcript import check_transcript

CHECKPOINT_MANIFEST = "modelreg-checkpoint-manifest-v1"
CHECKPOINT_MANIFEST_V2 = "modelreg-checkpoint-manifest-v2"
CHECKPOINT_MANIFESTS = (CHECKPOINT_MANIFEST, CHECKPOINT_MANIFEST_V2)
DATASET_MANIFEST = "modelreg-dataset-manifest-v1"
LINEAGE_KEYS = ("model", "step", "parent", "dataset_root", "config", "code_revision",
                "metrics", "environment", "artifacts")

_HASH = re.compile(r"0x[0-9a-f]{64}")
_TENSOR_FIELDS = {"name": str, "dtype": str, "shape": list, "sha256": str}
_KINDS = {
    CHECKPOINT_MANIFEST: (TENSORS_FORMATS, SealedCheckpoint, _TENSOR_FIELDS),
    CHECKPOINT_MANIFEST_V2: (TENSORS_FORMATS, SealedCheckpoint, _TENSOR_FIELDS),
    DATASET_MANIFEST: ((FILES_FORMAT,), SealedDataset, {"path": str, "size": int, "sha256": str}),
}


def canonical_json(obj) -> bytes:
    """The canonical bytes of `obj`; ManifestInvalid for NaN, infinity or values JSON cannot hold."""
    try:
        text = json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError as e:
        raise ManifestInvalid(f"manifest holds a value canonical JSON cannot carry: {e}") from None
    except TypeError as e:
        raise ManifestInvalid(f"manifest holds a value JSON cannot carry: {e}") from None
    return text.encode("utf-8")


def _leaf_dict(leaf) -> dict:
    if isinstance(leaf, TensorLeaf):
        return {"name": leaf.name, "dtype": leaf.dtype, "shape": list(leaf.shape), "sha256": leaf.sha256}
    return {"path": leaf.path, "size": leaf.size, "sha256": leaf.sha256}


def dataset_manifest(sealed: SealedDataset) -> dict:
    """The `modelreg-dataset-manifest-v1` dict of a sealed dataset."""
    return {"manifest": DATASET_MANIFEST, "format": sealed.format, "root": sealed.root,
            "leaves": [_leaf_dict(leaf) for leaf in sealed.leaves]}


def checkpoint_manifest(sealed: SealedCheckpoint | SealedModel, **lineage) -> dict:
    """The checkpoint manifest dict: the sealed tensors (and files), plus every lineage key or none.

    parent is {"model_id": int, "version": int} or None; dataset_root a "0x" root or None;
    config, metrics, environment and artifacts ({name: {"sha256", "size"}}) are dicts. With a
    transcript (a `modelreg-training-transcript-v1` dict) the manifest is a v2, else a v1.
    """
    files = sealed.files if isinstance(sealed, SealedModel) else None
    tensors = sealed.tensors if isinstance(sealed, SealedModel) else sealed
    kind = CHECKPOINT_MANIFEST_V2 if "transcript" in lineage else CHECKPOINT_MANIFEST
    manifest = {"manifest": kind, "format": tensors.format, "root": tensors.root,
                "leaves": [_leaf_dict(leaf) for leaf in tensors.leaves], **lineage}
    if files is not None:
        manifest["files"] = {"format": files.format, "root": files.root,
                             "leaves": [_leaf_dict(leaf) for leaf in files.leaves]}
    _check_lineage(manifest)
    canonical_json(manifest)  # fail here, not at upload time, on NaN or a non-JSON value
    return manifest


def _check_lineage(manifest: dict) -> None:
    v2 = manifest["manifest"] == CHECKPOINT_MANIFEST_V2
    keys = (*LINEAGE_KEYS, "transcript") if v2 else LINEAGE_KEYS
    present = [k for k in keys if k in manifest]
    unknown = sorted(set(manifest) - set(keys) - {"manifest", "format", "root", "leaves", "files", "note",
                                                  "derivation", "privacy"})
    if unknown:
        raise ManifestInvalid(f"{manifest['manifest']} has unknown keys {unknown}; lineage keys are "
                              f"{', '.join(keys)}")
    if (present or v2) and len(present) != len(keys):
        missing = [k for k in keys if k not in manifest]
        raise ManifestInvalid(f"checkpoint manifest lacks lineage keys {missing}; give all of "
                              f"{', '.join(keys)} or none")
    if not isinstance(manifest.get("note", ""), str):
        raise ManifestInvalid(f"note {manifest['note']!r} must be a string")
    if "derivation" in manifest:
        check_derivation(manifest["derivation"])
    if "privacy" in manifest:
        check_privacy(manifest["privacy"])
        dp = (manifest.get("transcript") or {}).get("dp")
        if (manifest["privacy"]["basis"] == "transcript") != (dp is not None) or (
                dp is not None and manifest["privacy"] != privacy_from_transcript(dp)):
            raise ManifestInvalid("privacy with basis \"transcript\" must restate the transcript's dp section, "
                                  "and a transcript with dp needs it")
    if not present:
        return
    if v2:
        check_transcript(manifest["transcript"])
    parent = manifest["parent"]
    if parent is not None and not (isinstance(parent, dict) and set(parent) == {"model_id", "version"}
                                   and all(_is_count(v) for v in parent.values())):
        raise ManifestInvalid(f"parent {parent!r} must be null or {{\"model_id\": int, \"version\": int}}")
    if manifest["dataset_root"] is not None and not _is_hash(manifest["dataset_root"]):
        raise ManifestInvalid(f"dataset_root {manifest['dataset_root']!r} must be null or \"0x\" + 64 hex digits")
    for key in ("config", "metrics", "environment", "artifacts"):
        if not isinstance(manifest[key], dict):
            raise ManifestInvalid(f"lineage key {key!r} must be an object, got {type(manifest[key]).__name__}")
    if manifest["step"] is not None and not _is_count(manifest["step"]):
        raise ManifestInvalid(f"step {manifest['step']!r} must be a non-negative integer or null")


def _is_count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _is_hash(v) -> bool:
    return isinstance(v, str) and _HASH.fullmatch(v) is not None


def _read(source) -> dict:
    if isinstance(source, dict):
        return source
    if isinstance(source, (bytes, bytearray)):
        raw, where = bytes(source), "manifest"
    else:
        try:
            caps.check("max_manifest_bytes", f"manifest {os.fspath(source)!r}", Path(source).stat().st_size)
            raw, where = Path(source).read_bytes(), f"manifest {os.fspath(source)!r}"
        except OSError as e:
            raise ManifestInvalid(f"manifest {os.fspath(source)!r} cannot be read: {e.strerror}") from None
    caps.check("max_manifest_bytes", f"the size of the {where}", len(raw))
    try:
        obj = loads_outside(raw.decode("utf-8"), what=where, parse_constant=_no_constant)
    except UnicodeDecodeError as e:
        raise ManifestInvalid(f"{where} is not UTF-8 JSON: {e}") from None
    except (JsonTooDeep, JsonTooLarge) as e:
        raise ManifestInvalid(str(e)) from None
    except JsonInvalid as e:
        raise ManifestInvalid(f"{where} is not UTF-8 JSON: {e}") from None
    if not isinstance(obj, dict):
        raise ManifestInvalid(f"{where} is not a JSON object")
    return obj


def _no_constant(name):
    raise ManifestInvalid(f"manifest holds {name}, which canonical JSON forbids")


def _leaf(fields: dict, entry, i: int, fmt: str):
    if not isinstance(entry, dict) or set(entry) != set(fields):
        raise ManifestInvalid(f"leaf {i} must have exactly the keys {sorted(fields)}, got {entry!r}")
    for key, kind in fields.items():
        if not isinstance(entry[key], kind) or isinstance(entry[key], bool):
            raise ManifestInvalid(f"leaf {i}: {key} {entry[key]!r} must be a {kind.__name__}")
    if not _is_hash(entry["sha256"]):
        raise ManifestInvalid(f"leaf {i}: sha256 {entry['sha256']!r} must be \"0x\" + 64 lowercase hex digits")
    if "shape" in entry:
        if not all(_is_count(d) for d in entry["shape"]):
            raise ManifestInvalid(f"leaf {i}: shape {entry['shape']!r} must list non-negative integers")
        if entry["dtype"] not in TENSOR_DTYPES[fmt]:
            known = "a safetensors dtype" if fmt == TENSORS_FORMATS[0] else f"a {fmt} dtype"
            raise ManifestInvalid(f"leaf {i}: dtype {entry['dtype']!r} is not {known}")
        return TensorLeaf(entry["name"], entry["dtype"], tuple(entry["shape"]), entry["sha256"])
    if not _is_count(entry["size"]):
        raise ManifestInvalid(f"leaf {i}: size {entry['size']!r} must be a non-negative integer")
    return FileLeaf(entry["path"], entry["size"], entry["sha256"])


def sealed_of(manifest: dict) -> SealedCheckpoint | SealedDataset:
    """The sealed tree a manifest describes, its root recomputed from the leaves (the manifest's is not trusted)."""
    kind = manifest.get("manifest")
    if kind not in _KINDS:
        raise ManifestInvalid(f"unknown manifest {kind!r}; expected {' or '.join(_KINDS)}")
    formats, sealed_type, fields = _KINDS[kind]
    fmt = manifest.get("format")
    if fmt not in formats:
        raise ManifestInvalid(f"{kind} must have format {' or '.join(map(repr, formats))}, not {fmt!r}")
    leaves = manifest.get("leaves")
    if not isinstance(leaves, list) or not leaves:
        raise ManifestInvalid(f"{kind} must list at least one leaf")
    caps.check("max_entries", f"the number of leaves of a {kind}", len(leaves))
    parsed = [_leaf(fields, entry, i, fmt) for i, entry in enumerate(leaves)]
    if sealed_type is SealedDataset:  # file paths are where replay and get write: checked before any use
        check_paths((leaf.path for leaf in parsed), what=kind)
        caps.check("max_dataset_bytes", f"the total size a {kind} declares", sum(leaf.size for leaf in parsed))
    keys = [leaf.key for leaf in parsed]
    if len(set(keys)) != len(keys):
        twice = sorted({k for k in keys if keys.count(k) > 1})[0]
        raise ManifestInvalid(f"manifest lists {twice!r} twice; each leaf must be unique")
    sealed = sealed_type.of(parsed)
    if sealed.format != fmt:  # v2 only where a dtype needs it: one set of leaves, one format
        raise ManifestInvalid(f"{kind} says format {fmt!r} but its leaves are {sealed.format!r}: "
                              "every dtype is in the v1 vocabulary")
    return sealed


def _files_of(manifest: dict) -> SealedDataset | None:
    """The files tree of a checkpoint manifest, its root recomputed and checked; None without one."""
    if "files" not in manifest:
        return None
    block = manifest["files"]
    if not isinstance(block, dict) or set(block) != {"format", "root", "leaves"}:
        raise ManifestInvalid("checkpoint manifest files must be {\"format\", \"root\", \"leaves\"}")
    files = sealed_of({**block, "manifest": DATASET_MANIFEST})
    if files.root != block["root"]:
        raise ManifestInvalid(f"manifest says files root {block['root']} but its file leaves give {files.root}; "
                              "the manifest was altered or built wrongly")
    return files


def load_model(source: bytes | str | os.PathLike | dict) -> tuple[dict, SealedModel]:
    """load_manifest of a checkpoint manifest, and the model (tensors and files) it describes."""
    manifest, sealed = load_sealed(source)
    if manifest["manifest"] not in CHECKPOINT_MANIFESTS:
        raise ManifestInvalid(f"{manifest['manifest']} is not a checkpoint manifest")
    return manifest, SealedModel(sealed, _files_of(manifest))


def load_manifest(source: bytes | str | os.PathLike | dict) -> dict:
    """Parse and check a manifest (bytes, a path, or a dict): ManifestInvalid unless the leaves give its root."""
    return load_sealed(source)[0]


def load_sealed(source: bytes | str | os.PathLike | dict) -> tuple[dict, SealedCheckpoint | SealedDataset]:
    """load_manifest, and the sealed tree the manifest describes."""
    manifest = _read(source)
    sealed = sealed_of(manifest)
    if not _is_hash(manifest.get("root")):
        raise ManifestInvalid(f"manifest root {manifest.get('root')!r} must be \"0x\" + 64 lowercase hex digits")
    if sealed.root != manifest["root"]:
        raise ManifestInvalid(f"manifest says root {manifest['root']} but its leaves give {sealed.root}; "
                              "the manifest was altered or built wrongly")
    if manifest["manifest"] in CHECKPOINT_MANIFESTS:
        _check_lineage(manifest)
        _files_of(manifest)
    else:
        extra = sorted(set(manifest) - {"manifest", "format", "root", "leaves"})
        if extra:
            raise ManifestInvalid(f"dataset manifest has unknown keys {extra}")
    canonical_json(manifest)
    return manifest, sealed
