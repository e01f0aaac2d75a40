"""Fuzzing the safetensors reader with hypothesis, against the official safetensors library.

Every generated file must end in one of two ways: parsed, or refused with CheckpointInvalid. A file
this reader parses must parse in the library to the same tensors; a file only the library accepts
must be refused for one of the deliberate reasons in test_safetensors_hostile.DISAGREEMENTS.

The suite runs a few thousand cases; a campaign sets MODELREG_FUZZ_EXAMPLES (e.g. 100000) and runs
this file with -s to print the tally.
"""

import json
import os
import re
import struct
from collections import Counter

import pytest
import safetensors

pytest.importorskip("hypothesis", reason="pip install -e '.[test]' brings hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from modelreg.errors import CheckpointInvalid
from modelreg.formats.safetensors import DTYPE_BITS, parse_header

EXAMPLES = int(os.environ.get("MODELREG_FUZZ_EXAMPLES", "3000"))

# Our message for each refusal the library does not share; see DISAGREEMENTS beside the examples.
DELIBERATE = re.compile("|".join([
    r"does not start with '\{'", "holds no tensors", "twice", "must have exactly dtype, shape and data_offsets",
    "more than 20 digits", "items; a tensor has at most", "nests brackets more than", "a list inside a list",
]))

TALLY: Counter = Counter()

BIG = [0, 1, 2, 3, 255, 2**32, 2**63, 2**64 - 1, 2**64, 2**256]
dims = st.one_of(st.integers(0, 4), st.integers(0, 4), st.sampled_from(BIG))
dtypes = st.sampled_from(sorted(DTYPE_BITS) * 4 + ["F31", "f32", "", "C128", "F8_E4M3FN"])
# Mostly distinct names; sometimes a clash, __metadata__ itself, or a lone surrogate.
names = st.lists(st.text(max_size=12), max_size=5, unique=True).flatmap(
    lambda ns: st.sampled_from([ns] * 12 + [ns + ns[:1], ns[:-1] + ["__metadata__"], ns[:-1] + ["\ud800x"]]))


def _nbytes(dtype, shape):
    n = 1
    for d in shape:
        n *= d
    return n * DTYPE_BITS.get(dtype, 8) // 8


@st.composite
def headers(draw):
    """A header as text and its data: built consistent, then possibly broken at the value level."""
    entries, offset = [], 0
    for name in draw(names):
        dtype = draw(dtypes)
        shape = draw(st.lists(dims, max_size=4))
        size = _nbytes(dtype, shape)
        if size > 64:
            shape, size = [2, 2], _nbytes(dtype, [2, 2])
        begin, end = offset, offset + size
        if draw(st.integers(0, 29)) == 0:
            begin, end = draw(st.sampled_from([(end, begin), (begin, end + 1), (begin + 1, end), (begin, -end)]))
        offset += size
        spec = {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}
        if draw(st.integers(0, 39)) == 0:
            spec[draw(st.sampled_from(["x", "dtype", "offsets"]))] = draw(st.sampled_from([1, None, "F32", [0]]))
        if draw(st.integers(0, 39)) == 0:
            del spec[draw(st.sampled_from(sorted(spec)))]
        entries.append((name, spec))
    choice = draw(st.integers(0, 11))
    if choice < 3:
        entries.insert(draw(st.integers(0, len(entries))),
                       ("__metadata__", draw(st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3))))
    elif choice == 3:
        entries.append(("__metadata__", draw(st.sampled_from([None, 1, "x", {"k": 1}, {"k": None}, []]))))
    body = ",".join(json.dumps(k, ensure_ascii=draw(st.booleans())) + ":" + json.dumps(v) for k, v in entries)
    return "{" + body + "}", offset + draw(st.sampled_from([0] * 10 + [1, -1]))


MUTATIONS = [
    lambda t, d: t,
    lambda t, d: " " + t,
    lambda t, d: t + "   ",
    lambda t, d: t + "\n",
    lambda t, d: t[:-1],
    lambda t, d: t.replace("[", "[" * d, 1).replace("]", "]" * d, 1),
    lambda t, d: t.replace('"shape":[', '"shape":[' + "9" * (d * 300) + ",", 1),
    lambda t, d: t.replace('"data_offsets":[0', '"data_offsets":[-0', 1),
    lambda t, d: t.replace('"data_offsets":[0', '"data_offsets":[0.0', 1),
    lambda t, d: t.replace('":', '":' * 2, 1),
    lambda t, d: t.replace('"', '"\\ud800', 1),
    lambda t, d: t.replace(",", ",NaN,", 1),
    lambda t, d: t.replace("{", "{" * d, 1),
    lambda t, d: t[: d % (len(t) + 1)] + "\\" + t[d % (len(t) + 1):],
]


def _file(text: str, data_size: int) -> bytes:
    raw = text.encode("utf-8", "surrogatepass")
    return struct.pack("<Q", len(raw)) + raw + bytes(range(256)) * (max(data_size, 0) // 256) + bytes(max(data_size, 0) % 256)


def _theirs(raw: bytes):
    try:
        return {name: (t["dtype"], tuple(t["shape"]), bytes(t["data"])) for name, t in safetensors.deserialize(raw)}
    except Exception:
        return None


@pytest.fixture(scope="module", autouse=True)
def tally():
    yield
    if TALLY:
        print(f"\nfuzz campaign: {sum(TALLY.values())} cases; " + ", ".join(f"{k} {v}" for k, v in sorted(TALLY.items())))


@pytest.mark.slow
@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
# Half the cases keep the header as built, so both endings are well represented.
@given(headers(), st.sampled_from([0] * len(MUTATIONS) + list(range(len(MUTATIONS)))), st.integers(1, 40))
def test_every_header_is_parsed_or_refused_and_agrees_with_the_library(header, mutation, depth):
    text, data_size = header
    raw = _file(MUTATIONS[mutation](text, depth), data_size)
    theirs = _theirs(raw)
    try:
        ours = parse_header(raw, len(raw))
    except CheckpointInvalid as e:
        TALLY["rejected"] += 1
        if theirs is not None:
            assert DELIBERATE.search(str(e)), f"only the library accepts this file, and we say: {e}"
        return
    except BaseException as e:  # any other ending is a bug; count it before failing
        TALLY[f"other ({type(e).__name__})"] += 1
        raise
    TALLY["accepted"] += 1
    assert theirs is not None, "we accept a file the safetensors library refuses"
    assert {t.name: (t.dtype, t.shape, raw[t.begin:t.end]) for t in ours.tensors} == theirs
