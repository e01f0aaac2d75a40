"""A GGUF file read without its library: the header and tensor infos parsed strictly, within bounds.

The file (GGUF versions 2 and 3, little-endian) is

    "GGUF" ‖ u32 version ‖ u64 tensor_count ‖ u64 kv_count
    ‖ kv_count × (string key ‖ u32 value_type ‖ value)
    ‖ tensor_count × (string name ‖ u32 n_dims ‖ n_dims × u64 dim ‖ u32 ggml_type ‖ u64 offset)
    ‖ zero padding to `general.alignment` (default 32) ‖ tensor data

where a string is `u64 length ‖ UTF-8 bytes` and each offset is relative to the start of the
tensor data. Beyond what llama.cpp's loader demands (known types, aligned offsets, at most 4
dimensions, a row a whole number of quantization blocks, unique names and keys), this reader
demands what a sealed checkpoint needs to be unambiguous: every byte of the data region is a
tensor's or alignment padding, each tensor starting at the first aligned offset after the one
before it, the padding zero (the sealer checks the bytes), and nothing after the last tensor but
its padding.

A hostile header costs time linear in its size and memory bounded by it: the header must end
within MAX_HEADER_BYTES, counts are capped and checked against the bytes left before any loop
runs, arrays nest at most MAX_NESTING deep. Every refusal is `CheckpointInvalid`; `NeedMore`
says only that the prefix given ends before the header does.
"""

import hashlib
import struct

from modelreg.errors import CheckpointInvalid
from modelreg.formats.safetensors import MAX_HEADER_BYTES, MAX_TENSORS, U64_MAX, TensorEntry

MAGIC = b"GGUF"
VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
ALIGNMENT_KEY = "general.alignment"
# ggml's GGML_MAX_DIMS: llama.cpp refuses a tensor of more.
MAX_DIMS = 4
# Keys of the metadata: real files hold some tens (a tokenizer is a few arrays, not many keys).
MAX_KEYS = 100_000
MAX_NESTING = 8
# The leaf that seals the key-value metadata (tokenizer, chat template, hyperparameters).
METADATA_LEAF = "__metadata__"
METADATA_DTYPE = "GGUF_METADATA"

# ggml type id -> (name, elements per block, bytes per block), as ggml.c's type_traits (the
# test holds this table to gguf-py's GGML_QUANT_SIZES). Ids 4, 5 and 31 to 33, 36 to 38 were
# removed from ggml; a file using them is refused like an unknown type.
GGML_TYPES = {
    0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22), 7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34), 9: ("Q8_1", 32, 40),
    10: ("Q2_K", 256, 84), 11: ("Q3_K", 256, 110), 12: ("Q4_K", 256, 144), 13: ("Q5_K", 256, 176),
    14: ("Q6_K", 256, 210), 15: ("Q8_K", 256, 292), 16: ("IQ2_XXS", 256, 66), 17: ("IQ2_XS", 256, 74),
    18: ("IQ3_XXS", 256, 98), 19: ("IQ1_S", 256, 50), 20: ("IQ4_NL", 32, 18), 21: ("IQ3_S", 256, 110),
    22: ("IQ2_S", 256, 82), 23: ("IQ4_XS", 256, 136), 24: ("I8", 1, 1), 25: ("I16", 1, 2),
    26: ("I32", 1, 4), 27: ("I64", 1, 8), 28: ("F64", 1, 8), 29: ("IQ1_M", 256, 56), 30: ("BF16", 1, 2),
    34: ("TQ1_0", 256, 54), 35: ("TQ2_0", 256, 66), 39: ("MXFP4", 32, 17), 40: ("NVFP4", 64, 36),
    41: ("Q1_0", 128, 18),
}
DTYPES = frozenset(name for name, _, _ in GGML_TYPES.values()) | {METADATA_DTYPE}

# Metadata value types: id -> (name, fixed size in bytes, or None for string and array).
_STRING, _ARRAY = 8, 9
_VALUE_TYPES = {0: ("UINT8", 1), 1: ("INT8", 1), 2: ("UINT16", 2), 3: ("INT16", 2), 4: ("UINT32", 4),
                5: ("INT32", 4), 6: ("FLOAT32", 4), 7: ("BOOL", 1), _STRING: ("STRING", None),
                _ARRAY: ("ARRAY", None), 10: ("UINT64", 8), 11: ("INT64", 8), 12: ("FLOAT64", 8)}
_U32, _U64 = struct.Struct("<I"), struct.Struct("<Q")


class NeedMore(Exception):
    """The prefix ends inside the header, and the file goes on: give at least `need` bytes."""

    def __init__(self, need: int):
        super().__init__(need)
        self.need = need


def _unique(name: str, seen: set, what: str, plural: str) -> str:
    """name, added to seen; a name already there is refused."""
    if name in seen:
        _reject(f"{what} {name!r} appears twice; {plural} must be unique")
    seen.add(name)
    return name


