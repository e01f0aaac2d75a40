"""The one JSON parser for outside data: sizes and nesting are checked before the parse.

Why a pre-scan: the C decoder recurses once per level of nesting, and py_ecc and py-evm raise
Python's recursion limit (to 100,000 and 12,288) when imported, so 80,000 `[` overflowed the
C stack and killed the process instead of raising. Counting the brackets first (outside
strings) bounds the depth the decoder can ever reach, whatever the recursion limit is.

    doc = loads_outside(body, what="the JSON-RPC answer of http://...")   # JsonInvalid if bad
"""

import json
import re
import sys
from itertools import accumulate

from modelreg.errors import JsonInvalid, JsonTooDeep, JsonTooLarge

MAX_DEPTH = 256  # a manifest nests ~6 levels, an RPC answer ~5; far below any stack's limit
MAX_BYTES = 256 * 1024 * 1024  # callers that read less (an RPC answer, a manifest) pass their own
DEFAULT_RECURSION_LIMIT = 1000  # CPython's own; py_ecc and eth raise it on import

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}
_NOT_BRACKETS = bytes(b for b in range(256) if b not in _STEP)


def nesting_depth(raw: bytes) -> int:
    """The deepest nesting of arrays and objects in JSON text (brackets inside strings not counted).

    An unterminated string counts the brackets after its quote: a slight overcount, only for text
    the parser would refuse anyway.
    """
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def check_nesting(raw: bytes | str, *, what: str, max_depth: int = MAX_DEPTH) -> None:
    """JsonTooDeep when `raw` nests arrays or objects deeper than `max_depth`."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else bytes(raw)
    if data.count(b"[") + data.count(b"{") <= max_depth:  # cannot be deeper: no scan needed
        return
    depth = nesting_depth(data)
    if depth > max_depth:
        raise JsonTooDeep(f"{what} nests {depth} levels deep; the limit is {max_depth}", what=what)


def loads_outside(raw: bytes | str, *, what: str, max_depth: int = MAX_DEPTH,
                  max_bytes: int = MAX_BYTES, **options):
    """`json.loads(raw, **options)` for data from outside this process, bounded first.

    Raises JsonTooLarge, JsonTooDeep, or JsonInvalid (not JSON, not UTF-8), each naming `what`;
    all are ValueErrors too, so a caller that caught the parser's ValueError still does.
    """
    if len(raw) > max_bytes:
        raise JsonTooLarge(f"{what} is {len(raw)} bytes; the limit is {max_bytes}", what=what)
    check_nesting(raw, what=what, max_depth=max_depth)
    try:
        return json.loads(raw, **options)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise JsonInvalid(f"{what} is not valid JSON ({e})", what=what) from None
    except RecursionError:  # only reachable with a recursion limit below max_depth
        raise JsonTooDeep(f"{what} nests too deeply to parse", what=what) from None


def restore_recursion_limit(limit: int = DEFAULT_RECURSION_LIMIT) -> None:
    """Put Python's recursion limit back to `limit` after importing a library that raised it."""
    if sys.getrecursionlimit() > limit:
        sys.setrecursionlimit(limit)
