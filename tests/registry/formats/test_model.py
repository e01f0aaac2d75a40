"""Sealing models: single files, Hugging Face directories with shards, index files, links and odd entries."""

import hashlib
import json
import os
import random

import pytest

from modelreg.errors import CheckpointInvalid, ManifestInvalid, ModelInvalid, SymlinkRefused
from modelreg.formats.diff import diff_tensors
from modelreg.formats.manifest import canonical_json, checkpoint_manifest, load_model
from modelreg.formats.model import seal_model
from modelreg.formats.seal import seal_checkpoint, seal_dataset
from tests.hf import save_tiny_gpt2
from tests.registry.formats.seal_helpers import random_tensors, safetensors_bytes


def _sha(data: bytes) -> str:
    return "0x" + hashlib.sha256(data).hexdigest()


def _model_dir(path, shards: dict[str, dict], files: dict[str, bytes] | None = None):
    """A model directory: shard file name -> tensors (see safetensors_bytes), plus other files."""
    path.mkdir(parents=True, exist_ok=True)
    for name, tensors in shards.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_bytes(safetensors_bytes(tensors))
    for name, data in (files or {}).items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_bytes(data)
    return path


def _index(path, weight_map: dict[str, str], name="model.safetensors.index.json"):
    (path / name).write_text(json.dumps({"metadata": {"total_size": 0}, "weight_map": weight_map}))


@pytest.fixture
def tensors():
    return random_tensors(random.Random(41), 6)


def _split(tensors, at):
    names = list(tensors)
    return {n: tensors[n] for n in names[:at]}, {n: tensors[n] for n in names[at:]}


def test_a_single_file_seals_as_today_with_no_files_root(tmp_path, tensors):
    path = tmp_path / "m.safetensors"
    path.write_bytes(safetensors_bytes(tensors))
    sealed = seal_model(path)
    assert sealed.tensors == seal_checkpoint(path)
    assert sealed.files is None and sealed.files_root is None and sealed.tensor_count == 6


def test_a_directory_seals_its_shards_as_tensors_and_every_other_file_as_bytes(tmp_path, tensors):
    first, second = _split(tensors, 2)
    files = {"config.json": b'{"a": 1}', "optimizer.pt": b"PK\x03\x04 never loaded",
             "training_args.bin": b"\x80\x04 never loaded", "empty.txt": b""}
    model = _model_dir(tmp_path / "m", {"model-00001-of-00002.safetensors": first,
                                        "model-00002-of-00002.safetensors": second}, files)
    _index(model, {n: "model-00001-of-00002.safetensors" for n in first}
           | {n: "model-00002-of-00002.safetensors" for n in second})
    sealed = seal_model(model)
    whole = tmp_path / "whole.safetensors"
    whole.write_bytes(safetensors_bytes(tensors))
    assert sealed.root == seal_checkpoint(whole).root
    assert [(f.path, f.size, f.sha256) for f in sealed.files.leaves] == sorted(
        (name, len(data), _sha(data)) for name, data in files.items())


def test_the_files_tree_is_the_dataset_tree_of_the_same_files(tmp_path, tensors):
    files = {"config.json": b"{}", "sub/dir/notes.md": b"# card", "токенизатор.json": "ü".encode()}
    model = _model_dir(tmp_path / "m", {"model.safetensors": tensors}, files)
    data = _model_dir(tmp_path / "d", {}, files)
    assert seal_model(model).files_root == seal_dataset(data).root


def test_resharding_a_real_gpt2_gives_the_same_weights_root_and_files_root(tmp_path):
    small = seal_model(save_tiny_gpt2(tmp_path / "small", max_shard_size="20KB"))
    large = seal_model(save_tiny_gpt2(tmp_path / "large", max_shard_size="100KB"))
    single = seal_model(save_tiny_gpt2(tmp_path / "single"))
    assert len(list((tmp_path / "small").glob("*.safetensors"))) > len(list((tmp_path / "large").glob("*.safetensors"))) > 1
    assert small.root == large.root == single.root
    assert small.files_root == large.files_root == single.files_root is not None
    assert [f.path for f in small.files.leaves] == ["config.json", "generation_config.json"]


