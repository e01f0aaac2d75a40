"""Models: one weights file, or a directory of shards and other files, sealed as two trees.

A weights file is safetensors or GGUF (`formats.sources`): a lone file by its suffix or its first
bytes, a file in a directory by its suffix. A directory (a Hugging Face model, a
`transformers.Trainer` `checkpoint-N/`) is sealed by these rules:

- Every `*.safetensors` and `*.gguf` file feeds the tensors tree (`modelreg-tensors-v1`, or -v2
  when a GGUF file is among them: `formats.seal`). A leaf does not say
  which shard held it, so resharding the same weights gives the same root. Tensor names must be
  unique across shards (so a folder holds at most one GGUF file: each has a `__metadata__`
  leaf); a shard in a subdirectory prefixes its names with that subdirectory's path
  (`unet/conv.weight`), so a pipeline of several models (diffusers) seals without collisions.
- A `*.safetensors.index.json` (`model.safetensors.index.json`) must agree with its shards
  exactly: every tensor its weight_map names is in the shard it names, every tensor of those
  shards is named, and no shard of its name is left out. It describes the sharding, which the
  root ignores, so it is checked but not sealed: a tensor moved to another shard changes nothing.
- Every other regular file feeds the files tree (`modelreg-files-v1`, the dataset tree), hashed
  as bytes and never loaded: config.json, tokenizer files, the model card, and pickles such as
  optimizer.pt or training_args.bin.
- A symbolic link is refused unless `follow_symlinks`; then it is followed wherever it points (a
  Hugging Face cache snapshot links into `../../blobs/`), its leaf keeps the link's own path, and
  a link back to a directory that contains it is refused. Special files (FIFOs, sockets,
  devices), names that are not UTF-8 and an index naming a shard outside its directory are refused.

A single file keeps the checkpoint rules of `seal` and has no files tree: its files root is None,
as is that of a directory holding nothing but shards (the contract stores zero: `records.ZERO_ROOT`).
"""

import json
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from modelreg._files import open_regular
from modelreg.errors import CheckpointInvalid, InputInvalid, ModelInvalid, SymlinkRefused
from modelreg.formats.gguf import METADATA_DTYPE
from modelreg.formats.seal import (
    FileLeaf,
    SealedCheckpoint,
    SealedDataset,
    TensorLeaf,
    _parallel,
    seal_checkpoint,
    sha256_file,
)
from modelreg.formats.sources import SAFETENSORS, WEIGHT_SUFFIXES, source_for_file, source_for_name

