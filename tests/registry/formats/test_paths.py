"""Hostile paths in manifests and directory listings: each refused with ManifestInvalid, or accepted only if safe."""

import io
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from modelreg.errors import BlockCorrupted, ManifestInvalid, PathNotFound
from modelreg.formats.manifest import dataset_manifest, load_manifest
from modelreg.formats.paths import MAX_PATH_BYTES, check_path, check_paths, fold, inside
from modelreg.formats.seal import FileLeaf, SealedDataset
from modelreg.ipfs import dagpb, directory, unixfs
from modelreg.ipfs.embedded import EmbeddedIpfs
from tests.registry.ipfs.builders import run_builder

SHA = "0x" + "ab" * 32
# Pieces an attacker strings together: traversal, separators, NUL and control characters, a drive,
# case and Unicode forms that fold together, a lone surrogate (undecodable bytes), long names.
PIECES = ["..", ".", "/", "\\", "\x00", "\x1b", "a", "A", "b", "C:", "e\u0301", "\u00e9", "\udcff", "~",
          " ", "x" * 300, "\u202e", "etc", "passwd"]
hostile_paths = st.lists(st.sampled_from(PIECES), min_size=1, max_size=8).map("".join) | st.text(max_size=40)


def _safe(path: str, base: Path) -> bool:
    """What an accepted path must be: relative, plain segments, UTF-8, and landing inside `base`."""
    segments = path.split("/")
    return (not path.startswith("/") and "\\" not in path and "\x00" not in path
            and all(s not in ("", ".", "..") for s in segments)
            and len(path.encode("utf-8")) <= MAX_PATH_BYTES
            and base.resolve() in (base / path).resolve().parents)


@settings(max_examples=300, deadline=None)
@given(hostile_paths)
def test_every_path_is_refused_or_lands_inside_its_directory(tmp_path_factory, path):
    base = tmp_path_factory.getbasetemp() / "base"
    try:
        check_path(path)
    except ManifestInvalid:
        return
    assert _safe(path, base), path
    assert inside(base, path).is_relative_to(base.resolve())


@settings(max_examples=150, deadline=None)
@given(st.lists(hostile_paths, min_size=1, max_size=5, unique=True))
def test_a_dataset_manifest_with_hostile_paths_is_refused_or_safe(tmp_path_factory, paths):
    try:
        manifest = dataset_manifest(SealedDataset.of(FileLeaf(p, 1, SHA) for p in paths))
    except UnicodeEncodeError:  # a lone surrogate cannot even be hashed into a leaf
        assume(False)
    base = tmp_path_factory.getbasetemp() / "base"
    try:
        loaded = load_manifest(manifest)
    except ManifestInvalid:
        return
    listed = [leaf["path"] for leaf in loaded["leaves"]]
    assert all(_safe(p, base) for p in listed)
    assert len({fold(p) for p in listed}) == len(listed)  # no two land on one file, even on macOS


@pytest.mark.parametrize("paths, problem", [
    (["../../.bashrc"], r"has a '\.\.' segment"),
    (["/home/u/.ssh/authorized_keys"], "is absolute"),
    (["a\\..\\..\\x"], "backslash"),
    (["a\x00b"], "control character"),
    (["C:/Windows"], "drive letter"),
    (["a//b"], "empty segment"),
    (["./a"], r"has a '\.' segment"),
    (["README", "readme"], "name the same file"),
    (["caf\u00e9", "cafe\u0301"], "name the same file"),
    (["a", "a/b"], "as a file and 'a/b' below it"),
    (["x" * 256], "longer than 255 bytes"),
    (["/".join("d" * 65)], "deeper than 64"),
], ids=["dotdot", "absolute", "backslash", "nul", "drive", "double-slash", "dot", "case", "nfc", "file-and-dir",
        "long-segment", "deep"])
def test_each_kind_of_hostile_path_is_named(paths, problem):
    with pytest.raises(ManifestInvalid, match=problem):
        check_paths(paths)