def test_another_seed_gives_another_weights_root(tmp_path):
    assert seal_model(save_tiny_gpt2(tmp_path / "a")).root != seal_model(save_tiny_gpt2(tmp_path / "b", seed=1)).root


def test_a_changed_config_changes_the_files_root_and_the_diff_names_it(tmp_path):
    before = save_tiny_gpt2(tmp_path / "a", max_shard_size="20KB")
    after = save_tiny_gpt2(tmp_path / "b", max_shard_size="100KB")
    config = json.loads((after / "config.json").read_text())
    (after / "config.json").write_text(json.dumps({**config, "n_positions": 128}))
    a, b = seal_model(before), seal_model(after)
    assert a.root == b.root and a.files_root != b.files_root
    diff = diff_tensors(before, after)
    assert not diff.identical and diff.as_dict() == {
        "added": [], "removed": [], "changed": [],
        "files": {"added": [], "removed": [], "changed": [{"path": "config.json", "parts": ["size", "sha256"]}]}}


def test_a_tensor_moved_to_another_shard_is_no_change(tmp_path, tensors):
    one = _model_dir(tmp_path / "one", dict(zip(("a.safetensors", "b.safetensors"), _split(tensors, 2))))
    two = _model_dir(tmp_path / "two", dict(zip(("a.safetensors", "b.safetensors"), _split(tensors, 4))))
    assert diff_tensors(one, two).identical


def test_a_tensor_name_in_two_shards_is_refused_naming_it(tmp_path, tensors):
    name = next(iter(tensors))
    model = _model_dir(tmp_path / "m", {"a.safetensors": tensors, "b.safetensors": {name: tensors[name]}})
    with pytest.raises(ModelInvalid, match=f"tensor '{name}' is in both a.safetensors and b.safetensors"):
        seal_model(model)


def test_shards_in_subdirectories_prefix_their_tensor_names(tmp_path, tensors):
    model = _model_dir(tmp_path / "pipe", {"unet/m.safetensors": tensors, "text_encoder/m.safetensors": tensors})
    names = [leaf.name for leaf in seal_model(model).tensors.leaves]
    assert names == sorted([f"text_encoder/{n}" for n in tensors] + [f"unet/{n}" for n in tensors])


@pytest.fixture
def sharded(tmp_path, tensors):
    first, second = _split(tensors, 3)
    model = _model_dir(tmp_path / "m", {"model-00001-of-00002.safetensors": first,
                                        "model-00002-of-00002.safetensors": second}, {"config.json": b"{}"})
    weight_map = {n: "model-00001-of-00002.safetensors" for n in first} | {
        n: "model-00002-of-00002.safetensors" for n in second}
    return model, weight_map, list(first), list(second)


def test_an_index_that_agrees_is_checked_but_not_sealed(sharded):
    model, weight_map, _, _ = sharded
    _index(model, weight_map)
    sealed = seal_model(model)
    assert [f.path for f in sealed.files.leaves] == ["config.json"]


def test_an_index_mapping_a_tensor_to_the_wrong_shard_is_refused_naming_it(sharded):
    model, weight_map, first, _ = sharded
    _index(model, weight_map | {first[0]: "model-00002-of-00002.safetensors"})
    with pytest.raises(ModelInvalid, match=f"maps tensor '{first[0]}' to model-00002-of-00002.safetensors, "
                                           "but it is in model-00001-of-00002.safetensors"):
        seal_model(model)


def test_an_index_missing_a_tensor_is_refused_naming_it(sharded):
    model, weight_map, _, second = sharded
    del weight_map[second[-1]]
    _index(model, weight_map)
    with pytest.raises(ModelInvalid, match=f"tensor '{second[-1]}' of model-00002-of-00002.safetensors is "
                                           "missing from the weight_map"):
        seal_model(model)


