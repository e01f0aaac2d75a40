"""UnixFS directories: CIDs against the reference JavaScript importer, and paths read back."""

import dataclasses
import os

import pytest

from modelreg.errors import InputInvalid, PathNotFound, SymlinkRefused
from modelreg.ipfs import dagpb, directory, unixfs
from modelreg.ipfs.embedded import EmbeddedIpfs
from tests.nodejs import node_available, run_node
from tests.registry.ipfs.unixfs_patterns import pattern_bytes

needs_node = pytest.mark.skipif(not node_available(), reason="node and node_modules needed")
PROFILES = [unixfs.V1_2025, unixfs.V0_2015]
by_name = {"ids": lambda p: p.name}


def js_dir_cids(profile: unixfs.Profile, dirs, named_profile: bool = True,
                wrap: bool = False) -> list[str]:
    if named_profile:
        options = {"profile": profile.name}
    else:
        options = {"cidVersion": profile.cid_version, "rawLeaves": profile.raw_leaves,
                   "chunkSize": profile.chunk_size, "maxChildrenPerNode": profile.max_links,
                   "shardSplitStrategy": f"{profile.hamt_estimate}-bytes",
                   "shardSplitThresholdBytes": profile.hamt_threshold}
    files = [{"dir": str(d), "wrap": wrap} for d in dirs]
    return run_node("unixfs_importer.mjs", {"options": options, "files": files})["cids"]


def py_dir_cid(profile: unixfs.Profile, path, **kwargs) -> str:
    *_, root = directory.build_tree(path, profile, **kwargs)
    return str(root.cid)


def root_type(profile: unixfs.Profile, path) -> int:
    *_, root = directory.build_tree(path, profile)
    return dagpb.decode_unixfs(dagpb.decode_node(root.data, "").data, "").type


def write(path, data: bytes = b"") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def hugging_face_model(d) -> None:
    write(d / "config.json", b'{"model_type": "gpt2", "n_layer": 2}')
    write(d / "generation_config.json", b'{"do_sample": false}')
    write(d / "tokenizer.json", pattern_bytes(40_000, seed=1))
    write(d / "model.safetensors.index.json", b'{"weight_map": {}}')
    write(d / "model-00001-of-00002.safetensors", pattern_bytes(2 * (1 << 20) + 1, seed=2))
    write(d / "model-00002-of-00002.safetensors", pattern_bytes(300_001, seed=3))
    write(d / "training_args.bin", pattern_bytes(1234, seed=4))


def mixed(d) -> None:
    write(d / "zero-a")  # 0-byte files, twice: the same CID under two names
    write(d / "zero-b")
    write(d / ".hidden", b"dotfiles are kept, as with ipfs add -r --hidden\n")
    write(d / "ünïcödé ☃ 名前.txt", b"unicode names are UTF-8 bytes\n")
    write(d / "nested/deeper/deepest/leaf.txt", b"leaf\n")
    write(d / "nested/sibling.bin", pattern_bytes(256 << 10, seed=5))  # one v0 chunk exactly
    (d / "nested/empty-dir").mkdir()
    write(d / ("a" * 255), b"the longest name most file systems allow\n")


def thousand_small_files(d) -> None:
    for i in range(1000):
        write(d / f"shard/part-{i:04d}.txt", f"{i}\n".encode())


def deep(d) -> None:
    write(d.joinpath(*[f"level{i}" for i in range(30)], "bottom.txt"), b"bottom\n")


SHAPES = {"hugging-face-model": hugging_face_model, "mixed": mixed,
          "thousand-small-files": thousand_small_files, "deep": deep,
          "empty": lambda d: None}


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    base = tmp_path_factory.mktemp("shapes")
    for name, make in SHAPES.items():
        (base / name).mkdir()
        make(base / name)
    return [base / name for name in SHAPES]


@needs_node
@pytest.mark.parametrize("profile", PROFILES, **by_name)
def test_directory_cids_equal_the_js_importer_across_shapes(shapes, profile):
    ours = [py_dir_cid(profile, d) for d in shapes]
    assert ours == js_dir_cids(profile, shapes)
    # The same CIDs as the importer's wrapWithDirectory output over the entries' relative paths
    # (an empty directory has nothing to wrap).
    assert ours[:-1] == js_dir_cids(profile, shapes[:-1], wrap=True)


def test_an_empty_directory_has_the_cids_kubo_gives_it(tmp_path):
    assert py_dir_cid(unixfs.V1_2025, tmp_path) == (
        "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354")
    assert py_dir_cid(unixfs.V0_2015, tmp_path) == "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn"


