"""No CAR file, however malformed, gets past the importer's own errors or corrupts the store."""

import contextlib
import io
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelreg.errors import CarInvalid, ModelregError
from modelreg.ipfs.car import encode_car, read_car
from modelreg.ipfs.dagpb import varint
from modelreg.ipfs.embedded import EmbeddedIpfs

# A valid CAR to mutate: a two-leaf file and its node.
_STORE_DATA = bytes(range(256)) * 5000


def _valid_car(tmp_path) -> bytes:
    ipfs = EmbeddedIpfs(tmp_path / "source")
    cid = ipfs.add_bytes(_STORE_DATA)
    ipfs.export_car(cid, tmp_path / "valid.car")
    return (tmp_path / "valid.car").read_bytes()


def _section(cid: bytes, data: bytes) -> bytes:
    return varint(len(cid) + len(data)) + cid + data


def _header(cbor: bytes) -> bytes:
    return varint(len(cbor)) + cbor


def _hostile(header: bytes) -> dict[str, bytes]:
    """The CARs the fault-injection run found to reach the CLI's catch-all."""
    return {
        "a header map keyed by an array": _header(b"\xa1\x81\x01\x01"),
        "a header map keyed by a map": _header(b"\xa1\xa1\x01\x01\x01"),
        "a deeply nested header": _header(b"\x81" * 5000 + b"\x01"),
        "an identity-hash CID": header + _section(b"\x01\x55\x00" + varint(300) + b"x" * 300, b""),
        "a dag-cbor block": header + _section(b"\x01\x71\x12\x20" + bytes(32), b"\xa0"),
        "an unknown codec": header + _section(b"\x01\xf0\x01\x12\x20" + bytes(32), b"data"),
        # found by the fuzz run below: a sha2-256 multihash that declares 33 bytes of digest
        "a sha2-256 digest of 33 bytes": header + _section(b"\x01\x55\x12\x21" + bytes(33), b"data"),
    }


def _import(tmp_path, data: bytes) -> None:
    car = tmp_path / "fuzzed.car"
    car.write_bytes(data)
    with contextlib.suppress(ModelregError):  # an error of its own: what every malformed file gives
        EmbeddedIpfs(tmp_path / "home").import_car(car)


@pytest.mark.parametrize("name", list(_hostile(b"")))
def test_each_hostile_car_from_the_fault_run_gets_an_error_of_its_own(tmp_path, name):
    valid = _valid_car(tmp_path)
    car = tmp_path / "hostile.car"
    car.write_bytes(_hostile(valid[:valid[0] + 1])[name])  # a one-root header fits a one-byte varint
    with pytest.raises(CarInvalid):
        EmbeddedIpfs(tmp_path / "home").import_car(car)
    assert EmbeddedIpfs(tmp_path / "home").pins() == []


_VALID: list[bytes] = []


@pytest.mark.slow  # 100 in the suite; MODELREG_FUZZ_EXAMPLES=2000 for the fault run's size.
@settings(max_examples=int(os.environ.get("MODELREG_FUZZ_EXAMPLES", "100")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_fuzzed_cars_give_only_the_importers_own_errors_and_keep_the_store_sound(tmp_path, data):
    if not _VALID:
        _VALID.append(_valid_car(tmp_path))
    valid = bytearray(_VALID[0])
    for _ in range(data.draw(st.integers(1, 4))):
        kind = data.draw(st.sampled_from(["flip", "cut", "insert", "header"]))
        at = data.draw(st.integers(0, len(valid) - 1))
        if kind == "flip":
            valid[at] ^= data.draw(st.integers(1, 255))
        elif kind == "cut":
            del valid[at:at + data.draw(st.integers(1, 64))]
        elif kind == "insert":
            valid[at:at] = data.draw(st.binary(min_size=1, max_size=64))
        else:
            cbor = data.draw(st.binary(max_size=80))
            valid[:] = _header(cbor) + valid[valid[0] + 1:]
        if not valid:
            break
    _import(tmp_path, bytes(valid))
    ipfs = EmbeddedIpfs(tmp_path / "home")
    assert ipfs.check().problems == []


def test_read_car_round_trips_what_encode_car_wrote(tmp_path):
    valid = _valid_car(tmp_path)
    roots, blocks = read_car(io.BytesIO(valid))
    assert b"".join(encode_car(roots, list(blocks))) == valid