def test_an_index_naming_a_tensor_no_shard_holds_is_refused(sharded):
    model, weight_map, _, _ = sharded
    _index(model, weight_map | {"ghost.weight": "model-00001-of-00002.safetensors"})
    with pytest.raises(ModelInvalid, match="maps tensor 'ghost.weight' to model-00001-of-00002.safetensors, "
                                           "but no shard holds it"):
        seal_model(model)


def test_an_index_naming_a_missing_or_escaping_shard_is_refused(sharded):
    model, weight_map, first, _ = sharded
    _index(model, weight_map | {first[0]: "model-00003-of-00003.safetensors"})
    with pytest.raises(ModelInvalid, match="model-00003-of-00003.safetensors, which is not a safetensors file"):
        seal_model(model)
    _index(model, weight_map | {first[0]: "../model-00001-of-00002.safetensors"})
    with pytest.raises(ModelInvalid, match="outside the model directory"):
        seal_model(model)


def test_a_shard_the_index_leaves_out_is_refused(sharded, tensors):
    model, weight_map, _, _ = sharded
    _index(model, weight_map)
    (model / "model-00003-of-00003.safetensors").write_bytes(safetensors_bytes({"extra": ("F32", [1], bytes(4))}))
    with pytest.raises(ModelInvalid, match="maps no tensor to model-00003-of-00003.safetensors"):
        seal_model(model)


def test_an_index_that_is_not_json_is_refused(sharded):
    model, _, _, _ = sharded
    (model / "model.safetensors.index.json").write_text("{not json")
    with pytest.raises(ModelInvalid, match="index model.safetensors.index.json is not UTF-8 JSON"):
        seal_model(model)


def test_a_pickle_passed_as_a_model_gets_an_error_saying_how_to_convert_it(tmp_path):
    import torch

    torch.save({"w": torch.zeros(3)}, tmp_path / "pytorch_model.bin")
    with pytest.raises(CheckpointInvalid, match=r"pytorch_model.bin is a pickle .*safetensors.torch.save_file"):
        seal_model(tmp_path / "pytorch_model.bin")
    torch.save({"w": torch.zeros(3)}, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointInvalid, match="legacy.pt is a pickle"):
        seal_model(tmp_path / "legacy.pt")


def test_a_directory_whose_weights_are_a_pickle_says_so(tmp_path):
    import torch

    model = _model_dir(tmp_path / "m", {}, {"config.json": b"{}"})
    torch.save({"w": torch.zeros(3)}, model / "pytorch_model.bin")
    with pytest.raises(ModelInvalid, match="its weights pytorch_model.bin are a pickle.*safetensors.torch.save_file"):
        seal_model(model)


def test_a_directory_without_weights_is_refused(tmp_path):
    model = _model_dir(tmp_path / "m", {}, {"config.json": b"{}"})
    with pytest.raises(ModelInvalid, match="holds no \\*.safetensors file"):
        seal_model(model)


def test_a_broken_shard_is_refused_naming_it(tmp_path, tensors):
    model = _model_dir(tmp_path / "m", {"a.safetensors": tensors}, {"b.safetensors": b""})
    with pytest.raises(CheckpointInvalid, match="b.safetensors: file is 0 bytes"):
        seal_model(model)


def test_a_symlink_is_refused_unless_following_is_asked(tmp_path, tensors):
    model = _model_dir(tmp_path / "m", {"model.safetensors": tensors})
    (tmp_path / "config.json").write_bytes(b"{}")
    (model / "config.json").symlink_to(tmp_path / "config.json")
    with pytest.raises(SymlinkRefused, match="'config.json' is a symbolic link, and links are followed only when asked to follow them$"):
        seal_model(model)
    copy = _model_dir(tmp_path / "copy", {"model.safetensors": tensors}, {"config.json": b"{}"})
    assert seal_model(model, follow_symlinks=True) == seal_model(copy)