def _reject(problem: str):
    raise CheckpointInvalid(problem)


class _Reader:
    """Little-endian fields from `buf`, which holds the first len(buf) bytes of a `file_size`-byte file."""

    def __init__(self, buf, file_size: int):
        self.buf, self.pos, self.file_size = buf, 0, file_size
        self.limit = min(len(buf), file_size)

    def need(self, n: int, what: str) -> None:
        end = self.pos + n
        if end > MAX_HEADER_BYTES:
            _reject(f"header runs past {MAX_HEADER_BYTES} bytes (the limit) at {what}; the file is corrupt "
                    "or hostile")
        if end > self.file_size:
            _reject(f"file ends inside its header, at {what} (truncated?)")
        if end > self.limit:
            raise NeedMore(end)

    def u32(self, what: str) -> int:
        self.need(4, what)
        (v,) = _U32.unpack_from(self.buf, self.pos)
        self.pos += 4
        return v

    def u64(self, what: str) -> int:
        self.need(8, what)
        (v,) = _U64.unpack_from(self.buf, self.pos)
        self.pos += 8
        return v

    def string(self, what: str) -> str:
        n = self.u64(f"the length of {what}")
        self.need(n, what)
        raw = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            _reject(f"{what} is not valid UTF-8")

    def skip(self, n: int, what: str) -> None:
        self.need(n, what)
        self.pos += n

    def count(self, what: str, cap: int, smallest: int) -> int:
        """A u64 count of items of at least `smallest` bytes each: within `cap`, and fitting the file."""
        n = self.u64(what)
        if n > cap:
            _reject(f"{what} is {n}, over the limit of {cap}")
        if n * smallest > self.file_size - self.pos:
            _reject(f"{what} is {n}, but the {self.file_size}-byte file cannot hold that many")
        return n


def _value(r: _Reader, kind: int, key: str, depth: int):
    """Skip (or, for the alignment key, read) one value of type `kind`; return it when it is a u32."""
    if kind not in _VALUE_TYPES:
        _reject(f"metadata key {key!r} has unknown value type {kind}")
    size = _VALUE_TYPES[kind][1]
    if size is not None:
        if kind == 4:
            return r.u32(f"the value of {key!r}")
        r.skip(size, f"the value of {key!r}")
        return None
    if kind == _STRING:
        n = r.u64(f"the length of the value of {key!r}")
        r.skip(n, f"the value of {key!r}")
        return None
    if depth >= MAX_NESTING:
        _reject(f"metadata key {key!r} nests arrays more than {MAX_NESTING} deep (the limit)")
    inner = r.u32(f"the element type of {key!r}")
    if inner not in _VALUE_TYPES:
        _reject(f"metadata key {key!r} is an array of unknown value type {inner}")
    size = _VALUE_TYPES[inner][1]
    n = r.count(f"the length of the array {key!r}", U64_MAX, size or (8 if inner == _STRING else 12))
    if size is not None:
        r.skip(n * size, f"the array {key!r}")
    elif inner == _STRING:
        _skip_strings(r, n, key)
    else:
        for _ in range(n):
            _value(r, _ARRAY, key, depth + 1)
    return None


def _skip_strings(r: _Reader, n: int, key: str) -> None:
    """Skip n strings: a tokenizer's vocabulary is hundreds of thousands, so the loop is kept tight,
    falling back to the checked reads only where the bytes in hand run out."""
    buf, pos, limit, unpack = r.buf, r.pos, min(r.limit, MAX_HEADER_BYTES), _U64.unpack_from
    for _ in range(n):
        if pos + 8 > limit:
            r.pos = pos
            r.skip(r.u64(f"the length of a string in {key!r}"), f"a string in {key!r}")
            pos = r.pos
            continue
        (length,) = unpack(buf, pos)
        pos += 8 + length
        if pos > limit:
            r.pos = pos - length
            r.skip(length, f"a string in {key!r}")
            pos = r.pos
    r.pos = pos
    r.need(0, f"the array {key!r}")


def _align(n: int, alignment: int) -> int:
    return n + (-n % alignment)


class GgufLayout:
    """A validated GGUF header: tensors sorted by position (absolute byte ranges), the metadata
    leaf's values, where the header ends and the tensor data begins."""

    def __init__(self, version, tensors, metadata_leaf, header_end, data_start, alignment, file_size):
        self.version, self.tensors, self.metadata_leaf = version, tensors, metadata_leaf
        self.header_end, self.data_start, self.alignment, self.file_size = header_end, data_start, alignment, file_size


