"""One blockstore shared by many processes: no pin lost, gc safe beside writers, a check command."""

import json
import multiprocessing
import os

import pytest

from modelreg.errors import BlockNotFound
from modelreg.ipfs import unixfs
from modelreg.ipfs.embedded import EmbeddedIpfs

CTX = multiprocessing.get_context("spawn")  # a fresh process each, as separate commands are


def _add_many(home, seed: int, count: int, queue) -> None:
    ipfs = EmbeddedIpfs(home)
    for i in range(count):
        # Two chunks each, so a DAG has a node and leaves for gc to get wrong.
        data = os.urandom(8) + bytes([seed, i]) * (600 * 1024)
        queue.put(ipfs.add_bytes(data))


def _gc_loop(home, stop) -> None:
    ipfs = EmbeddedIpfs(home)
    while not stop.wait(0.05):
        ipfs.gc()


@pytest.mark.slow
def test_every_pin_of_many_processes_survives_with_gc_running_beside_them(tmp_path):
    queue, stop = CTX.Queue(), CTX.Event()  # the store is new: the processes create it together
    gc = CTX.Process(target=_gc_loop, args=(tmp_path, stop))
    gc.start()
    writers = [CTX.Process(target=_add_many, args=(tmp_path, n, 3, queue)) for n in range(8)]
    for w in writers:
        w.start()
    reported = [queue.get(timeout=120) for _ in range(8 * 3)]
    for w in writers:
        w.join(60)
    stop.set()
    gc.join(60)
    ipfs = EmbeddedIpfs(tmp_path)
    assert sorted(ipfs.pins()) == sorted(reported)
    ipfs.gc()
    report = ipfs.check()
    assert report.problems == [] and report.pins == 24
    for cid in reported:  # every block still there, every byte verified
        assert len(ipfs.cat(cid)) == 8 + 2 * 600 * 1024


def test_a_home_with_pins_json_is_migrated_on_open_and_keeps_its_pins(tmp_path):
    cid = EmbeddedIpfs(tmp_path / "a").add_bytes(b"old home")
    old = tmp_path / "old"
    (old / "ipfs").mkdir(parents=True)
    (tmp_path / "a" / "ipfs" / "blocks").rename(old / "ipfs" / "blocks")
    (old / "ipfs" / "pins.json").write_text(json.dumps({"recursive": [cid]}))
    ipfs = EmbeddedIpfs(old)
    assert ipfs.pins() == [cid]
    assert not (old / "ipfs" / "pins.json").exists() and (old / "ipfs" / "pins.json.migrated").exists()
    assert ipfs.gc() == 0 and ipfs.cat(cid) == b"old home"


def test_release_takes_back_one_pin_and_keeps_a_pin_someone_else_made(tmp_path):
    ipfs = EmbeddedIpfs(tmp_path)
    shared = ipfs.add_bytes(b"pinned by the user")
    ipfs.pin(shared)  # a commit pins the same DAG again
    ipfs.release(shared)  # ... and its transaction failed
    assert ipfs.pins() == [shared]
    alone = ipfs.add_bytes(b"pinned by a failed commit alone")
    ipfs.release(alone)
    assert ipfs.pins() == [shared] and ipfs.gc() == 1


def test_unpin_removes_a_pin_however_often_it_was_made(tmp_path):
    ipfs = EmbeddedIpfs(tmp_path)
    cid = ipfs.add_bytes(b"twice")
    ipfs.pin(cid)
    ipfs.unpin(cid)
    assert ipfs.pins() == []
    with pytest.raises(BlockNotFound, match="is not pinned"):
        ipfs.unpin(cid)


def test_check_names_a_corrupted_block_and_an_incomplete_pin(tmp_path):
    ipfs = EmbeddedIpfs(tmp_path)
    cid = ipfs.add_bytes(os.urandom(3 * 1024 * 1024))
    assert ipfs.check().problems == []
    root = unixfs.parse_cid(cid)
    leaves = [c for c, _ in ipfs.store.walk(root) if c != root]
    bad, gone = (ipfs.store._path(c) for c in leaves[:2])
    bad.write_bytes(b"not the block")
    gone.unlink()
    problems = ipfs.check().problems
    assert any("corrupted" in p and str(leaves[0]) in p for p in problems)
    assert any(p.startswith(f"pin {cid} is incomplete") for p in problems)


def test_a_dead_owners_temp_directory_in_the_home_goes_at_the_next_start(tmp_path):
    from tests.registry.ipfs.test_blockstore import _dead_pid

    dead = tmp_path / f".tmp-{_dead_pid()}.verify"
    (dead / "model").mkdir(parents=True)
    (dead / "model" / "weights").write_bytes(b"half")
    live = tmp_path / f".tmp-{os.getpid()}.verify"
    live.mkdir()
    ipfs = EmbeddedIpfs(tmp_path)
    assert not dead.exists() and live.exists()
    ipfs.gc()
    assert live.exists()
