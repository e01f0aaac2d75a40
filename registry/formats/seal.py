"""Sealing: a checkpoint's tensors or a dataset's files become the leaves and root of a named Merkle tree.

Two formats, each an OpenZeppelin StandardMerkleTree (see `merkle`):

- `modelreg-tensors-v1`: one leaf per tensor, `(string name, string dtype,
  uint256[] shape, bytes32 sha256)`, the sha256 taken over the tensor's bytes
  exactly as stored in the file, the dtype one of safetensors' (`F32`, `BF16`, ...).
  A safetensors file's `__metadata__` is not sealed.
- `modelreg-tensors-v2`: the same leaves and tree, the dtype vocabulary grown by
  the ggml types of GGUF (`Q4_0`, `Q8_0`, `Q4_K`, ...) and `GGUF_METADATA`. A GGUF
  file adds one leaf `("__metadata__", "GGUF_METADATA", [kv_count], sha256 of its
  key-value section as stored)`, so its tokenizer and chat template are sealed, and
  gives shapes outermost first, like safetensors. A tree is v2 exactly when one of
  its dtypes is not in v1's vocabulary: safetensors weights keep their v1 roots.
  The tensors of every source (`formats.sources`) are sealed by the code below.
- `modelreg-files-v1`: one leaf per regular file, `(string path, uint256 size,
  bytes32 sha256)`, the path relative to the dataset directory, POSIX-style.

Dataset rule: every regular file under the directory is sealed, hidden files
included; nothing is skipped. Empty directories leave no trace (the tree is
over files). A symbolic link anywhere under the directory, a path that leaves
it, a special file (FIFO, socket, device) or a name that is not UTF-8 makes
`seal_dataset` raise DatasetInvalid naming the path: it is never followed and
never skipped silently. Copy the target in, or remove the entry.

Hashing runs on every core: hashlib releases the GIL on large buffers, so a
thread pool hashes several tensors at once, each straight from a memory map
(no copies), every byte read once. Pages already hashed are handed back to the
kernel, so resident memory stays near the size of the chunks in flight rather
than the size of the file.
"""

import hashlib
import mmap
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import ClassVar

from modelreg._files import open_regular
from modelreg.errors import CheckpointInvalid, DatasetInvalid, InputInvalid
from modelreg.formats.merkle import StandardMerkleTree
from modelreg.formats.safetensors import DTYPE_BITS, MAX_HEADER_BYTES
from modelreg.formats.sources import (
    SOURCES,
    Layout,
    NeedMore,
    TensorSource,
    named,
    source_for_file,
    source_for_magic,
)

TENSORS_FORMAT = "modelreg-tensors-v1"
TENSORS_FORMAT_V2 = "modelreg-tensors-v2"
TENSORS_FORMATS = (TENSORS_FORMAT, TENSORS_FORMAT_V2)
FILES_FORMAT = "modelreg-files-v1"
# The dtypes each tensors format admits: v1 safetensors', v2 those of every source.
TENSOR_DTYPES = {
    TENSORS_FORMAT: frozenset(DTYPE_BITS),
    TENSORS_FORMAT_V2: frozenset().union(*(s.dtypes for s in SOURCES.values())),
}


def tensors_format(dtypes: Iterable[str]) -> str:
    """The tensors format of leaves with these dtypes: v1 when v1 holds them all, else v2."""
    return TENSORS_FORMAT if TENSOR_DTYPES[TENSORS_FORMAT].issuperset(dtypes) else TENSORS_FORMAT_V2

# Big enough that the per-call overhead vanishes, small enough that the resident pages
# of all threads together stay far below one large tensor.
CHUNK_BYTES = 16 * 1024 * 1024
_PAGE = mmap.PAGESIZE


@dataclass(frozen=True)
class TensorLeaf:
    """A `modelreg-tensors-v1` (or `-v2`) leaf: one tensor as stored in the file."""

    TYPES: ClassVar[tuple[str, ...]] = ("string", "string", "uint256[]", "bytes32")

    name: str
    dtype: str
    shape: tuple[int, ...]
    sha256: str

    @property
    def key(self) -> str:
        return self.name

    def values(self) -> list:
        return [self.name, self.dtype, list(self.shape), self.sha256]


@dataclass(frozen=True)
class FileLeaf:
    """A `modelreg-files-v1` leaf: one file, by its POSIX path relative to the dataset directory."""

    TYPES: ClassVar[tuple[str, ...]] = ("string", "uint256", "bytes32")

    path: str
    size: int
    sha256: str

    @property
    def key(self) -> str:
        return self.path

    def values(self) -> list:
        return [self.path, self.size, self.sha256]


