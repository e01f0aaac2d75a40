"""Test helpers for sealing: a raw safetensors writer (so headers can be broken on purpose) and random leaves."""

import json
import random
import struct

from modelreg.formats.safetensors import DTYPE_BITS


def safetensors_bytes(tensors: dict, metadata: dict | None = None, header: dict | None = None) -> bytes:
    """name -> (dtype, shape, data) laid out in order, as safetensors writes them; `header` overrides entries."""
    entries, blobs, offset = {}, [], 0
    for name, (dtype, shape, data) in tensors.items():
        entries[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    if metadata is not None:
        entries["__metadata__"] = metadata
    entries.update(header or {})
    raw = json.dumps(entries, ensure_ascii=False).encode()
    raw += b" " * (-len(raw) % 8)  # safetensors pads the header with spaces to an 8-byte boundary
    return struct.pack("<Q", len(raw)) + raw + b"".join(blobs)


def nbytes(dtype: str, shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n * DTYPE_BITS[dtype] // 8


def random_tensors(rng: random.Random, count: int, dtypes=("F32", "BF16", "I64", "U8")) -> dict:
    """`count` tensors of random whole-byte dtype and small shape, with random bytes."""
    tensors = {}
    for i in range(count):
        dtype = rng.choice(dtypes)
        shape = [rng.randint(0, 4) for _ in range(rng.randint(0, 3))]
        tensors[f"layer.{i}.{rng.choice(['w', 'b', 'ln'])}"] = (dtype, shape, rng.randbytes(nbytes(dtype, shape)))
    return tensors


def random_leaf_values(rng: random.Random, count: int) -> list:
    """`count` tensor leaf values (name, dtype, shape, sha256), names unique and some of them unicode."""
    names = ["h.0.attn.weight", "wte", "ln_f.bias", "Ω.λ", "层.0", "emoji.🙂", "", "a b", "x" * 80]
    values = []
    for i in range(count):
        name = f"{rng.choice(names)}.{i}"
        dtype = rng.choice(list(DTYPE_BITS))
        shape = [rng.randint(0, 9) for _ in range(rng.randint(0, 4))]
        values.append([name, dtype, shape, "0x" + rng.randbytes(32).hex()])
    return values
