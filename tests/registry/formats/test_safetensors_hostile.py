"""Hostile safetensors headers: each refused with CheckpointInvalid naming the limit, in linear time;
and every place this reader and the official safetensors library disagree, each one on purpose."""

import json
import os
import socket
import struct
import threading
import time

import pytest
import safetensors

from modelreg.errors import CheckpointInvalid
from modelreg.formats.safetensors import (
    MAX_KEYS,
    MAX_NESTING,
    MAX_RANK,
    MAX_TENSORS,
    parse_header,
    read_header,
)
from modelreg.formats.seal import seal_checkpoint


def _file(header: str | bytes, data: bytes = b"") -> bytes:
    raw = header.encode("utf-8", "surrogatepass") if isinstance(header, str) else header
    return struct.pack("<Q", len(raw)) + raw + data


def _parse(raw: bytes):
    return parse_header(raw, len(raw))


def _theirs_accept(raw: bytes) -> bool:
    try:
        safetensors.deserialize(raw)
    except Exception:
        return False
    return True


ZERO = '{"dtype":"F32","shape":[0],"data_offsets":[0,0]}'


@pytest.mark.parametrize("header, problem", [
    ("{}", "holds no tensors"),
    ('{"__metadata__":{"k":"v"}}', "holds no tensors"),
    ('{"a":{"dtype":"F32","shape":[0,' + "9" * 5000 + '],"data_offsets":[0,0]}}', "more than 20 digits"),
    ('{"a":{"dtype":"F32","shape":[0,' + str(2**256) + '],"data_offsets":[0,0]}}', "more than 20 digits"),
    ('{"a":{"dtype":"F32","shape":[0,' + str(2**64) + '],"data_offsets":[0,0]}}', r"from 0 to 2\^64 - 1"),
    ('{"a":{"dtype":"F32","shape":[0],"data_offsets":[-0,0]}}', "the number -0"),
    ('{"a":' + "[" * 5000 + "]" * 5000 + "}", f"more than {MAX_NESTING} deep"),
    ('{"a":' + "[" * 100_000, f"more than {MAX_NESTING} deep"),
    ('{"a":{"dtype":"F32","shape":[' + "[]," * 100_000 + '0],"data_offsets":[0,0]}}', "a list inside a list"),
    ('{"a":' + '{"b":' * 3000 + "1" + "}" * 3000 + "}", f"more than {MAX_NESTING} deep"),
    ('{"a":{"dtype":"F32","shape":[' + ",".join(["1"] * 65) + '],"data_offsets":[0,260]}}',
     f"more than {MAX_RANK} items"),
    ('{"__metadata__":{"k":"a","k":"b"},"a":' + ZERO + "}", "__metadata__ gives the key 'k' twice"),
    ('{"__metadata__":{},"__metadata__":{},"a":' + ZERO + "}", "gives __metadata__ twice"),
    ('{"a":' + ZERO + ',"a":' + ZERO + "}", "names 'a' twice; each tensor name must be unique"),
    ('{"a":{"dtype":"F32","dtype":"F32","shape":[0],"data_offsets":[0,0]}}', "gives 'dtype' twice"),
    ('{"__metadata__":{"k":"\\ud800"},"a":' + ZERO + "}", "lone surrogate"),
    ('{"a":{"dtype":"F32","shape":[4294967296,4294967296,0],"data_offsets":[0,0]}}', "overflows a u64"),
    ('{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,6]}}', "shape"),
    ('{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,NaN]}}', "non-JSON number NaN"),
    ('{"a":"' + "\\" * 10_001, "not valid JSON"),
    ('{"a":"' + '\\"' * 10_000, "not valid JSON"),
])
def test_hostile_headers_are_refused_with_the_projects_error(header, problem):
    with pytest.raises(CheckpointInvalid, match=problem):
        _parse(_file(header))


def test_a_header_with_more_tensors_than_the_limit_is_refused_naming_it():
    entries = ",".join(f'"t{i}":{ZERO}' for i in range(MAX_TENSORS + 3))
    with pytest.raises(CheckpointInvalid, match=f"the limit is {MAX_TENSORS} tensors per file"):
        _parse(_file("{" + entries + "}"))


def test_a_header_of_millions_of_keys_is_refused_before_they_are_built():
    with pytest.raises(CheckpointInvalid, match=f"more than {MAX_KEYS} keys"):
        _parse(_file('{"__metadata__":{' + ",".join(f'"{i}":""' for i in range(MAX_KEYS + 1)) + "}}"))


def test_metadata_null_is_no_metadata_as_the_library_reads_it():
    raw = _file('{"__metadata__":null,"a":' + ZERO + "}")
    assert _parse(raw).metadata == {} and _theirs_accept(raw)


def _zero_size_tensors(count: int) -> bytes:
    return _file("{" + ",".join(f'"layer.{i}.weight":{ZERO}' for i in range(count)) + "}")


def _seconds(raw) -> float:
    start = time.perf_counter()
    _parse(raw)
    return time.perf_counter() - start