@dataclass(frozen=True)
class _Sealed:
    """The format name, the root, and the leaves sorted by key; `of()` builds one from leaves in any order."""

    FORMAT: ClassVar[str]
    LEAF: ClassVar[type]
    NOUN: ClassVar[str]

    format: str
    root: str
    leaves: tuple

    def __post_init__(self):
        if self.format != self._format_of(self.leaves):
            raise ValueError(f"{type(self).__name__} holds {self._format_of(self.leaves)!r}, not {self.format!r}")

    @classmethod
    def _format_of(cls, leaves: tuple) -> str:
        return cls.FORMAT

    @classmethod
    def of(cls, leaves: Iterable):
        ordered = tuple(sorted(leaves, key=lambda leaf: leaf.key))
        tree = StandardMerkleTree.of([leaf.values() for leaf in ordered], cls.LEAF.TYPES)
        sealed = cls(format=cls._format_of(ordered), root=tree.root, leaves=ordered)
        object.__setattr__(sealed, "tree", tree)  # fills the cached_property: no second build
        return sealed

    @cached_property
    def tree(self) -> StandardMerkleTree:
        return StandardMerkleTree.of([leaf.values() for leaf in self.leaves], self.LEAF.TYPES)

    @cached_property
    def _index(self) -> dict[str, int]:
        return {leaf.key: i for i, leaf in enumerate(self.leaves)}

    def index(self, key: str) -> int:
        try:
            return self._index[key]
        except KeyError:
            raise InputInvalid(f"no {self.NOUN} {key!r} in this {self.format} tree") from None

    def leaf(self, key: str):
        return self.leaves[self.index(key)]

    def proof(self, key: str) -> tuple:
        """(leaf, proof): the sibling hashes MerkleProof.verify needs to reach the root."""
        i = self.index(key)
        return self.leaves[i], self.tree.proof(i)

    def multiproof(self, keys: Sequence[str]) -> tuple[list, list[str], list[bool]]:
        """(leaves, proof, proof_flags) for MerkleProof.multiProofVerify; leaves come back in proof order."""
        values, proof, flags = self.tree.multiproof([self.index(k) for k in keys])
        by_values = {tuple(map(_hashable, leaf.values())): leaf for leaf in self.leaves}
        return [by_values[tuple(map(_hashable, v))] for v in values], proof, flags


def _hashable(v):
    return tuple(v) if isinstance(v, list) else v


@dataclass(frozen=True)
class SealedCheckpoint(_Sealed):
    """A checkpoint sealed as `modelreg-tensors-v1`, or `-v2` when a dtype needs it."""

    FORMAT: ClassVar[str] = TENSORS_FORMAT
    LEAF: ClassVar[type] = TensorLeaf
    NOUN: ClassVar[str] = "tensor"

    @classmethod
    def _format_of(cls, leaves: tuple) -> str:
        return tensors_format({leaf.dtype for leaf in leaves})


@dataclass(frozen=True)
class SealedDataset(_Sealed):
    """A dataset sealed as `modelreg-files-v1`."""

    FORMAT: ClassVar[str] = FILES_FORMAT
    LEAF: ClassVar[type] = FileLeaf
    NOUN: ClassVar[str] = "file"


def _sha256_range(mapped: mmap.mmap, view: memoryview, begin: int, end: int) -> str:
    h = hashlib.sha256()
    for a in range(begin, end, CHUNK_BYTES):
        b = min(a + CHUNK_BYTES, end)
        with view[a:b] as chunk:
            h.update(chunk)
        _forget(mapped, a, b)
    return "0x" + h.hexdigest()


def _forget(mapped: mmap.mmap, begin: int, end: int) -> None:
    """Drop hashed pages from this process's memory; they stay in the page cache, unchanged."""
    first = begin - begin % _PAGE
    last = end - end % _PAGE
    if last > first and hasattr(mmap, "MADV_DONTNEED"):
        mapped.madvise(mmap.MADV_DONTNEED, first, last - first)


def _workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _parallel(jobs: list, run) -> list:
    """run(job) for every job on all cores, largest first so no core is left with one long tail."""
    order = sorted(range(len(jobs)), key=lambda i: -jobs[i][0])
    results = [None] * len(jobs)
    with ThreadPoolExecutor(max_workers=_workers()) as pool:
        for i, result in zip(order, pool.map(run, [jobs[i] for i in order])):
            results[i] = result
    return results


def _segments(layout: Layout) -> list[tuple[int, int, int | None]]:
    """(begin, end, tensor index or None for padding) tiling the file from the header's end."""
    segments, position = [], layout.header_end
    for i, t in enumerate(layout.tensors):
        if t.begin > position:
            segments.append((position, t.begin, None))
        segments.append((t.begin, t.end, i))
        position = t.end
    if layout.file_size > position:
        segments.append((position, layout.file_size, None))
    return segments