SHARD_SUFFIX = ".safetensors"  # the shards an index (below) describes; every weights suffix: WEIGHT_SUFFIXES
INDEX_SUFFIX = ".safetensors.index.json"
# What torch.save writes: a zip archive (torch >= 1.6) or a bare pickle stream (protocol 2 to 5).
_PICKLE_MAGIC = (b"PK\x03\x04", b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


@dataclass(frozen=True)
class SealedModel:
    """A sealed model: its tensors tree and, for a directory with other files, its files tree."""

    tensors: SealedCheckpoint
    files: SealedDataset | None = None

    @property
    def root(self) -> str:
        """The weights root: the `modelreg-tensors-v1` (or -v2) root."""
        return self.tensors.root

    @property
    def tensor_count(self) -> int:
        return len(self.tensors.leaves)

    @property
    def files_root(self) -> str | None:
        """The `modelreg-files-v1` root, or None when the model has no files besides its weights."""
        return self.files.root if self.files is not None else None

    @property
    def file_leaves(self) -> tuple[FileLeaf, ...]:
        return self.files.leaves if self.files is not None else ()


def seal_model(path: str | os.PathLike, *, follow_symlinks: bool = False,
               hashed: Mapping[Path, SealedCheckpoint | tuple[int, str] | None] | None = None
               ) -> SealedModel:
    """Seal a weights file (safetensors or GGUF) or a model directory (rules in the module docstring).

    `hashed` holds what another read of the files already computed (`TensorHasher` and
    `FileHasher` results, by the path the walk gives each file); those files are not read
    again, and a None there means "hash it here".

    Example:
        >>> sealed = seal_model("checkpoint-500")
        >>> sealed.root, sealed.tensor_count, sealed.files_root
    """
    path = Path(path)
    hashed = hashed or {}
    if not path.is_dir():
        return SealedModel(hashed.get(path) or seal_weights_file(path))
    entries = _entries(path, follow_symlinks)
    shards = {rel: p for rel, p, _ in entries if rel.endswith(WEIGHT_SUFFIXES)}
    indexes = {rel: p for rel, p, _ in entries if rel.endswith(INDEX_SUFFIX)}
    others = [(rel, p, size) for rel, p, size in entries if rel not in shards and rel not in indexes]
    if not shards:
        raise ModelInvalid(_no_weights(path, [rel for rel, _, _ in others]))
    sealed_shards = {rel: hashed.get(p) or seal_checkpoint(p, source_for_name(rel)) for rel, p in shards.items()}
    for rel, p in indexes.items():
        _check_index(rel, p, sealed_shards)
    tensors = SealedCheckpoint.of(_merged_leaves(sealed_shards))
    if not others:
        return SealedModel(tensors)
    digests = _parallel([(size, p) for _, p, size in others],
                        lambda job: hashed.get(job[1]) or sha256_file(job[1]))
    files = SealedDataset.of(FileLeaf(rel, size, digest) for (rel, _, _), (size, digest) in zip(others, digests))
    return SealedModel(tensors, files)


def seal_weights_file(path: Path) -> SealedCheckpoint:
    """seal_checkpoint, with a pickle (a torch.save file) told apart from a broken safetensors file."""
    source = source_for_file(path)
    try:
        return seal_checkpoint(path, source)
    except CheckpointInvalid:
        if source is SAFETENSORS and _is_pickle(path):
            raise CheckpointInvalid(
                f"{path} is a pickle (a torch.save file), not safetensors; modelreg never loads pickles "
                "because loading one can run any code: convert it with safetensors.torch.save_file"
                "(model.state_dict(), 'model.safetensors')") from None
        raise


def _is_pickle(path: Path) -> bool:
    try:
        with open_regular(path) as f:
            head = f.read(4)
    except InputInvalid:  # missing, unreadable, or a FIFO that would block
        return False
    return head.startswith(_PICKLE_MAGIC)


def _no_weights(path: Path, names: list[str]) -> str:
    pickles = [n for n in names if n.endswith(_PICKLE_SUFFIXES) and "model" in PurePosixPath(n).name]
    if pickles:
        return (f"model directory {str(path)!r} holds no *.safetensors file (nor *.gguf); its weights {pickles[0]} are a "
                "pickle, which modelreg never loads: convert them with safetensors.torch.save_file, "
                "or save_pretrained(..., safe_serialization=True)")
    return (f"model directory {str(path)!r} holds no *.safetensors file (nor *.gguf); a model's weights must be "
            "safetensors or GGUF")


def _merged_leaves(sealed_shards: dict[str, SealedCheckpoint]) -> list[TensorLeaf]:
    owner: dict[str, str] = {}
    leaves = []
    for rel in sorted(sealed_shards):
        folder = str(PurePosixPath(rel).parent)
        prefix = "" if folder == "." else folder + "/"
        for leaf in sealed_shards[rel].leaves:
            name = prefix + leaf.name
            if name in owner and leaf.dtype == METADATA_DTYPE:
                raise ModelInvalid(f"{owner[name]} and {rel} are two GGUF files in one folder; a folder holds at "
                                   "most one (several quantizations of a model are several models)")
            if name in owner:
                raise ModelInvalid(f"tensor {name!r} is in both {owner[name]} and {rel}; "
                                   "tensor names must be unique across shards")
            owner[name] = rel
            leaves.append(TensorLeaf(name, leaf.dtype, leaf.shape, leaf.sha256))
    return leaves


def _check_index(rel: str, path: Path, sealed_shards: dict[str, SealedCheckpoint]) -> None:
    """The index's weight_map must name every tensor of its shards, each in the shard that holds it."""
    try:
        index = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelInvalid(f"index {rel} is not UTF-8 JSON: {e}") from None
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise ModelInvalid(f"index {rel} has no weight_map of tensor names to shard file names")
    folder = PurePosixPath(rel).parent
    named: dict[str, set[str]] = {}
    for tensor, shard in weight_map.items():
        where = PurePosixPath(shard)
        if where.is_absolute() or ".." in where.parts or "\\" in shard:
            raise ModelInvalid(f"index {rel} maps tensor {tensor!r} to {shard!r}, outside the model directory")
        shard_rel = str(folder / where) if str(folder) != "." else str(where)
        if shard_rel not in sealed_shards:
            raise ModelInvalid(f"index {rel} maps tensor {tensor!r} to {shard}, which is not a safetensors "
                               "file of the model")
        named.setdefault(shard_rel, set()).add(tensor)
    family = rel[: -len(INDEX_SUFFIX)]  # "model" for model.safetensors.index.json
    for shard_rel in sorted(s for s in sealed_shards if _in_family(s, family)):
        if shard_rel not in named:
            raise ModelInvalid(f"index {rel} maps no tensor to {shard_rel}; the index and the shards disagree")
    held = {shard_rel: {leaf.name for leaf in sealed_shards[shard_rel].leaves} for shard_rel in named}
    for shard_rel, tensors in sorted(named.items()):
        for tensor in sorted(tensors - held[shard_rel]):
            elsewhere = [s for s, names in sorted(held.items()) if tensor in names]
            actually = f"it is in {elsewhere[0]}" if elsewhere else "no shard holds it"
            raise ModelInvalid(f"index {rel} maps tensor {tensor!r} to {shard_rel}, but {actually}")
    for shard_rel, tensors in sorted(named.items()):
        for tensor in sorted(held[shard_rel] - tensors):
            raise ModelInvalid(f"tensor {tensor!r} of {shard_rel} is missing from the weight_map of {rel}")


def _in_family(shard_rel: str, family: str) -> bool:
    return shard_rel == family + SHARD_SUFFIX or (shard_rel.startswith(family + "-")
                                                   and "/" not in shard_rel[len(family):])


def _entries(directory: Path, follow_symlinks: bool) -> list[tuple[str, Path, int]]:
    """(POSIX path relative to the directory, path, size) of every regular file, sorted by path."""
    found: list[tuple[str, Path, int]] = []

    def walk(folder: Path, prefix: str, ancestors: frozenset) -> None:
        with os.scandir(folder) as scan:
            entries = sorted(scan, key=lambda e: e.name)
        for entry in entries:
            rel = prefix + entry.name
            try:
                rel.encode("utf-8")
            except UnicodeEncodeError:
                raise ModelInvalid(f"model path {rel!r} is not valid UTF-8; rename it") from None
            info = _stat(entry, rel, follow_symlinks)
            if stat.S_ISDIR(info.st_mode):
                key = (info.st_dev, info.st_ino)
                if key in ancestors:
                    raise ModelInvalid(f"model entry {rel!r} links back to a directory that contains it")
                walk(Path(entry.path), rel + "/", ancestors | {key})
            elif stat.S_ISREG(info.st_mode):
                found.append((rel, Path(entry.path), info.st_size))
            else:
                raise ModelInvalid(f"model entry {rel!r} is not a regular file (a FIFO, socket or device); "
                                   "remove it from the model directory")

    top = os.stat(directory)
    walk(directory, "", frozenset({(top.st_dev, top.st_ino)}))
    return sorted(found)


def _stat(entry: os.DirEntry, rel: str, follow_symlinks: bool) -> os.stat_result:
    if not entry.is_symlink():
        return entry.stat(follow_symlinks=False)
    if not follow_symlinks:
        raise SymlinkRefused(f"model entry {rel!r} is a symbolic link, and links are followed only when "
                             "asked to follow them")
    try:
        return os.stat(entry.path)
    except OSError:
        raise ModelInvalid(f"model entry {rel!r} is a symbolic link to {os.readlink(entry.path)!r}, "
                           "which does not exist") from None
