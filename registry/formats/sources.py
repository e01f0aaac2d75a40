"""Tensor sources: the file formats a model's weights may come in, each read without its library.

A `TensorSource` knows one format's header: given the first bytes of a file and its size, it
returns the file's `Layout`, every tensor's name, dtype, shape and byte range, plus any leaf it
seals from the header itself (GGUF's metadata), or raises `NeedMore` until the header has
arrived. Everything else is shared, in `seal`: the memory-mapped parallel hash of a file
(`seal_checkpoint`) and the streaming hash of its bytes as IPFS reads them (`TensorHasher`),
both of which also check that any byte between tensors is zero padding. So a new format is one
header parser and one entry in SOURCES; its dtypes join the leaf vocabulary (`seal.TENSOR_DTYPES`).

    source = source_for_file(path)        # by suffix, then by magic; safetensors otherwise
    layout = source.layout(prefix, size)  # CheckpointInvalid, or NeedMore(bytes wanted)

The shape is model-transparency's `_serialization`: one base, one implementation per format,
chosen by what the file is; here the leaves, and so the root, stay the same whichever source
hashed them.
"""

import abc
import struct
from dataclasses import dataclass

from modelreg._files import open_regular
from modelreg.errors import CheckpointInvalid, InputInvalid
from modelreg.formats import gguf, safetensors
from modelreg.formats.gguf import NeedMore
from modelreg.formats.safetensors import TensorEntry

__all__ = ["NeedMore", "Layout", "TensorSource", "SOURCES", "SAFETENSORS", "GGUF", "WEIGHT_SUFFIXES",
           "source_for_name", "source_for_magic", "source_for_file"]


@dataclass(frozen=True)
class Layout:
    """A validated header: tensors sorted by position (absolute byte ranges that never overlap), the
    leaves sealed from the header itself as (name, dtype, shape, "0x" sha256), where the header ends.
    Every byte from `header_end` to `file_size` is a tensor's or zero padding."""

    tensors: tuple[TensorEntry, ...]
    header_leaves: tuple[tuple, ...]
    header_end: int
    file_size: int


class TensorSource(abc.ABC):
    """One weights format: `kind` names it, `suffixes` and `magic` recognise its files, `dtypes` is the
    dtype vocabulary of its leaves, `layout()` parses and validates a header."""

    kind: str
    suffixes: tuple[str, ...] = ()
    magic: bytes | None = None
    dtypes: frozenset[str] = frozenset()

    @abc.abstractmethod
    def layout(self, prefix, file_size: int) -> Layout:
        """The layout of a `file_size`-byte file whose first bytes are `prefix` (bytes, or a memory map).

        Raises NeedMore when `prefix` ends inside the header, CheckpointInvalid when the header is bad.
        """

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.kind}>"


class SafetensorsSource(TensorSource):
    kind = "safetensors"
    suffixes = (".safetensors",)
    dtypes = frozenset(safetensors.DTYPE_BITS)

    def layout(self, prefix, file_size: int) -> Layout:
        have = min(len(prefix), file_size)
        if have < 8 <= file_size:
            raise NeedMore(8)
        n = struct.unpack("<Q", prefix[:8])[0] if have >= 8 else 0
        if n <= safetensors.MAX_HEADER_BYTES and 8 + n <= file_size and have < 8 + n:
            raise NeedMore(8 + n)
        # Too short, too long or truncated: parse_header names which.
        header = safetensors.parse_header(bytes(prefix[:8 + min(n, safetensors.MAX_HEADER_BYTES)]), file_size)
        return Layout(header.tensors, (), header.data_start, file_size)


class GgufSource(TensorSource):
    kind = "gguf"
    suffixes = (".gguf",)
    magic = gguf.MAGIC
    dtypes = gguf.DTYPES

    def layout(self, prefix, file_size: int) -> Layout:
        parsed = gguf.parse(prefix, file_size)
        return Layout(parsed.tensors, (parsed.metadata_leaf,), parsed.header_end, file_size)


SAFETENSORS = SafetensorsSource()
GGUF = GgufSource()
# Keyed by kind. Safetensors is the default: a file no source claims is read as safetensors, whose
# refusal (and the pickle hint of `model.seal_weights_file`) is the message users already know.
SOURCES: dict[str, TensorSource] = {s.kind: s for s in (SAFETENSORS, GGUF)}
WEIGHT_SUFFIXES = tuple(suffix for s in SOURCES.values() for suffix in s.suffixes)


def source_for_name(name: str) -> TensorSource | None:
    """The source whose suffix `name` ends with: in a model directory, the files that are weights."""
    for source in SOURCES.values():
        if name.endswith(source.suffixes):
            return source
    return None


def source_for_magic(head: bytes) -> TensorSource:
    for source in SOURCES.values():
        if source.magic is not None and head.startswith(source.magic):
            return source
    return SAFETENSORS


def source_for_file(path) -> TensorSource:
    """The source of a lone weights file: by its suffix, else by its first bytes, else safetensors."""
    by_name = source_for_name(str(path))
    if by_name is not None:
        return by_name
    try:
        with open_regular(path) as f:
            head = f.read(8)
    except InputInvalid:  # missing, unreadable or special: the source's own open names the problem
        return SAFETENSORS
    return source_for_magic(head)


def named(path, parse):
    """parse(), its CheckpointInvalid prefixed with the file's path."""
    try:
        return parse()
    except CheckpointInvalid as e:
        raise CheckpointInvalid(f"{path}: {e}") from None
