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
import re
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from modelreg._files import open_regular
from modelreg.errors import CheckpointInvalid

# The limit the safetensors library itself enforces; a larger header is a corrupt or hostile file.
MAX_HEADER_BYTES = 100_000_000

# Limits that keep a hostile header linear in time and bounded in memory. A valid header nests
# 3 deep (header, entry, shape); the slack lets a slightly wrong one get a message naming its field.
MAX_NESTING = 8
# safetensors stores shapes and offsets as u64: 20 digits at most, and no number above 2^64 - 1.
MAX_NUMBER_DIGITS = 20
U64_MAX = 2**64 - 1
# numpy's limit on dimensions; no framework in use goes beyond it.
MAX_RANK = 64
# Per file. The largest published checkpoints hold some tens of thousands of tensors across all
# their shards (DeepSeek-V3: about 91,000 in 163 files).
MAX_TENSORS = 100_000
# Keys in the whole header: four per tensor (its name and three fields) leaves room for metadata.
MAX_KEYS = 5 * MAX_TENSORS

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


# The pre-scan works on bytes, where translate and replace run at memory speed. Dropping escaped
# backslashes, then escaped quotes, leaves every remaining quote a string delimiter; replacing each
# string by "" (an unterminated one runs to the end, so the pattern never backtracks) leaves the
# header's skeleton: brackets, numbers, punctuation, all ASCII.
_STRING = re.compile(rb'"[^"]*"?')
_BRACKETS = bytes(range(256)).translate(None, b"[]{}")  # every byte but a bracket, to delete
_DIGITS_AS_ZERO = bytes(48 if 48 <= b <= 57 else 32 for b in range(256))  # every digit becomes "0"
_NEGATIVE_ZERO = re.compile(rb"-0(?![.eE0-9])(?<![eE]-0)")  # -0 parses as 0, hiding its sign
_LONG_LIST = re.compile(rb"\[(?:[^\[\]{},]*,){%d}" % MAX_RANK)
_TO_PARENS = bytes.maketrans(b"[{]}", b"(())")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _check_shape_of_json(raw: bytes) -> None:
    """Refuse, before `json` sees it, anything that would make the parser recurse deep, convert a
    huge integer (quadratic in its digits), or build millions of objects. Every step is a regex or
    a bytes method over the header: linear, and at C speed."""
    skeleton = _STRING.sub(b'""', raw.replace(b"\\\\", b"").replace(b'\\"', b""))
    brackets = skeleton.translate(None, _BRACKETS)
    parens = brackets.translate(_TO_PARENS)
    # Each pass removes the innermost pairs: what survives MAX_NESTING passes nests deeper. Mismatched
    # or unbalanced brackets are left to the JSON parser, which then recurses at most 2 * MAX_NESTING.
    for _ in range(MAX_NESTING):
        reduced = parens.replace(b"()", b"")
        if reduced == parens:
            break
        parens = reduced
    if b"()" in parens or parens.count(b"(") - parens.count(b")") > MAX_NESTING:
        _reject(f"header nests brackets more than {MAX_NESTING} deep (the limit); a valid header nests 3")
    if b"0" * (MAX_NUMBER_DIGITS + 1) in skeleton.translate(_DIGITS_AS_ZERO):
        _reject(f"header holds a number of more than {MAX_NUMBER_DIGITS} digits; "
                f"shapes and offsets are u64, at most {U64_MAX}")
    if _NEGATIVE_ZERO.search(skeleton):
        _reject("header holds the number -0; shapes and offsets are non-negative integers")
    if _LONG_LIST.search(skeleton):
        _reject(f"header holds a list of more than {MAX_RANK} items; a tensor has at most {MAX_RANK} dimensions")
    if b"[[" in brackets or b"[{" in brackets:
        _reject("header holds a list inside a list; shapes and offsets are flat lists of integers")
    if brackets.count(b"{") > MAX_TENSORS + 2 or brackets.count(b"[") > 2 * MAX_TENSORS:
        _reject(f"header holds more than {MAX_TENSORS} entries; the limit is {MAX_TENSORS} tensors per file")
    if skeleton.count(b":") > MAX_KEYS:
        _reject(f"header holds more than {MAX_KEYS} keys (four per tensor, and metadata); that is the limit")


class _Object(dict):
    """A JSON object that remembers the first key it was given twice, so the caller can name where."""

    duplicate: str | None = None


