"""A safetensors checkpoint read without torch: the header parsed strictly, the data memory-mapped.

The file is `u64 little-endian N ‖ N bytes of JSON header ‖ data`. The header
maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end)}, the
offsets relative to the start of the data. Beyond what the format allows, this
reader demands what a sealed checkpoint needs to be unambiguous: the tensors
tile the data exactly (no gaps, no overlaps, no trailing bytes), names are
unique UTF-8, and every byte length equals what dtype and shape require.
"""

import json
import mmap
import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from modelreg.errors import CheckpointInvalid

# The limit the safetensors library itself enforces; a larger header is a corrupt or hostile file.
MAX_HEADER_BYTES = 100_000_000

# Bits per element of every dtype safetensors 0.8 knows. F4 and F6 pack several elements
# per byte: a tensor of them is valid only when its bits fill whole bytes.
DTYPE_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8,
    "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
    "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "F8_E4M3FNUZ": 8, "F8_E5M2FNUZ": 8,
    "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
    "I32": 32, "U32": 32, "F32": 32,
    "I64": 64, "U64": 64, "F64": 64, "C64": 64,
}

METADATA_KEY = "__metadata__"


@dataclass(frozen=True)
class TensorEntry:
    """One header entry; `begin` and `end` are absolute byte positions in the file."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.begin


@dataclass(frozen=True)
class SafetensorsHeader:
    """A validated header: the tensors in file order, the free-form metadata, the total size."""

    tensors: tuple[TensorEntry, ...]
    metadata: dict
    data_start: int
    file_size: int


def _reject(problem: str):
    raise CheckpointInvalid(problem)


def _no_duplicate_keys(pairs):
    keys = [k for k, _ in pairs]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        _reject(f"safetensors header names {duplicates[0]!r} twice; each tensor name must be unique")
    return dict(pairs)


def _reject_constant(name):
    _reject(f"safetensors header holds the non-JSON number {name}")


def _is_count(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def _entry(name: str, spec, data_start: int) -> TensorEntry:
    where = f"tensor {name!r}"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        _reject(f"{where}: name holds an escaped lone surrogate and is not valid UTF-8")
    if not isinstance(spec, dict) or set(spec) != {"dtype", "shape", "data_offsets"}:
        keys = sorted(spec) if isinstance(spec, dict) else type(spec).__name__
        _reject(f"{where}: header entry must have exactly dtype, shape and data_offsets, got {keys}")
    dtype, shape, offsets = spec["dtype"], spec["shape"], spec["data_offsets"]
    if dtype not in DTYPE_BITS:
        _reject(f"{where}: unknown dtype {dtype!r}; safetensors dtypes are {', '.join(DTYPE_BITS)}")
    if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
        _reject(f"{where}: shape {shape!r} must be a list of non-negative integers")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_count(o) for o in offsets)):
        _reject(f"{where}: data_offsets {offsets!r} must be two non-negative integers [begin, end)")
    begin, end = offsets
    if end < begin:
        _reject(f"{where}: data_offsets [{begin}, {end}) end before they begin")
    elements = 1
    for d in shape:
        elements *= d
    bits = elements * DTYPE_BITS[dtype]
    if bits % 8:
        _reject(f"{where}: {elements} elements of {dtype} are {bits} bits, not a whole number of bytes")
    if end - begin != bits // 8:
        _reject(f"{where}: data_offsets [{begin}, {end}) is {end - begin} bytes "
                f"but {dtype} shape {shape} needs {bits // 8}")
    return TensorEntry(name, dtype, tuple(shape), data_start + begin, data_start + end)


def parse_header(prefix: bytes, file_size: int) -> SafetensorsHeader:
    """Validate the header at the start of a file of `file_size` bytes; `prefix` holds at least the header."""
    if file_size < 8 or len(prefix) < 8:
        _reject(f"file is {file_size} bytes, too short to hold the 8-byte safetensors header length")
    (n,) = struct.unpack("<Q", prefix[:8])
    if n > MAX_HEADER_BYTES:
        _reject(f"header length {n} exceeds the {MAX_HEADER_BYTES}-byte limit; "
                "the file is corrupt or not safetensors")
    if 8 + n > file_size:
        _reject(f"header length {n} runs past the end of the {file_size}-byte file (truncated?)")
    raw = prefix[8:8 + n]
    if not raw.startswith(b"{"):
        _reject("header does not start with '{'; the file is not safetensors")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        _reject(f"header is not valid UTF-8 at byte {8 + e.start}")
    try:
        header = json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        _reject(f"header is not valid JSON: {e}")
    metadata = header.pop(METADATA_KEY, {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        _reject(f"{METADATA_KEY} must map strings to strings")
    data_start = 8 + n
    tensors = sorted((_entry(k, v, data_start) for k, v in header.items()), key=lambda t: (t.begin, t.end))
    position, last = data_start, None
    for t in tensors:
        if t.begin > position:
            _reject(f"tensor {t.name!r}: {t.begin - position} unclaimed bytes before its data_offsets "
                    f"[{t.begin - data_start}, {t.end - data_start})")
        if t.begin < position:
            _reject(f"tensor {t.name!r}: data_offsets [{t.begin - data_start}, {t.end - data_start}) "
                    "overlap the previous tensor")
        position, last = t.end, t
    if position != file_size:
        if position > file_size:
            _reject(f"tensor {last.name!r}: data_offsets end at {last.end - data_start} but the file holds "
                    f"only {file_size - data_start} data bytes (truncated?)")
        _reject(f"{file_size - position} trailing bytes after the last tensor")
    return SafetensorsHeader(tuple(tensors), metadata, data_start, file_size)


def read_header(path: str | os.PathLike) -> SafetensorsHeader:
    """The validated header of the safetensors file at `path`, reading only the header bytes."""
    path = Path(path)
    with _open(path) as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(8)
        n = struct.unpack("<Q", head)[0] if len(head) == 8 else 0
        rest = f.read(min(n, MAX_HEADER_BYTES)) if n <= MAX_HEADER_BYTES else b""
    return _named(path, lambda: parse_header(head + rest, size))


@contextmanager
def open_checkpoint(path: str | os.PathLike) -> Iterator[tuple[SafetensorsHeader, mmap.mmap]]:
    """The validated header and a read-only memory map of the whole file."""
    path = Path(path)
    with _open(path) as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            _named(path, lambda: parse_header(b"", 0))
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            yield _named(path, lambda: parse_header(mapped[:8 + _header_len(mapped)], size)), mapped


def _header_len(mapped: mmap.mmap) -> int:
    if len(mapped) < 8:
        return 0
    return min(struct.unpack("<Q", mapped[:8])[0], MAX_HEADER_BYTES)


def _open(path: Path):
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise CheckpointInvalid(f"checkpoint {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise CheckpointInvalid(f"checkpoint {str(path)!r} is a directory, not a safetensors file") from None
    except PermissionError:
        raise CheckpointInvalid(f"checkpoint {str(path)!r} is not readable (permission denied)") from None


def _named(path: Path, parse):
    try:
        return parse()
    except CheckpointInvalid as e:
        raise CheckpointInvalid(f"{path}: {e}") from None
