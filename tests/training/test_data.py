import json

import pytest

from modelreg.errors import DatasetInvalid, DatasetTampered, ManifestInvalid
from modelreg.training.data import load_dataset, seal_directory


def test_a_sealed_directory_loads_every_file_in_path_order(dataset_dir, manifest):
    ds = load_dataset(dataset_dir, manifest, manifest["root"])
    assert [f.path for f in ds.files] == ["sonnets_gut.txt", "tempest_gut.txt"]
    assert ds.root == manifest["root"]
    assert ds.files[0].text == (dataset_dir / "sonnets_gut.txt").read_text()


def test_a_manifest_file_on_disk_is_accepted(dataset_dir, manifest, tmp_path):
    path = tmp_path / "dataset.json"
    path.write_text(json.dumps(manifest))
    assert load_dataset(dataset_dir, path).root == manifest["root"]


def test_a_changed_file_is_named_in_the_error(dataset_dir, manifest):
    p = dataset_dir / "tempest_gut.txt"
    p.write_bytes(p.read_bytes().replace(b"Prospero", b"Prosperx", 1))
    with pytest.raises(DatasetTampered, match=r"dataset file tempest_gut\.txt does not match its manifest entry"):
        load_dataset(dataset_dir, manifest, manifest["root"])


def test_a_missing_file_is_named_in_the_error(dataset_dir, manifest):
    (dataset_dir / "sonnets_gut.txt").unlink()
    with pytest.raises(DatasetTampered, match=r"dataset file sonnets_gut\.txt is listed in the manifest but missing"):
        load_dataset(dataset_dir, manifest)


def test_a_manifest_for_another_root_is_refused(dataset_dir, manifest):
    other = "0x" + "11" * 32
    with pytest.raises(DatasetTampered, match=f"training expects {other}"):
        load_dataset(dataset_dir, manifest, other)


def test_an_edited_manifest_whose_leaves_no_longer_give_its_root_is_refused(dataset_dir, manifest):
    (dataset_dir / "tempest_gut.txt").write_text("poisoned\n")
    edited = json.loads(json.dumps(manifest))
    fresh = seal_directory(dataset_dir)
    edited["leaves"] = fresh["leaves"]  # the attacker updates the leaves but cannot keep the root
    with pytest.raises(ManifestInvalid, match="its leaves give 0x"):
        load_dataset(dataset_dir, edited, manifest["root"])


def test_files_not_in_the_manifest_are_not_read(dataset_dir, manifest):
    (dataset_dir / "extra.txt").write_text("not sealed, never used\n")
    ds = load_dataset(dataset_dir, manifest)
    assert "extra.txt" not in [f.path for f in ds.files]


def test_a_file_that_is_not_utf8_is_refused(tmp_path):
    d = tmp_path / "bin"
    d.mkdir()
    (d / "blob.txt").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(DatasetInvalid, match=r"dataset file blob\.txt is not UTF-8 text"):
        load_dataset(d, seal_directory(d))


def test_a_missing_directory_is_named(tmp_path, manifest):
    with pytest.raises(DatasetInvalid, match=r"dataset directory .*nowhere does not exist"):
        load_dataset(tmp_path / "nowhere", manifest)


def test_a_manifest_path_that_leaves_the_directory_is_refused(dataset_dir, tmp_path):
    import hashlib

    from modelreg.formats.manifest import dataset_manifest
    from modelreg.formats.seal import FileLeaf, SealedDataset

    outside = tmp_path / "outside.txt"
    outside.write_text("secret\n")
    digest = "0x" + hashlib.sha256(outside.read_bytes()).hexdigest()
    crafted = dataset_manifest(SealedDataset.of([FileLeaf("../outside.txt", 7, digest)]))
    # refused where the manifest is loaded, before any file is opened (modelreg.formats.paths)
    with pytest.raises(ManifestInvalid, match=r"path '\.\./outside\.txt' has a '\.\.' segment"):
        load_dataset(dataset_dir, crafted)


def test_seal_and_load_reads_each_file_once_and_agrees_with_the_seal(tmp_path, monkeypatch):
    from pathlib import Path

    from modelreg.formats.manifest import dataset_manifest
    from modelreg.formats.seal import seal_dataset
    from modelreg.training.data import seal_and_load

    (tmp_path / "a.txt").write_text("to be or not to be\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_text("that is the question\n")
    reads = []
    real = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: reads.append(self.name) or real(self))
    dataset = seal_and_load(tmp_path)
    assert sorted(reads) == ["a.txt", "b.txt"]
    monkeypatch.undo()
    assert dataset.root == seal_dataset(tmp_path).root
    assert dataset.manifest == dataset_manifest(seal_dataset(tmp_path))
    assert [f.path for f in dataset.files] == ["a.txt", "sub/b.txt"]
    assert dataset.files[1].text == "that is the question\n"