def parse(buf, file_size: int) -> GgufLayout:
    """Validate the GGUF header at the start of a `file_size`-byte file; `buf` holds its first bytes.

    Raises NeedMore when `buf` ends before the header does but the file is longer, CheckpointInvalid
    for anything else wrong. Shapes are reported outermost first, as numpy and safetensors give them
    (GGUF stores ne[0], the innermost dimension, first).
    """
    r = _Reader(buf, file_size)
    if file_size < 4:
        _reject(f"file is {file_size} bytes, too short to hold the GGUF magic")
    r.need(4, "the magic")
    if bytes(buf[:4]) != MAGIC:
        _reject(f"file does not start with the GGUF magic {MAGIC!r}; it is not GGUF")
    r.pos = 4
    version = r.u32("the version")
    if version not in VERSIONS:
        hint = " (a big-endian file? those are not read)" if version in (2 << 24, 3 << 24) else ""
        _reject(f"GGUF version {version} is not one of {', '.join(map(str, VERSIONS))}{hint}")
    tensor_count = r.count("the tensor count", MAX_TENSORS, 24)
    kv_count = r.count("the metadata key count", MAX_KEYS, 12)
    kv_begin = r.pos
    alignment, keys = DEFAULT_ALIGNMENT, set()
    for i in range(kv_count):
        key = _unique(r.string(f"metadata key {i}"), keys, "metadata key", "keys")
        kind = r.u32(f"the value type of {key!r}")
        value = _value(r, kind, key, 0)
        if key == ALIGNMENT_KEY:
            if kind != 4:
                _reject(f"{ALIGNMENT_KEY} must be a UINT32, not {_VALUE_TYPES[kind][0]}")
            if value == 0 or value & (value - 1):
                _reject(f"{ALIGNMENT_KEY} is {value}; it must be a power of two")
            alignment = value
    kv_end = r.pos
    infos, names = [], set()
    for i in range(tensor_count):
        name = _unique(r.string(f"the name of tensor {i}"), names, "tensor", "tensor names")
        n_dims = r.u32(f"the rank of tensor {name!r}")
        if n_dims > MAX_DIMS:
            _reject(f"tensor {name!r} has {n_dims} dimensions; GGUF allows at most {MAX_DIMS}")
        dims = [r.u64(f"a dimension of tensor {name!r}") for _ in range(n_dims)]
        kind = r.u32(f"the type of tensor {name!r}")
        offset = r.u64(f"the offset of tensor {name!r}")
        infos.append((name, dims, kind, offset))
    header_end = r.pos
    if not infos:
        _reject("header holds no tensors; there is nothing to seal")
    data_start = _align(header_end, alignment)
    tensors = [_tensor(name, dims, kind, offset, data_start, alignment) for name, dims, kind, offset in infos]
    tensors.sort(key=lambda t: (t.begin, t.end))
    position = data_start
    for t in tensors:
        expected = _align(position, alignment)
        if t.begin < position:
            _reject(f"tensor {t.name!r}: offset {t.begin - data_start} overlaps the previous tensor")
        if t.begin != expected:
            _reject(f"tensor {t.name!r}: {t.begin - position} unclaimed bytes before its offset "
                    f"{t.begin - data_start}; each tensor starts at the first aligned offset after the last")
        position = t.end
    if position > file_size:
        last = tensors[-1]
        _reject(f"tensor {last.name!r}: its data ends at {last.end - data_start} but the file holds only "
                f"{max(file_size - data_start, 0)} data bytes (truncated?)")
    if file_size not in (position, _align(position, alignment)):
        _reject(f"{file_size - position} trailing bytes after the last tensor (more than its padding)")
    digest = "0x" + hashlib.sha256(bytes(buf[kv_begin:kv_end])).hexdigest()
    metadata_leaf = (METADATA_LEAF, METADATA_DTYPE, (kv_count,), digest)
    return GgufLayout(version, tuple(tensors), metadata_leaf, header_end, data_start, alignment, file_size)


def _tensor(name: str, dims: list[int], kind: int, offset: int, data_start: int, alignment: int) -> TensorEntry:
    def bad(problem: str):
        _reject(f"tensor {name!r}: {problem}")

    if name == METADATA_LEAF:
        bad(f"the name {METADATA_LEAF!r} is the leaf of the metadata; a tensor cannot have it")
    if kind not in GGML_TYPES:
        bad(f"unknown ggml type {kind}")
    dtype, block, size = GGML_TYPES[kind]
    elements = 1
    for d in dims:
        elements *= d
        if elements > U64_MAX:
            bad(f"shape {dims} overflows a u64 element count")
    if (dims[0] if dims else 1) % block or elements % block:
        bad(f"its rows of {dims[0] if dims else 1} elements are not whole {dtype} blocks of {block}")
    if offset % alignment:
        bad(f"offset {offset} is not a multiple of the alignment {alignment}")
    nbytes = elements // block * size
    begin = data_start + offset
    return TensorEntry(name, dtype, tuple(reversed(dims)), begin, begin + nbytes)