def _leaves(layout: Layout, digests: Sequence[str]) -> list[TensorLeaf]:
    return [*(TensorLeaf(t.name, t.dtype, t.shape, d) for t, d in zip(layout.tensors, digests)),
            *(TensorLeaf(*leaf) for leaf in layout.header_leaves)]


def _padding_error(begin: int, end: int) -> CheckpointInvalid:
    return CheckpointInvalid(f"padding bytes [{begin}, {end}) between tensors are not all zero")


def seal_checkpoint(path: str | os.PathLike, source: TensorSource | None = None) -> SealedCheckpoint:
    """Validate the weights file at `path` (safetensors, GGUF: `source`, by default told by
    `sources.source_for_file`) and seal its tensors into a `modelreg-tensors-v1` (or -v2) tree."""
    path = Path(path)
    source = source or source_for_file(path)
    with open_regular(path, "checkpoint", CheckpointInvalid) as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            named(path, lambda: source.layout(b"", 0))
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped, memoryview(mapped) as view:
            layout = named(path, lambda: source.layout(mapped, size))
            if hasattr(mmap, "MADV_SEQUENTIAL"):
                mapped.madvise(mmap.MADV_SEQUENTIAL)
            segments = _segments(layout)
            for begin, end, i in segments:
                if i is None and mapped[begin:end].count(0) != end - begin:
                    raise CheckpointInvalid(f"{path}: {_padding_error(begin, end)}")
            jobs = [(t.nbytes, t.begin, t.end) for t in layout.tensors]
            digests = _parallel(jobs, lambda job: _sha256_range(mapped, view, job[1], job[2]))
    return SealedCheckpoint.of(_leaves(layout, digests))


def sha256_file(path: str | os.PathLike) -> tuple[int, str]:
    """(size, "0x" + sha256 hex) of one file, hashed from a memory map without copying it."""
    with open_regular(path) as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            return 0, "0x" + hashlib.sha256().hexdigest()
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped, memoryview(mapped) as view:
            return size, _sha256_range(mapped, view, 0, size)


class FileHasher:
    """(size, sha256) of a file from its bytes as another reader streams them past, in order."""

    def __init__(self):
        self._sha = hashlib.sha256()
        self.size = 0

    def update(self, chunk: bytes) -> None:
        self._sha.update(chunk)
        self.size += len(chunk)

    def result(self) -> tuple[int, str]:
        return self.size, "0x" + self._sha.hexdigest()


class TensorHasher:
    """`seal_checkpoint` of a weights file from its bytes as another reader streams them past, in
    order: the header is parsed once it has arrived, then each tensor's bytes feed its own sha256
    and padding is checked to be zero. So one read of the file can serve both the seal and its IPFS
    blocks. `source` is the file's format; None tells it from the file's first bytes.

    `result()` is the SealedCheckpoint, or None when the bytes were not a valid weights file of
    `file_size` bytes: the caller then runs `seal_checkpoint`, which names the problem.
    """

    def __init__(self, file_size: int, source: TensorSource | None = None):
        self._size = file_size
        self._source = source
        self._prefix = bytearray()
        self._next_try = 0
        self._layout: Layout | None = None
        self._failed = False
        self._digests: list[str] = []

    def update(self, chunk: bytes) -> None:
        if self._failed:
            return
        if self._layout is None:
            self._prefix += chunk
            chunk = self._parse_header()
            if chunk is None:
                return
        self._consume(memoryview(chunk))

    def _parse_header(self):
        """The bytes after the header once it is all here (and parsed), else None."""
        have = len(self._prefix)
        if self._source is None:
            if have < 8 and have < self._size:
                return None
            self._source = source_for_magic(bytes(self._prefix[:8]))
        if have < self._next_try and have < self._size:
            return None
        try:
            layout = self._source.layout(self._prefix, self._size)
        except NeedMore as e:
            # Parse again once the bytes it asked for are here, and at least twice as many as now:
            # a header that arrives in many small chunks is parsed a logarithmic number of times.
            self._next_try = max(e.need, 2 * have)
            if have > MAX_HEADER_BYTES + CHUNK_BYTES:  # the parser refuses such a header anyway
                self._failed = True
            return None
        except CheckpointInvalid:
            self._failed = True
            return None
        self._layout, self._position, self._sha = layout, layout.header_end, hashlib.sha256()
        self._segments = _segments(layout)
        self._at = 0  # the segment being read
        rest, self._prefix = bytes(self._prefix[layout.header_end:]), bytearray()
        return rest

    def _consume(self, view: memoryview) -> None:
        # The layout checked that the segments tile the rest of the file, in this order.
        segments = self._segments
        while True:
            while self._at < len(segments) and segments[self._at][1] == self._position:
                if segments[self._at][2] is not None:
                    self._digests.append("0x" + self._sha.hexdigest())
                    self._sha = hashlib.sha256()
                self._at += 1
            if not view:
                return
            if self._at == len(segments):  # more bytes than the header said: changed?
                self._failed = True
                return
            begin, end, tensor = segments[self._at]
            take = min(len(view), end - self._position)
            if tensor is None:
                if view[:take].tobytes().count(0) != take:
                    self._failed = True
                    return
            else:
                self._sha.update(view[:take])
            self._position += take
            view = view[take:]

    def result(self) -> SealedCheckpoint | None:
        layout = self._layout
        if self._failed or layout is None or len(self._digests) != len(layout.tensors):
            return None
        return SealedCheckpoint.of(_leaves(layout, self._digests))