def test_a_hugging_face_cache_snapshot_seals_with_followed_links(tmp_path):
    real = save_tiny_gpt2(tmp_path / "real", max_shard_size="20KB")
    snapshot = tmp_path / "hub" / "models--tiny" / "snapshots" / "abc123"
    blobs = tmp_path / "hub" / "models--tiny" / "blobs"
    snapshot.mkdir(parents=True)
    blobs.mkdir()
    for path in real.iterdir():
        blob = blobs / hashlib.sha256(path.read_bytes()).hexdigest()
        blob.write_bytes(path.read_bytes())
        (snapshot / path.name).symlink_to(os.path.relpath(blob, snapshot))
    assert seal_model(snapshot, follow_symlinks=True) == seal_model(real)


def test_a_dangling_link_and_a_link_loop_are_refused(tmp_path, tensors):
    model = _model_dir(tmp_path / "m", {"model.safetensors": tensors})
    (model / "gone").symlink_to(tmp_path / "nothing")
    with pytest.raises(ModelInvalid, match="'gone' is a symbolic link to .*which does not exist"):
        seal_model(model, follow_symlinks=True)
    (model / "gone").unlink()
    (model / "sub").mkdir()
    (model / "sub" / "up").symlink_to(model)
    with pytest.raises(ModelInvalid, match="'sub/up' links back to a directory that contains it"):
        seal_model(model, follow_symlinks=True)


def test_a_special_file_is_refused(tmp_path, tensors):
    model = _model_dir(tmp_path / "m", {"model.safetensors": tensors})
    os.mkfifo(model / "pipe")
    with pytest.raises(ModelInvalid, match="'pipe' is not a regular file"):
        seal_model(model)


def test_a_name_that_is_not_utf8_is_refused(tmp_path, tensors):
    model = _model_dir(tmp_path / "m", {"model.safetensors": tensors})
    (model / os.fsdecode(b"bad\xff")).write_bytes(b"x")
    with pytest.raises(ModelInvalid, match="is not valid UTF-8"):
        seal_model(model)


def test_nested_unicode_and_empty_files_are_leaves_by_their_posix_path(tmp_path, tensors):
    files = {"a/b/c/deep.txt": b"deep", "données/名前 🙂.json": b"{}", "zero": b"", ".hidden": b"h"}
    sealed = seal_model(_model_dir(tmp_path / "m", {"model.safetensors": tensors}, files))
    assert [(f.path, f.size) for f in sealed.files.leaves] == sorted((n, len(d)) for n, d in files.items())


def test_a_directory_of_a_thousand_small_files_seals_every_one(tmp_path, tensors):
    files = {f"tok/{i:04d}.txt": str(i).encode() for i in range(1000)}
    sealed = seal_model(_model_dir(tmp_path / "m", {"model.safetensors": tensors}, files))
    assert len(sealed.files.leaves) == 1000 and sealed.files.leaf("tok/0999.txt").sha256 == _sha(b"999")


def test_a_model_manifest_records_the_files_and_checks_their_root(tmp_path, tensors):
    model = _model_dir(tmp_path / "m", {"model.safetensors": tensors}, {"config.json": b"{}"})
    sealed = seal_model(model)
    manifest = json.loads(canonical_json(checkpoint_manifest(sealed)))
    assert manifest["files"]["root"] == sealed.files_root
    assert load_model(manifest)[1] == sealed
    manifest["files"]["leaves"][0]["size"] = 3
    with pytest.raises(ManifestInvalid, match="but its file leaves give"):
        load_model(manifest)


def test_a_single_file_manifest_has_no_files_key(tmp_path, tensors):
    path = tmp_path / "m.safetensors"
    path.write_bytes(safetensors_bytes(tensors))
    manifest = checkpoint_manifest(seal_model(path))
    assert "files" not in manifest and load_model(manifest)[1].files_root is None
