"""Sealing: a checkpoint's tensors or a dataset's files become the leaves and root of a named Merkle tree.

Two formats, each an OpenZeppelin StandardMerkleTree (see `merkle`):

- `modelreg-tensors-v1`: one leaf per tensor, `(string name, string dtype,
  uint256[] shape, bytes32 sha256)`, the sha256 taken over the tensor's bytes
  exactly as stored in the safetensors file. `__metadata__` is not sealed.
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
from modelreg.formats.safetensors import MAX_HEADER_BYTES, open_checkpoint, parse_header

TENSORS_FORMAT = "modelreg-tensors-v1"
FILES_FORMAT = "modelreg-files-v1"

# Big enough that the per-call overhead vanishes, small enough that the resident pages
# of all threads together stay far below one large tensor.
CHUNK_BYTES = 16 * 1024 * 1024
_PAGE = mmap.PAGESIZE


@dataclass(frozen=True)
class TensorLeaf:
    """A `modelreg-tensors-v1` leaf: one tensor as stored in the file."""

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
        if self.format != self.FORMAT:
            raise ValueError(f"{type(self).__name__} holds {self.FORMAT!r}, not {self.format!r}")

    @classmethod
    def of(cls, leaves: Iterable):
        ordered = tuple(sorted(leaves, key=lambda leaf: leaf.key))
        tree = StandardMerkleTree.of([leaf.values() for leaf in ordered], cls.LEAF.TYPES)
        sealed = cls(format=cls.FORMAT, root=tree.root, leaves=ordered)
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
            raise InputInvalid(f"no {self.NOUN} {key!r} in this {self.FORMAT} tree") from None

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
    """A checkpoint sealed as `modelreg-tensors-v1`."""

    FORMAT: ClassVar[str] = TENSORS_FORMAT
    LEAF: ClassVar[type] = TensorLeaf
    NOUN: ClassVar[str] = "tensor"


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


def seal_checkpoint(path: str | os.PathLike) -> SealedCheckpoint:
    """Validate the safetensors file at `path` and seal its tensors into a `modelreg-tensors-v1` tree."""
    with open_checkpoint(path) as (header, mapped), memoryview(mapped) as view:
        if hasattr(mmap, "MADV_SEQUENTIAL"):
            mapped.madvise(mmap.MADV_SEQUENTIAL)
        jobs = [(t.nbytes, t.begin, t.end) for t in header.tensors]
        digests = _parallel(jobs, lambda job: _sha256_range(mapped, view, job[1], job[2]))
    leaves = [TensorLeaf(t.name, t.dtype, t.shape, d) for t, d in zip(header.tensors, digests)]
    return SealedCheckpoint.of(leaves)


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
    """`seal_checkpoint` of a safetensors file from its bytes as another reader streams them
    past, in order: the header is parsed once it has arrived, then each tensor's bytes feed
    its own sha256. So one read of the file can serve both the seal and its IPFS blocks.

    `result()` is the SealedCheckpoint, or None when the bytes were not a valid safetensors
    file of `file_size` bytes: the caller then runs `seal_checkpoint`, which names the problem.
    """

    def __init__(self, file_size: int):
        self._size = file_size
        self._prefix = bytearray()
        self._tensors = None
        self._failed = False
        self._digests: list[str] = []

    def update(self, chunk: bytes) -> None:
        if self._failed:
            return
        if self._tensors is None:
            self._prefix += chunk
            chunk = self._parse_header()
            if chunk is None:
                return
        self._consume(memoryview(chunk))

    def _parse_header(self):
        """The bytes after the header once it is all here (and parsed), else None."""
        if len(self._prefix) < 8:
            return None
        need = 8 + int.from_bytes(self._prefix[:8], "little")
        if need - 8 > MAX_HEADER_BYTES:
            self._failed = True
            return None
        if len(self._prefix) < need:
            return None
        try:
            header = parse_header(bytes(self._prefix[:need]), self._size)
        except CheckpointInvalid:
            self._failed = True
            return None
        self._tensors, self._position, self._sha = header.tensors, need, hashlib.sha256()
        rest, self._prefix = bytes(self._prefix[need:]), bytearray()
        return rest

    def _consume(self, view: memoryview) -> None:
        # The header checked that the tensors tile the data exactly, in this order.
        tensors = self._tensors
        while True:
            while len(self._digests) < len(tensors) and tensors[len(self._digests)].end == self._position:
                self._digests.append("0x" + self._sha.hexdigest())
                self._sha = hashlib.sha256()
            if not view:
                return
            if len(self._digests) == len(tensors):  # more bytes than the header said: changed?
                self._failed = True
                return
            take = min(len(view), tensors[len(self._digests)].end - self._position)
            self._sha.update(view[:take])
            self._position += take
            view = view[take:]

    def result(self) -> SealedCheckpoint | None:
        if self._failed or self._tensors is None or len(self._digests) != len(self._tensors):
            return None
        return SealedCheckpoint.of(TensorLeaf(t.name, t.dtype, t.shape, d)
                                   for t, d in zip(self._tensors, self._digests))


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
