"""The one hex conversion: bytes to and from 0x-prefixed, lower-case hex."""


def to_hex(value: bytes | bytearray | memoryview) -> str:
    """`b"\\x01\\xab"` -> `"0x01ab"`."""
    return "0x" + bytes(value).hex()


def from_hex(text: str) -> bytes:
    """`"0x01ab"` or `"01ab"` -> `b"\\x01\\xab"`; raises ValueError on anything else."""
    return bytes.fromhex(text.removeprefix("0x"))
