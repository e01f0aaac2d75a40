"""CARv1 export and import, checked against @ipld/car."""

import hashlib

import pytest

from modelreg.errors import CarInvalid
from modelreg.ipfs import unixfs
from modelreg.ipfs.car import decode_header, encode_car, encode_header, read_car
from modelreg.ipfs.embedded import EmbeddedIpfs
from tests.nodejs import node_available, run_node
from tests.registry.ipfs.unixfs_patterns import pattern_bytes

needs_node = pytest.mark.skipif(not node_available(), reason="node and node_modules needed")
MiB = 1 << 20


def exported(tmp_path, profile=unixfs.V1_2025, size=3 * MiB + 5):
    ipfs = EmbeddedIpfs(tmp_path / "src", profile)
    data = pattern_bytes(size, seed=9)
    cid = ipfs.add_bytes(data)
    ipfs.export_car(cid, tmp_path / "file.car")
    return cid, data


def test_header_round_trips_with_one_or_several_roots():
    roots = [unixfs.make_cid(b"a", "raw", 1), unixfs.make_cid(b"b", "dag-pb", 0)]
    assert decode_header(encode_header(roots)) == roots
    assert decode_header(encode_header(roots[:1])) == roots[:1]


@needs_node
@pytest.mark.parametrize("profile", [unixfs.V1_2025, unixfs.V0_2015], ids=lambda p: p.name)
def test_an_exported_car_reads_in_ipld_car_with_the_same_blocks(tmp_path, profile):
    cid, _ = exported(tmp_path, profile)
    js = run_node("car_ipld.mjs", {"read": str(tmp_path / "file.car")})
    with open(tmp_path / "file.car", "rb") as f:
        roots, blocks = read_car(f)
        ours = [{"cid": str(c), "size": len(d), "sha256": hashlib.sha256(d).hexdigest()}
                for c, d in blocks]
    assert js["version"] == 1 and js["roots"] == [cid] == [str(r) for r in roots]
    assert js["blocks"] == ours
    assert ours[0]["cid"] == cid  # root first, as `ipfs dag export` writes it


@needs_node
@pytest.mark.parametrize("profile", ["unixfs-v1-2025", "unixfs-v0-2015"])
def test_a_car_written_by_ipld_car_imports_and_gets_back_the_file(tmp_path, profile):
    size = 3 * MiB + 7
    js = run_node("car_ipld.mjs", {"write": str(tmp_path / "js.car"), "size": size, "seed": 4,
                                   "profile": profile})
    ipfs = EmbeddedIpfs(tmp_path / "home", unixfs.profile_named(profile))
    assert ipfs.import_car(tmp_path / "js.car") == [js["root"]]
    assert ipfs.pins() == [js["root"]]
    assert ipfs.cat(js["root"]) == pattern_bytes(size, seed=4)


def test_add_get_export_import_get_is_byte_identical(tmp_path):
    cid, data = exported(tmp_path)
    other = EmbeddedIpfs(tmp_path / "dst")
    assert other.import_car(tmp_path / "file.car") == [cid]
    other.get(cid, tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == data


def test_import_refuses_a_block_with_a_flipped_byte_and_names_it(tmp_path):
    cid, _ = exported(tmp_path)
    car = bytearray((tmp_path / "file.car").read_bytes())
    car[-1] ^= 0xFF  # the last byte of the last block
    (tmp_path / "bad.car").write_bytes(bytes(car))
    with open(tmp_path / "file.car", "rb") as f:
        last = list(read_car(f)[1])[-1][0]
    other = EmbeddedIpfs(tmp_path / "dst")
    with pytest.raises(CarInvalid, match=f"CAR block {last} does not match its CID"):
        other.import_car(tmp_path / "bad.car")
    assert other.pins() == []
    assert not list(other.store.cids())  # the good blocks before it were not kept either


def test_import_refuses_a_dag_with_missing_blocks(tmp_path):
    cid, _ = exported(tmp_path)
    with open(tmp_path / "file.car", "rb") as f:
        roots, blocks = read_car(f)
        blocks = list(blocks)
    (tmp_path / "short.car").write_bytes(b"".join(encode_car(roots, blocks[:-1])))
    other = EmbeddedIpfs(tmp_path / "dst")
    with pytest.raises(CarInvalid, match=f"missing blocks of root {cid}: block {blocks[-1][0]}"):
        other.import_car(tmp_path / "short.car")
    assert other.pins() == []


@pytest.mark.parametrize("content,problem", [
    (b"", "no valid header length"),
    (b"\x05abc", "ends inside its header"),
    (b"\x03\xa1\x61x", "CAR header is invalid"),
])
def test_import_refuses_files_that_are_not_cars(tmp_path, content, problem):
    (tmp_path / "x.car").write_bytes(content)
    with pytest.raises(CarInvalid, match=problem):
        EmbeddedIpfs(tmp_path).import_car(tmp_path / "x.car")


def test_import_refuses_a_truncated_car(tmp_path):
    exported(tmp_path)
    car = (tmp_path / "file.car").read_bytes()
    (tmp_path / "cut.car").write_bytes(car[:-10])
    with pytest.raises(CarInvalid, match="ends inside a block"):
        EmbeddedIpfs(tmp_path / "dst").import_car(tmp_path / "cut.car")
