"""Deterministic test content, cheap at any size: the xorshift32 pattern tests/js/unixfs_importer.mjs also makes."""

import io

PERIOD = 65521  # prime, so consecutive chunks never repeat


def _base(seed: int) -> bytes:
    x = (seed | 1) & 0xFFFFFFFF
    out = bytearray(PERIOD)
    for i in range(PERIOD):
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        out[i] = x & 0xFF
    return bytes(out)


class PatternFile(io.RawIOBase):
    """A read-only stream of `size` pattern bytes, generated on the fly."""

    def __init__(self, size: int, seed: int):
        self._left = size
        self._offset = 0
        self._piece = _base(seed) * 32

    def readable(self):
        return True

    def read(self, n: int = -1) -> bytes:
        n = self._left if n < 0 else min(n, self._left)
        out = bytearray()
        while len(out) < n:
            take = min(n - len(out), len(self._piece) - PERIOD)
            out += self._piece[self._offset : self._offset + take]
            self._offset = (self._offset + take) % PERIOD
        self._left -= n
        return bytes(out)


def pattern_bytes(size: int, seed: int) -> bytes:
    return PatternFile(size, seed).read()
