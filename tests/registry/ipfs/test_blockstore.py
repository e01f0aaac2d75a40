"""The embedded blockstore: atomic writes, verified reads, pins, garbage collection."""

import io
import os
import signal
import subprocess
import sys
import time

import pytest

from modelreg._atomic import TMP_PREFIX
from modelreg.errors import BlockCorrupted, BlockNotFound, InputInvalid
from modelreg.ipfs import unixfs
from modelreg.ipfs.blockstore import Blockstore
from modelreg.ipfs.embedded import EmbeddedIpfs
from tests.registry.ipfs.unixfs_patterns import pattern_bytes

MiB = 1 << 20


def flip_byte(path, offset=10):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def block_path(store: Blockstore, cid) -> object:
    (path,) = store.blocks_dir.glob(f"*/{cid}")
    return path


@pytest.mark.parametrize("profile", [unixfs.V1_2025, unixfs.V0_2015], ids=lambda p: p.name)
def test_add_then_get_gives_back_identical_bytes(tmp_path, profile):
    data = pattern_bytes(2 * profile.chunk_size + 99, seed=11)
    (tmp_path / "in").write_bytes(data)
    ipfs = EmbeddedIpfs(tmp_path / "home", profile)
    cid = ipfs.add(tmp_path / "in")
    assert cid == ipfs.cid_of(tmp_path / "in")
    ipfs.get(cid, tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == data
    assert ipfs.cat(cid) == data


def test_blocks_live_under_sharded_cid_names_with_no_temp_files_left(tmp_path):
    ipfs = EmbeddedIpfs(tmp_path)
    cid = ipfs.add_bytes(b"hello")
    path = block_path(ipfs.store, cid)
    assert path.parent.parent == tmp_path / "ipfs" / "blocks" and path.read_bytes() == b"hello"
    assert not list((tmp_path / "ipfs").rglob(".tmp-*"))


def test_a_flipped_byte_in_a_stored_block_is_named_on_get_and_no_output_is_written(tmp_path):
    ipfs = EmbeddedIpfs(tmp_path / "home")
    cid = ipfs.add_bytes(pattern_bytes(3 * MiB, seed=2))
    root = unixfs.parse_cid(cid)
    leaves = unixfs.links_of(root, ipfs.store.get(root))
    flip_byte(block_path(ipfs.store, leaves[1]))
    with pytest.raises(BlockCorrupted, match=f"block {leaves[1]} is corrupted"):
        ipfs.get(cid, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["home"]  # no partial temp output either


def test_a_missing_block_is_named(tmp_path):
    ipfs = EmbeddedIpfs(tmp_path)
    cid = unixfs.parse_cid(ipfs.add_bytes(b"data"))
    block_path(ipfs.store, cid).unlink()
    with pytest.raises(BlockNotFound, match=f"block {cid} is not in the store"):
        ipfs.cat(str(cid))


def test_gc_removes_only_blocks_no_pin_reaches(tmp_path):
    ipfs = EmbeddedIpfs(tmp_path)
    kept = ipfs.add_bytes(pattern_bytes(2 * MiB + 1, seed=1))
    dropped = ipfs.add_bytes(pattern_bytes(2 * MiB + 1, seed=2), pin=False)
    assert ipfs.gc() == 4  # three leaves and a root
    assert ipfs.pins() == [kept]
    assert ipfs.cat(kept) == pattern_bytes(2 * MiB + 1, seed=1)
    with pytest.raises(BlockNotFound, match="is not in the store"):
        ipfs.cat(dropped)


def test_unpinned_file_is_collected_and_pins_survive_reopening(tmp_path):
    cid = EmbeddedIpfs(tmp_path).add_bytes(b"manifest")
    again = EmbeddedIpfs(tmp_path)
    assert again.pins() == [cid]
    again.unpin(cid)
    assert again.pins() == [] and again.gc() == 1


def test_unpinning_what_is_not_pinned_says_so(tmp_path):
    ipfs = EmbeddedIpfs(tmp_path)
    cid = ipfs.add_bytes(b"x", pin=False)
    with pytest.raises(BlockNotFound, match=f"{cid} is not pinned"):
        ipfs.unpin(cid)


def test_pinning_an_incomplete_dag_is_refused(tmp_path):
    ipfs = EmbeddedIpfs(tmp_path)
    cid = ipfs.add_bytes(pattern_bytes(2 * MiB + 1, seed=3), pin=False)
    first_leaf = next(unixfs.build(io.BytesIO(pattern_bytes(2 * MiB + 1, seed=3)))).cid
    block_path(ipfs.store, first_leaf).unlink()
    with pytest.raises(BlockNotFound, match=f"block {first_leaf}"):
        ipfs.pin(cid)
    assert ipfs.pins() == []


def test_an_add_that_fails_part_way_names_no_block_and_leaves_no_temp_file(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.bin").write_bytes(pattern_bytes(3 * MiB, seed=1))
    os.mkfifo(tmp_path / "d" / "b.fifo")  # refused only after a.bin's blocks are staged
    ipfs = EmbeddedIpfs(tmp_path / "home")
    with pytest.raises(InputInvalid, match="b.fifo' is not a regular file"):
        ipfs.add(tmp_path / "d")
    assert not list(ipfs.store.cids()) and ipfs.pins() == []
    assert not list((tmp_path / "home").rglob(".tmp-*"))


@pytest.mark.slow
def test_a_killed_add_never_leaves_a_torn_block_or_a_pin_to_a_missing_one(tmp_path):
    (tmp_path / "d").mkdir()
    for i in range(4):
        (tmp_path / "d" / f"shard-{i}.bin").write_bytes(pattern_bytes(16 * MiB, seed=i))
    script = ("import sys; from modelreg.ipfs.embedded import EmbeddedIpfs; "
              "EmbeddedIpfs(sys.argv[1]).add(sys.argv[2])")
    home = tmp_path / "home"
    for delay in (0.3, 0.6, 0.9, 1.2, 1.5, 2.0, 3.0):
        proc = subprocess.Popen([sys.executable, "-c", script, str(home), str(tmp_path / "d")])
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        store = EmbeddedIpfs(home).store
        if not store.blocks_dir.exists():
            continue
        for cid in store.cids():
            store.get(cid)  # a named block is whole: raises BlockCorrupted otherwise
        for pin in store.pins():
            for _ in store.walk(unixfs.parse_cid(pin)):  # a pin reaches only present blocks
                pass
        EmbeddedIpfs(home).gc()  # and gc clears what the kill left
        assert not list(home.rglob(".tmp-*"))


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _leftover(path, pid: int):
    path = path.parent / f"{TMP_PREFIX}{pid}.{path.name}"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(b"half a bl")
    return path


def test_a_killed_writers_temp_files_go_at_the_next_start_and_are_never_blocks(tmp_path):
    ipfs = EmbeddedIpfs(tmp_path)
    cid = ipfs.add_bytes(b"kept")
    dead = _dead_pid()
    in_shard = _leftover(ipfs.store.blocks_dir / "2a" / "bafkreiabc", dead)
    beside_pins = _leftover(ipfs.store.root / "pins.json.456", dead)
    in_flight = _leftover(ipfs.store.blocks_dir / "2b" / "bafkreidef", os.getpid())  # a live writer's
    assert [str(c) for c in ipfs.store.cids()] == [cid]
    EmbeddedIpfs(tmp_path)  # the next start
    assert not in_shard.exists() and not beside_pins.exists()
    assert in_flight.exists()
    assert ipfs.gc() == 0 and ipfs.cat(cid) == b"kept" and in_flight.exists()


def test_gc_removes_a_killed_writers_temp_files_without_counting_them(tmp_path):
    ipfs = EmbeddedIpfs(tmp_path)
    ipfs.add_bytes(b"kept")
    ipfs.add_bytes(b"dropped", pin=False)
    leftover = _leftover(ipfs.store.blocks_dir / "aa" / "crashed", _dead_pid())
    assert ipfs.gc() == 1 and not leftover.exists()