def small_threshold(profile: unixfs.Profile, estimate: str, threshold: int) -> unixfs.Profile:
    return dataclasses.replace(profile, name="test", hamt_estimate=estimate,
                               hamt_threshold=threshold)


@needs_node
@pytest.mark.parametrize("estimate", ["block", "links"])
@pytest.mark.parametrize("base", PROFILES, **by_name)
def test_hamt_sharded_directories_equal_the_js_importer(tmp_path, base, estimate):
    # A 1,000-byte threshold shards 300 entries: collisions among 256 buckets give sub-shards,
    # and a subdirectory inside the HAMT is a plain entry.
    for i in range(300):
        write(tmp_path / "d" / f"file-{i}", f"{i}\n".encode())
    write(tmp_path / "d" / "sub" / "inner.txt", b"inner\n")
    profile = small_threshold(base, estimate, 1000)
    assert root_type(profile, tmp_path / "d") == dagpb.UNIXFS_HAMT_SHARD
    assert [py_dir_cid(profile, tmp_path / "d")] == js_dir_cids(profile, [tmp_path / "d"],
                                                                named_profile=False)


@needs_node
@pytest.mark.parametrize("estimate", ["block", "links"])
@pytest.mark.parametrize("base", PROFILES, **by_name)
def test_a_directory_exactly_at_the_threshold_stays_basic_and_one_byte_over_shards(
        tmp_path, base, estimate):
    for i in range(40):
        write(tmp_path / "d" / f"entry-{i:02d}", f"{i}\n".encode())
    *_, root = directory.build_tree(tmp_path / "d", base)
    links = dagpb.decode_node(root.data, "").links
    size = len(root.data) if estimate == "block" else sum(len(x.name) + len(x.hash) for x in links)
    at, over = small_threshold(base, estimate, size), small_threshold(base, estimate, size - 1)
    assert root_type(at, tmp_path / "d") == dagpb.UNIXFS_DIRECTORY
    assert root_type(over, tmp_path / "d") == dagpb.UNIXFS_HAMT_SHARD
    for profile in (at, over):
        assert [py_dir_cid(profile, tmp_path / "d")] == js_dir_cids(profile, [tmp_path / "d"],
                                                                    named_profile=False)


def test_subdirectory_links_count_towards_the_threshold_at_their_final_size(tmp_path):
    # 40 subdirectories and one file: over 1,000 bytes only with the subdirectories' links.
    for i in range(10, 50):
        write(tmp_path / "d" / f"d{i}" / "f", f"{i}\n".encode())
    write(tmp_path / "d" / "file", b"x\n")
    *_, root = directory.build_tree(tmp_path / "d", unixfs.V1_2025)
    assert len(root.data) > 1000
    assert root_type(small_threshold(unixfs.V1_2025, "block", 1000), tmp_path / "d") == (
        dagpb.UNIXFS_HAMT_SHARD)


@needs_node
@pytest.mark.slow
def test_the_profiles_estimate_size_differently_and_both_equal_the_js_importer(tmp_path):
    # 1,100 links with 200-byte names: about 270 KB as a block (unixfs-v1-2025 shards), about
    # 260 KB by the legacy name-and-CID estimate (unixfs-v0-2015 stays one node).
    for i in range(1100):
        write(tmp_path / "d" / f"{i:04d}{'x' * 196}")
    assert root_type(unixfs.V1_2025, tmp_path / "d") == dagpb.UNIXFS_HAMT_SHARD
    assert root_type(unixfs.V0_2015, tmp_path / "d") == dagpb.UNIXFS_DIRECTORY
    for profile in PROFILES:
        assert [py_dir_cid(profile, tmp_path / "d")] == js_dir_cids(profile, [tmp_path / "d"])


# --- what is refused -----------------------------------------------------------
def test_a_symbolic_link_is_refused_unless_followed_and_then_adds_its_target(tmp_path):
    write(tmp_path / "blobs" / "abc", b"weights\n")
    write(tmp_path / "copy" / "model.bin", b"weights\n")
    (tmp_path / "snapshot").mkdir()
    (tmp_path / "snapshot" / "model.bin").symlink_to("../blobs/abc")
    with pytest.raises(SymlinkRefused, match="model.bin' is a symbolic link, and links are followed"):
        py_dir_cid(unixfs.V1_2025, tmp_path / "snapshot")
    assert py_dir_cid(unixfs.V1_2025, tmp_path / "snapshot", follow_symlinks=True) == (
        py_dir_cid(unixfs.V1_2025, tmp_path / "copy"))


def test_a_followed_link_to_an_enclosing_directory_is_refused(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "sub" / "loop").symlink_to("..")
    with pytest.raises(InputInvalid, match="loop' is a symbolic link to a directory that contains it"):
        py_dir_cid(unixfs.V1_2025, tmp_path / "d", follow_symlinks=True)


