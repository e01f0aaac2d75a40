"""UnixFS CIDs against the reference JavaScript importer (npm ipfs-unixfs-importer)."""

import dataclasses
import io
import random

import pytest

from modelreg.errors import BlockCorrupted, CidInvalid, InputInvalid
from modelreg.ipfs import unixfs
from tests.nodejs import node_available, run_node
from tests.registry.ipfs.unixfs_patterns import PatternFile, pattern_bytes

pytestmark = pytest.mark.skipif(not node_available(), reason="node and node_modules needed")

MiB = 1 << 20
KiB256 = 256 << 10


def js_cids(profile: unixfs.Profile, sizes: list[int], seed: int = 7) -> list[str]:
    options = {"cidVersion": profile.cid_version, "rawLeaves": profile.raw_leaves,
               "chunkSize": profile.chunk_size, "maxChildrenPerNode": profile.max_links}
    files = [{"size": size, "seed": seed + i} for i, size in enumerate(sizes)]
    return run_node("unixfs_importer.mjs", {"options": options, "files": files})["cids"]


def py_cids(profile: unixfs.Profile, sizes: list[int], seed: int = 7) -> list[str]:
    return [str(unixfs.root_of(PatternFile(size, seed + i), profile))
            for i, size in enumerate(sizes)]


def test_v1_2025_cids_equal_the_js_importer_at_chunk_boundaries_and_random_sizes():
    rng = random.Random(2025)
    sizes = [0, 1, MiB - 1, MiB, MiB + 1, 3 * MiB + 17] + [rng.randrange(1, 4 * MiB)
                                                            for _ in range(4)]
    assert py_cids(unixfs.V1_2025, sizes) == js_cids(unixfs.V1_2025, sizes)


def test_v0_2015_cids_equal_the_js_importer_at_chunk_boundaries_and_random_sizes():
    rng = random.Random(2015)
    sizes = [0, 1, KiB256 - 1, KiB256, KiB256 + 1, 5 * KiB256 + 3] + [
        rng.randrange(1, 2 * MiB) for _ in range(4)]
    assert py_cids(unixfs.V0_2015, sizes) == js_cids(unixfs.V0_2015, sizes)


@pytest.mark.parametrize("raw_leaves,cid_version", [(True, 1), (False, 0), (False, 1)])
def test_deep_balanced_trees_equal_the_js_importer(raw_leaves, cid_version):
    # Tiny chunks and fan-out reach three and four levels in a few kilobytes, so every
    # packing edge (full level, one past full, lone trailing leaf) is checked cheaply.
    profile = dataclasses.replace(unixfs.V1_2025, name="tiny", raw_leaves=raw_leaves,
                                  cid_version=cid_version, chunk_size=64, max_links=3)
    sizes = [64 * n + extra for n in (1, 2, 3, 4, 9, 10, 27, 28, 81) for extra in (0, 1)]
    assert py_cids(profile, sizes) == js_cids(profile, sizes)


def test_named_profiles_match_the_js_importers_own_profiles():
    for profile in (unixfs.V1_2025, unixfs.V0_2015):
        files = [{"size": 2 * profile.chunk_size + 5, "seed": 3}]
        js = run_node("unixfs_importer.mjs", {"options": {"profile": profile.name},
                                              "files": files})["cids"]
        assert js == py_cids(profile, [2 * profile.chunk_size + 5], seed=3)


def test_single_chunk_v1_file_is_one_raw_block_and_empty_files_have_kubos_cids():
    blocks = list(unixfs.build(io.BytesIO(b"x" * MiB), unixfs.V1_2025))
    assert len(blocks) == 1 and blocks[0].cid.codec.name == "raw"
    assert str(unixfs.root_of(io.BytesIO(b""), unixfs.V1_2025)) == (
        "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")
    assert str(unixfs.root_of(io.BytesIO(b""), unixfs.V0_2015)) == (
        "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH")
    assert str(unixfs.root_of(io.BytesIO(b"hello world\n"), unixfs.V0_2015)) == (
        "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o")


@pytest.mark.parametrize("profile", [unixfs.V1_2025, unixfs.V0_2015], ids=lambda p: p.name)
def test_read_returns_the_bytes_that_were_built(profile):
    data = pattern_bytes(3 * profile.chunk_size + 11, seed=5)
    blocks = {b.cid: b.data for b in unixfs.build(io.BytesIO(data), profile)}
    root = list(blocks)[-1]
    assert b"".join(unixfs.read(root, blocks.__getitem__)) == data


def test_read_refuses_a_node_whose_sizes_disagree():
    data = pattern_bytes(2 * MiB + 1, seed=1)
    blocks = {b.cid: b.data for b in unixfs.build(io.BytesIO(data), unixfs.V1_2025)}
    root = list(blocks)[-1]
    first_leaf = list(blocks)[0]
    blocks[first_leaf] = blocks[first_leaf][:-1]  # a shorter leaf under a valid-looking name
    with pytest.raises(BlockCorrupted, match=f"block {first_leaf} holds"):
        b"".join(unixfs.read(root, blocks.__getitem__))


def test_unknown_profile_and_bad_cid_are_named():
    with pytest.raises(InputInvalid, match="unknown UnixFS profile 'v3'.*unixfs-v1-2025"):
        unixfs.profile_named("v3")
    with pytest.raises(CidInvalid, match="'notacid' is not a CID"):
        unixfs.parse_cid("notacid")


@pytest.mark.slow
def test_v1_2025_file_of_1024_chunks_plus_one_byte_equals_the_js_importer():
    sizes = [1024 * MiB + 1]
    assert py_cids(unixfs.V1_2025, sizes) == js_cids(unixfs.V1_2025, sizes)


@pytest.mark.slow
def test_v0_2015_file_of_174_chunks_plus_one_byte_equals_the_js_importer():
    sizes = [174 * KiB256 + 1]
    assert py_cids(unixfs.V0_2015, sizes) == js_cids(unixfs.V0_2015, sizes)