def _object(pairs) -> _Object:
    obj = _Object(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        obj.duplicate = next(k for k, _ in pairs if k in seen or seen.add(k))
    return obj


def _reject_constant(name):
    _reject(f"header holds the non-JSON number {name}")


def _counts(xs) -> bool:
    """xs is a list of integers in u64 range (bools excluded), checked by C-level builtins."""
    return type(xs) is list and (not xs or (set(map(type, xs)) == {int} and min(xs) >= 0 and max(xs) <= U64_MAX))


def _is_utf8(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_FIELDS = {"dtype", "shape", "data_offsets"}


def _entry(name: str, spec, data_start: int, surrogates: bool) -> TensorEntry:
    def bad(problem: str):
        _reject(f"tensor {name!r}: {problem}")

    if surrogates and not _is_utf8(name):
        bad("name holds an escaped lone surrogate and is not valid UTF-8")
    if not isinstance(spec, dict) or spec.keys() != _FIELDS:
        keys = sorted(spec) if isinstance(spec, dict) else type(spec).__name__
        bad(f"header entry must have exactly dtype, shape and data_offsets, got {keys}")
    if spec.duplicate is not None:
        bad(f"header entry gives {spec.duplicate!r} twice")
    dtype, shape, offsets = spec["dtype"], spec["shape"], spec["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPE_BITS:
        bad(f"unknown dtype {dtype!r}; safetensors dtypes are {', '.join(DTYPE_BITS)}")
    if not _counts(shape):
        bad(f"shape {shape!r} must be a list of integers from 0 to 2^64 - 1")
    if not (_counts(offsets) and len(offsets) == 2):
        bad(f"data_offsets {offsets!r} must be two integers [begin, end) from 0 to 2^64 - 1")
    begin, end = offsets
    if end < begin:
        bad(f"data_offsets [{begin}, {end}) end before they begin")
    elements = 1
    for d in shape:
        elements *= d
        # The element count as safetensors computes it, left to right in u64: a file it cannot
        # load is not one we seal, even when a later zero dimension would bring the count back.
        if elements > U64_MAX:
            bad(f"shape {shape} overflows a u64 element count before its last dimension")
    bits = elements * DTYPE_BITS[dtype]
    if bits % 8:
        bad(f"{elements} elements of {dtype} are {bits} bits, not a whole number of bytes")
    if end - begin != bits // 8:
        bad(f"data_offsets [{begin}, {end}) is {end - begin} bytes but {dtype} shape {shape} needs {bits // 8}")
    return TensorEntry(name, dtype, tuple(shape), data_start + begin, data_start + end)


def _metadata(header: _Object, surrogates: bool) -> dict:
    metadata = header.pop(METADATA_KEY, None)
    if metadata is None:  # absent, or null as the safetensors library also allows
        return {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        _reject(f"{METADATA_KEY} must map strings to strings")
    if metadata.duplicate is not None:
        _reject(f"{METADATA_KEY} gives the key {metadata.duplicate!r} twice; metadata keys must be unique")
    if surrogates and not all(_is_utf8(k) and _is_utf8(v) for k, v in metadata.items()):
        _reject(f"{METADATA_KEY} holds an escaped lone surrogate and is not valid UTF-8")
    return dict(metadata)


def parse_header(prefix: bytes, file_size: int) -> SafetensorsHeader:
    """Validate the header at the start of a file of `file_size` bytes; `prefix` holds at least the header.

    Time is linear in the header's size whatever its content; every refusal is `CheckpointInvalid`.
    """
    if file_size < 8 or len(prefix) < 8:
        _reject(f"file is {file_size} bytes, too short to hold the 8-byte safetensors header length")
    (n,) = struct.unpack("<Q", prefix[:8])
    if n > MAX_HEADER_BYTES:
        _reject(f"header length {n} exceeds the {MAX_HEADER_BYTES}-byte limit; "
                "the file is corrupt or not safetensors")
    if 8 + n > file_size:
        _reject(f"header length {n} runs past the end of the {file_size}-byte file (truncated?)")
    raw = prefix[8:8 + n]
    # The format says the header MUST begin with '{' (the library also skips leading whitespace).
    if not raw.startswith(b"{"):
        _reject("header does not start with '{'; the file is not safetensors")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        _reject(f"header is not valid UTF-8 at byte {8 + e.start}")
    _check_shape_of_json(raw)
    try:
        header = json.loads(text, object_pairs_hook=_object, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        _reject(f"header is not valid JSON: {e}")
    if header.duplicate == METADATA_KEY:
        _reject(f"header gives {METADATA_KEY} twice")
    if header.duplicate is not None:
        _reject(f"header names {header.duplicate!r} twice; each tensor name must be unique")
    # Only a \\uD800-\\uDFFF escape can put a lone surrogate in a decoded string: skip the checks without one.
    surrogates = bool(_SURROGATE_ESCAPE.search(raw))
    metadata = _metadata(header, surrogates)
    if not header:
        _reject("header holds no tensors; there is nothing to seal")
    data_start = 8 + n
    tensors = sorted((_entry(k, v, data_start, surrogates) for k, v in header.items()), key=lambda t: (t.begin, t.end))
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
    return open_regular(path, "checkpoint", CheckpointInvalid)


def _named(path: Path, parse):
    try:
        return parse()
    except CheckpointInvalid as e:
        raise CheckpointInvalid(f"{path}: {e}") from None