@pytest.mark.slow
def test_many_zero_size_tensors_parse_in_time_linear_in_the_header():
    # 40k zero-size tensors took 57.7 s when duplicate keys were found with list.count.
    # 8x the header: linear work takes about 8-10x as long (dicts and caches grow a little worse than
    # linearly), quadratic 64x; the bound sits between, far enough from both for a noisy machine.
    small, large = _zero_size_tensors(10_000), _zero_size_tensors(80_000)
    t_small = min(_seconds(small) for _ in range(3))
    t_large = min(_seconds(large) for _ in range(3))
    assert len(_parse(large).tensors) == 80_000
    assert t_large < 15 and t_large < 30 * t_small, (t_small, t_large)


def test_a_million_dimension_shape_is_refused_at_once():
    raw = _file('{"a":{"dtype":"F32","shape":[' + ",".join(["1"] * 1_000_000) + '],"data_offsets":[0,4]}}')
    start = time.perf_counter()
    with pytest.raises(CheckpointInvalid, match=f"at most {MAX_RANK} dimensions"):
        _parse(raw)
    assert time.perf_counter() - start < 1.0


# --- disagreements with the safetensors library, each one deliberate -----------------------------
# Policy: this reader never accepts a file the library refuses (a checkpoint it cannot load is no
# use to anyone), and refuses some files the library accepts, each for the reason given here.

DISAGREEMENTS = [
    pytest.param(" {" + '"a":' + ZERO + "}", "does not start with '{'",
                 id="whitespace before the opening brace: the format says the header MUST begin with '{'"),
    pytest.param("{}", "holds no tensors",
                 id="no tensors: there is nothing to seal, and a Merkle tree needs a leaf"),
    pytest.param('{"a":' + ZERO + ',"a":' + ZERO + "}", "names 'a' twice",
                 id="a tensor name twice: the library keeps the last, another reader may keep the first"),
    pytest.param('{"__metadata__":{"k":"a","k":"b"},"a":' + ZERO + "}", "gives the key 'k' twice",
                 id="a metadata key twice: readers disagree on which value holds"),
    pytest.param('{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0],"x":1}}', "exactly dtype, shape",
                 id="an unknown field in an entry: it would ride along unsealed"),
    pytest.param('{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0],"x":' + "1" * 30 + "}}",
                 "more than 20 digits", id="a long number in an ignored field: refused before parsing"),
    pytest.param('{"a":{"dtype":"F32","shape":[' + ",".join(["1"] * 64) + ',0],"data_offsets":[0,0]}}',
                 f"more than {MAX_RANK} items", id="rank above 64: no framework in use holds such a tensor"),
]


@pytest.mark.parametrize("header, our_problem", DISAGREEMENTS)
def test_every_disagreement_with_the_safetensors_library_is_deliberate(header, our_problem):
    raw = _file(header)
    assert _theirs_accept(raw)
    with pytest.raises(CheckpointInvalid, match=our_problem):
        _parse(raw)


@pytest.mark.parametrize("header", [
    '{"__metadata__":{"k":"\\udc00"},"a":' + ZERO + "}",  # a lone surrogate in metadata
    '{"a":{"dtype":"F32","shape":[0],"data_offsets":[-0,0]}}',
    '{"a":{"dtype":"F32","shape":[0,' + str(2**64) + '],"data_offsets":[0,0]}}',
    '{"a":{"dtype":"F32","shape":[4294967296,4294967296,0],"data_offsets":[0,0]}}',
])
def test_what_the_library_refuses_this_reader_refuses_too(header):
    raw = _file(header)
    assert not _theirs_accept(raw)
    with pytest.raises(CheckpointInvalid):
        _parse(raw)


# --- special files ------------------------------------------------------------------------------


def _refused_quickly(path, match):
    result = {}

    def run():
        try:
            read_header(path)
        except CheckpointInvalid as e:
            result["error"] = str(e)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(5)
    assert not worker.is_alive(), "reading blocked"
    assert match in result.get("error", "")


def test_a_fifo_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "pipe.safetensors")
    _refused_quickly(tmp_path / "pipe.safetensors", "is a FIFO, not a regular file")
    with pytest.raises(CheckpointInvalid, match="is a FIFO"):
        seal_checkpoint(tmp_path / "pipe.safetensors")


def test_a_device_and_a_socket_are_refused(tmp_path):
    _refused_quickly("/dev/zero", "is a character device, not a regular file")
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(tmp_path / "sock"))
        _refused_quickly(tmp_path / "sock", "is a socket, not a regular file")


def test_a_directory_is_named_as_one(tmp_path):
    with pytest.raises(CheckpointInvalid, match="is a directory, not a regular file"):
        read_header(tmp_path)


def test_a_symlink_to_a_regular_checkpoint_is_read(tmp_path):
    raw = _file('{"a":' + ZERO + "}")
    (tmp_path / "real.safetensors").write_bytes(raw)
    os.symlink(tmp_path / "real.safetensors", tmp_path / "link.safetensors")
    assert read_header(tmp_path / "link.safetensors").tensors[0].name == "a"


def test_a_valid_header_still_parses_with_its_metadata():
    header = {"__metadata__": {"format": "pt"}, "w": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}}
    raw = _file(json.dumps(header), b"\x01\x02")
    parsed = _parse(raw)
    assert parsed.metadata == {"format": "pt"} and parsed.tensors[0].shape == (2,)
