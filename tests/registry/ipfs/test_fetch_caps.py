"""Every fetch from a stranger's node is capped: endless and slow streams, lying sizes, wrong bytes,
duplicate names, deep and wide DAGs, and manifests too big to hold, each refused by a named cap."""

import io
import time

import pytest

from modelreg import caps
from modelreg.errors import CapExceeded, CidInvalid, ConfigInvalid, IpfsUnavailable, ManifestInvalid
from modelreg.formats.manifest import dataset_manifest, load_manifest
from modelreg.formats.seal import FileLeaf, SealedDataset
from modelreg.ipfs import dagpb, directory, unixfs
from modelreg.ipfs.store import open_ipfs
from modelreg.service.audit import fetch_manifest
from tests.registry.ipfs.builders import run_builder
from tests.registry.ipfs.kubo_test_double import KuboRpcTestDouble

GiB = 1 << 30
SHA = "0x" + "ab" * 32


def lying_file(store, declared: int = 64 * GiB) -> str:
    """A file whose DAG is one 1 KiB raw block linked over and over: a few KiB of blocks declaring
    `declared` bytes, every size consistent with its children, as a reader checks them."""
    leaf = b"A" * 1024
    leaf_cid = unixfs._cid_bytes(leaf, unixfs.RAW, 1)
    blocks, child, size = [unixfs.Block(leaf_cid, leaf)], leaf_cid, len(leaf)
    while size < declared:
        fanout = min(1024, -(-declared // size))
        data = dagpb.encode_node([dagpb.encode_link(child, size)] * fanout,
                                 dagpb.encode_unixfs_file(b"", size * fanout, [size] * fanout))
        child, size = unixfs._cid_bytes(data, unixfs.DAG_PB, 1), size * fanout
        blocks.append(unixfs.Block(child, data))
    store.store.put_all(blocks)
    return str(unixfs.cid_from_bytes(child))


def nested_directory(store, depth: int, width: int = 1) -> str:
    """`depth` directories inside each other, each holding `width` links to the one below (shared,
    so width**depth entries come from a few blocks), a file at the bottom."""
    blocks, link = run_builder(unixfs._file_blocks(io.BytesIO(b"x"), unixfs.V1_2025))
    for _ in range(depth):
        more, link = run_builder(directory.build_directory([(f"d{i}".encode(), link) for i in range(width)],
                                                    unixfs.V1_2025))
        blocks += more
    store.store.put_all(blocks)
    return str(unixfs.cid_from_bytes(link.cid))


@pytest.fixture
def node(tmp_path):
    with KuboRpcTestDouble(tmp_path / "stranger") as double:
        yield double


def auditor(tmp_path, node):
    return open_ipfs(tmp_path / "auditor", api=node.url)


def test_an_endless_stream_is_cut_at_the_manifest_cap(tmp_path, node, monkeypatch):
    monkeypatch.setenv("MODELREG_MAX_MANIFEST_BYTES", str(1 << 20))
    node.mode = "endless-export"
    t0 = time.monotonic()
    with pytest.raises(CapExceeded, match=r"the DAG of \S+ from http://127\.0\.0\.1:\d+ \(so far\) is \d+ bytes, "
                                          r"over the cap max_manifest_bytes = 1048576 "
                                          r"\(set by \$MODELREG_MAX_MANIFEST_BYTES\)"):
        fetch_manifest(auditor(tmp_path, node).cat, "bafkqaaa")
    assert time.monotonic() - t0 < 5


def test_a_node_that_drips_without_end_is_cut_by_the_time_cap(tmp_path, node, monkeypatch):
    monkeypatch.setenv("MODELREG_MAX_SECONDS", "1")
    node.mode = "slow-export"
    t0 = time.monotonic()
    with pytest.raises(CapExceeded, match=r"still arriving after 1 s, over the cap max_seconds = 1 "
                                          r"\(set by \$MODELREG_MAX_SECONDS\)"):
        auditor(tmp_path, node).cat("bafkqaaa")
    assert time.monotonic() - t0 < 5


def test_a_file_declaring_64_gib_in_a_few_kib_of_blocks_is_refused_before_it_is_read(tmp_path, node):
    cid = lying_file(node.store)
    t0 = time.monotonic()
    with pytest.raises(CapExceeded, match=rf"the size file {cid} declares is {64 * GiB} bytes, over the cap "
                                          "max_manifest_bytes"):
        fetch_manifest(auditor(tmp_path, node).cat, cid)
    assert time.monotonic() - t0 < 5
    # An explicit get is bounded by max_bytes the same way.
    with caps.limited(max_bytes=GiB), pytest.raises(CapExceeded, match="over the cap max_bytes = 1073741824"):
        auditor(tmp_path, node).get(cid, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_wrong_bytes_from_the_node_are_refused(tmp_path, node):
    cid = node.store.add_bytes(b"honest bytes")
    node.mode = "corrupt-export"
    with pytest.raises(IpfsUnavailable, match="sent a bad DAG"):
        auditor(tmp_path, node).cat(cid)


def test_a_directory_with_two_entries_of_one_name_is_refused_through_a_node(tmp_path, node):
    blocks, link = run_builder(unixfs._file_blocks(io.BytesIO(b"a"), unixfs.V1_2025))
    other_blocks, other = run_builder(unixfs._file_blocks(io.BytesIO(b"b"), unixfs.V1_2025))
    dir_blocks, _ = run_builder(directory.build_directory([(b"model.safetensors", link), (b"model.safetensors", other)],
                                                   unixfs.V1_2025))
    node.store.store.put_all([*blocks, *other_blocks, *dir_blocks])
    cid = str(dir_blocks[-1].cid)
    ipfs = auditor(tmp_path, node)
    with pytest.raises(ManifestInvalid, match="two entries named 'model.safetensors'"):
        ipfs.cat(f"{cid}/model.safetensors")
    with pytest.raises(ManifestInvalid, match="two entries named 'model.safetensors'"):
        ipfs.get(cid, tmp_path / "out")


def test_a_deep_directory_is_refused_at_the_depth_cap(tmp_path, node):
    cid = nested_directory(node.store, depth=caps.Caps().max_depth + 1)
    with pytest.raises(CapExceeded, match="the depth of directory .* is 65, over the cap max_depth = 64"):
        auditor(tmp_path, node).get(cid, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_wide_shared_directory_is_refused_at_the_file_cap_before_a_file_is_written(tmp_path, node, monkeypatch):
    monkeypatch.setenv("MODELREG_MAX_FILES", "1000")
    cid = nested_directory(node.store, depth=3, width=16)  # 16 + 256 + 4096 entries from 4 blocks
    written = []
    monkeypatch.setattr(unixfs, "read", lambda *a: written.append(a) or iter([b"x"]))
    with pytest.raises(CapExceeded, match="the number of entries under the directory fetched is 1001, over the "
                                          "cap max_files = 1000"):
        auditor(tmp_path, node).get(cid, tmp_path / "out")
    assert not written and not (tmp_path / "out").exists()


def test_a_dataset_manifest_declaring_more_than_the_cap_is_refused():
    manifest = dataset_manifest(SealedDataset.of(FileLeaf(f"f{i}", 1 << 40, SHA) for i in range(3)))
    with pytest.raises(CapExceeded, match=r"the total size a modelreg-dataset-manifest-v1 declares is "
                                          r"3298534883328, over the cap max_dataset_bytes"):
        load_manifest(manifest)


def test_a_manifest_with_more_leaves_than_the_cap_is_refused(monkeypatch):
    monkeypatch.setenv("MODELREG_MAX_ENTRIES", "10")
    manifest = dataset_manifest(SealedDataset.of(FileLeaf(f"f{i}", 1, SHA) for i in range(11)))
    with pytest.raises(CapExceeded, match="the number of leaves .* is 11, over the cap max_entries = 10"):
        load_manifest(manifest)
    monkeypatch.setenv("MODELREG_MAX_ENTRIES", "11")  # raised by its setting, it passes
    assert len(load_manifest(manifest)["leaves"]) == 11


def test_a_cap_setting_that_is_not_a_positive_integer_is_named(monkeypatch):
    monkeypatch.setenv("MODELREG_MAX_BYTES", "lots")
    with pytest.raises(ConfigInvalid, match=r"\$MODELREG_MAX_BYTES must be an integer, got 'lots'"):
        caps.current()


@pytest.mark.parametrize("text", ["bafkqaaa/../x", " bafkqaaa", "bafkqaaa>)\n## Verdict", "not a cid"])
def test_a_manifest_cid_from_the_chain_must_be_one_cid_not_a_path(tmp_path, text):
    fetched = []
    with pytest.raises(CidInvalid, match="is not a CID"):
        fetch_manifest(fetched.append, text)
    assert not fetched