def test_special_files_and_non_utf8_names_are_refused(tmp_path):
    (tmp_path / "fifo").mkdir()
    os.mkfifo(tmp_path / "fifo" / "pipe")
    with pytest.raises(InputInvalid, match="pipe' is not a regular file or a directory"):
        py_dir_cid(unixfs.V1_2025, tmp_path / "fifo")
    (tmp_path / "latin1").mkdir()
    write(tmp_path / "latin1" / os.fsdecode(b"caf\xe9"))
    with pytest.raises(InputInvalid, match="is not valid UTF-8; rename it"):
        py_dir_cid(unixfs.V1_2025, tmp_path / "latin1")


# --- reading back ----------------------------------------------------------------
def hamt_store(tmp_path) -> tuple[EmbeddedIpfs, str]:
    for i in range(300):
        write(tmp_path / "d" / f"file-{i}", f"{i}\n".encode())
    write(tmp_path / "d" / "sub" / "inner.txt", b"inner\n")
    return EmbeddedIpfs(tmp_path / "home", small_threshold(unixfs.V1_2025, "block", 1000)), "d"


@pytest.mark.parametrize("sharded", [False, True], ids=["basic", "hamt"])
def test_ls_lists_every_entry_by_name_with_the_cid_of_its_content(tmp_path, sharded):
    if sharded:
        ipfs, _ = hamt_store(tmp_path)
    else:
        mixed(tmp_path / "d")
        ipfs = EmbeddedIpfs(tmp_path / "home")
    cid = ipfs.add(tmp_path / "d")
    entries = ipfs.ls(cid)
    names = sorted(os.listdir(tmp_path / "d"), key=str.encode)
    assert [e.name for e in entries] == names
    for e in entries:
        path = tmp_path / "d" / e.name
        assert str(e.cid) == ipfs.cid_of(path), e.name


@pytest.mark.parametrize("sharded", [False, True], ids=["basic", "hamt"])
def test_cat_reads_a_path_inside_a_directory_and_names_a_missing_one(tmp_path, sharded):
    if sharded:
        ipfs, _ = hamt_store(tmp_path)
    else:
        write(tmp_path / "d" / "sub" / "inner.txt", b"inner\n")
        ipfs = EmbeddedIpfs(tmp_path / "home")
    cid = ipfs.add(tmp_path / "d")
    assert ipfs.cat(f"{cid}/sub/inner.txt") == b"inner\n"
    assert ipfs.cat(f"/ipfs/{cid}/sub/inner.txt") == b"inner\n"
    with pytest.raises(PathNotFound, match=f"directory {cid} has no entry 'missing.txt'"):
        ipfs.cat(f"{cid}/missing.txt")
    with pytest.raises(InputInvalid, match=f"{cid} is a directory, not a file"):
        ipfs.cat(cid)


@pytest.mark.parametrize("profile", PROFILES, **by_name)
def test_get_writes_back_the_identical_tree(tmp_path, profile):
    mixed(tmp_path / "d")
    ipfs = EmbeddedIpfs(tmp_path / "home", profile)
    cid = ipfs.add(tmp_path / "d")
    ipfs.get(cid, tmp_path / "out")
    assert tree_of(tmp_path / "out") == tree_of(tmp_path / "d")
    with pytest.raises(InputInvalid, match="already exists"):
        ipfs.get(cid, tmp_path / "out")


def tree_of(root) -> dict:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(root.rglob("*"))}


def test_a_pinned_directory_survives_gc_whole_and_an_unpinned_one_goes(tmp_path):
    hugging_face_model(tmp_path / "d")
    ipfs = EmbeddedIpfs(tmp_path / "home")
    cid = ipfs.add(tmp_path / "d")
    blocks = set(ipfs.store.cids())
    assert ipfs.gc() == 0 and set(ipfs.store.cids()) == blocks
    ipfs.unpin(cid)
    assert ipfs.gc() == len(blocks) and not list(ipfs.store.cids())


@pytest.mark.parametrize("profile", PROFILES, **by_name)
def test_a_directory_travels_through_a_car_file_to_another_store(tmp_path, profile):
    hugging_face_model(tmp_path / "d")
    source = EmbeddedIpfs(tmp_path / "a", profile)
    cid = source.add(tmp_path / "d")
    source.export_car(cid, tmp_path / "d.car")
    target = EmbeddedIpfs(tmp_path / "b", profile)
    assert target.import_car(tmp_path / "d.car") == [cid]
    assert target.pins() == [cid]
    target.get(cid, tmp_path / "out")
    assert tree_of(tmp_path / "out") == tree_of(tmp_path / "d")