def test_a_link_already_in_the_directory_cannot_lead_outside(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "out").symlink_to(tmp_path)
    with pytest.raises(ManifestInvalid, match="outside"):
        inside(tmp_path / "data", "out/.bashrc")


# --- directory listings -------------------------------------------------------------------------

def hostile_directory(store: EmbeddedIpfs, names: list[bytes]) -> str:
    """A basic UnixFS directory, built block by block, whose entries carry exactly these names
    (duplicates and all): what a stranger's node may serve."""
    blocks, file_link = run_builder(unixfs._file_blocks(io.BytesIO(b"pwned\n"), unixfs.V1_2025))
    dir_blocks, _ = run_builder(directory.build_directory([(n, file_link) for n in names], unixfs.V1_2025))
    store.store.put_all([*blocks, *dir_blocks])
    return str(dir_blocks[-1].cid)


def _is_utf8(name: bytes) -> bool:
    try:
        name.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(PIECES), min_size=1, max_size=4).map("".join).map(
    lambda s: s.encode("utf-8", "surrogatepass")).flatmap(lambda n: st.lists(st.just(n) | st.sampled_from(
        [b"a", b"A", b"..", b"ok.txt", "caf\u00e9".encode(), unicodedata.normalize("NFD", "caf\u00e9").encode()]),
        min_size=1, max_size=3)))
def test_a_directory_listing_with_hostile_names_is_refused_or_written_inside(tmp_path, names):
    store = EmbeddedIpfs(tmp_path / "home")
    cid = hostile_directory(store, names)
    out = tmp_path / f"out-{len(list(tmp_path.iterdir()))}"
    before = sorted(p for p in tmp_path.rglob("*") if "home" not in p.parts)
    try:
        store.get(cid, out)
    except (ManifestInvalid, BlockCorrupted) as e:
        if isinstance(e, BlockCorrupted):  # a link name that is not UTF-8 makes the block invalid dag-pb
            assert not all(_is_utf8(n) for n in names)
        assert sorted(p for p in tmp_path.rglob("*") if "home" not in p.parts) == before  # nothing written
        return
    decoded = [n.decode("utf-8") for n in names]
    assert len({fold(n) for n in decoded}) == len(decoded)
    assert sorted(p.name for p in out.iterdir()) == sorted(decoded)


def test_a_directory_with_two_entries_of_one_name_is_refused_by_every_read(tmp_path):
    store = EmbeddedIpfs(tmp_path / "home")
    cid = hostile_directory(store, [b"model.safetensors", b"model.safetensors"])
    for read in (lambda: store.ls(cid), lambda: store.cat(f"{cid}/model.safetensors"),
                 lambda: store.get(cid, tmp_path / "out")):
        with pytest.raises(ManifestInvalid, match="two entries named 'model.safetensors'"):
            read()
    assert not (tmp_path / "out").exists()


def test_a_hamt_entry_filed_under_a_bucket_its_name_does_not_hash_to_is_refused(tmp_path):
    # A lookup goes to the bucket the name hashes to and would not see it; a listing would: two answers.
    store = EmbeddedIpfs(tmp_path / "home")
    blocks, link = run_builder(unixfs._file_blocks(io.BytesIO(b"pwned\n"), unixfs.V1_2025))
    right = directory._bucket(directory._name_hash(b"model.safetensors"), 0, 8)
    wrong = (right + 1) % 256
    node = dagpb.encode_node([dagpb.encode_named_link(link.cid, f"{wrong:02X}model.safetensors".encode(), link.tsize)],
                             dagpb.encode_unixfs_hamt_shard((1 << wrong).to_bytes(32, "big").lstrip(b"\0"),
                                                            directory.MURMUR3_X64_64, 256))
    shard = unixfs.Block(unixfs._cid_bytes(node, unixfs.DAG_PB, 1), node)
    store.store.put_all([*blocks, shard])
    with pytest.raises(BlockCorrupted, match="files 'model.safetensors' under a bucket its name does not hash to"):
        store.ls(str(shard.cid))
    with pytest.raises(PathNotFound):
        store.cat(f"{shard.cid}/model.safetensors")