def _posix_name(path: Path, base: Path) -> str:
    rel = path.relative_to(base)
    try:
        os.fsencode(str(rel)).decode("utf-8")
    except UnicodeDecodeError:
        raise DatasetInvalid(f"dataset path {str(rel)!r} is not valid UTF-8; rename it") from None
    return rel.as_posix()


def _walk(directory: Path) -> Iterable[Path]:
    with os.scandir(directory) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            path = Path(entry.path)
            if entry.is_symlink():
                raise DatasetInvalid(f"dataset entry {str(path)!r} is a symbolic link; links are not "
                                     "followed: copy the target into the dataset or remove the link")
            if entry.is_dir(follow_symlinks=False):
                yield from _walk(path)
            elif entry.is_file(follow_symlinks=False):
                yield path
            else:
                raise DatasetInvalid(f"dataset entry {str(path)!r} is not a regular file "
                                     "(a FIFO, socket or device); remove it from the dataset")


def _dataset_files(dir_or_files, base) -> tuple[Path, list[Path]]:
    if isinstance(dir_or_files, (str, os.PathLike)):
        directory = Path(dir_or_files)
        if not directory.is_dir():
            raise DatasetInvalid(f"dataset directory {str(directory)!r} does not exist or is not a directory")
        root = directory.resolve()
        return root, list(_walk(root))
    files = [Path(os.path.abspath(f)) for f in dir_or_files]
    if not files:
        raise DatasetInvalid("no dataset files given; pass a directory or at least one file")
    root = Path(os.path.abspath(base)) if base is not None else Path(os.path.commonpath([f.parent for f in files]))
    for f in files:
        if not f.is_relative_to(root):
            raise DatasetInvalid(f"dataset file {str(f)!r} is outside the dataset base {str(root)!r}")
        if f.is_symlink() or f.resolve() != root.resolve() / f.relative_to(root):
            raise DatasetInvalid(f"dataset file {str(f)!r} is or passes through a symbolic link; "
                                 "links are not followed: copy the target into the dataset")
        if not f.is_file():
            raise DatasetInvalid(f"dataset file {str(f)!r} does not exist or is not a regular file")
    if len(set(files)) != len(files):
        raise DatasetInvalid("the same dataset file is listed twice; list each file once")
    return root, files


def dataset_paths(directory: str | os.PathLike) -> list[tuple[str, Path]]:
    """The files of a dataset directory, each as (its POSIX path relative to the directory, its path),
    by the rules `seal_dataset` applies: for a caller that reads each file once and seals what it read."""
    root, files = _dataset_files(directory, None)
    if not files:
        raise DatasetInvalid(f"dataset {str(root)!r} holds no files; a Merkle tree needs at least one")
    return [(_posix_name(f, root), f) for f in files]


def seal_dataset(dir_or_files: str | os.PathLike | Iterable[str | os.PathLike],
                 base: str | os.PathLike | None = None) -> SealedDataset:
    """Seal a directory, or a list of files, into a `modelreg-files-v1` tree (rules in the module docstring).

    For a list, paths are relative to `base`, by default the deepest directory holding them all.
    """
    root, files = _dataset_files(dir_or_files, base)
    if not files:
        raise DatasetInvalid(f"dataset {str(root)!r} holds no files; a Merkle tree needs at least one")
    names = [_posix_name(f, root) for f in files]
    jobs = [(f.stat().st_size, f) for f in files]
    hashed = _parallel(jobs, lambda job: sha256_file(job[1]))
    return SealedDataset.of(FileLeaf(n, size, digest) for n, (size, digest) in zip(names, hashed))
