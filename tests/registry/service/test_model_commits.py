"""Committing and verifying model directories through the API, on the embedded devnet and IPFS store."""

import json
import shutil

import pytest

import modelreg
from modelreg.errors import ModelInvalid
from modelreg.formats.manifest import load_model
from modelreg.formats.model import seal_model
from modelreg.service.verify import MISMATCH, VERIFIED
from tests.hf import save_tiny_gpt2


@pytest.fixture(scope="module")
def committed(registry, tmp_path_factory):
    """A sharded tiny GPT-2 directory committed as version 1 of `gpt2-dir`."""
    model = save_tiny_gpt2(tmp_path_factory.mktemp("gpt2") / "m", max_shard_size="20KB")
    (model / "tokenizer_config.json").write_text('{"model_max_length": 64}')
    return model, registry.commit(model, "gpt2-dir", metrics={"eval_loss": 4.5}, note="first cut")


def test_a_directory_commits_its_weights_root_tensor_count_and_files_root(registry, committed):
    model, commit = committed
    sealed = seal_model(model)
    record = registry.client.get_version(commit.model_id, commit.version)
    assert (record.weights_root, record.tensor_count, record.files_root) == (
        sealed.root, sealed.tensor_count, sealed.files_root)
    manifest, from_manifest = load_model(registry.ipfs.cat(commit.manifest_cid))
    assert from_manifest == sealed and manifest["note"] == "first cut"
    assert manifest["metrics"] == {"eval_loss": 4.5}


def test_a_directory_is_pinned_as_the_unixfs_directory_kubo_would_give(registry, committed):
    model, commit = committed
    assert commit.checkpoint_cid == registry.ipfs.cid_of(model)
    names = sorted(entry.name for entry in registry.ipfs.ls(commit.checkpoint_cid))
    assert names == sorted(p.name for p in model.iterdir())


def test_the_same_directory_and_a_resharded_copy_verify(registry, committed, tmp_path):
    model, commit = committed
    assert registry.verify(str(model), "gpt2-dir").status == VERIFIED
    resharded = save_tiny_gpt2(tmp_path / "r", max_shard_size="100KB")
    shutil.copy(model / "tokenizer_config.json", resharded)
    verdict = registry.verify(str(resharded), "gpt2-dir")
    assert verdict.ok and verdict.version == commit.version


def test_a_changed_config_is_a_mismatch_naming_config_json_though_every_tensor_matches(registry, committed,
                                                                                     tmp_path):
    model, commit = committed
    changed = tmp_path / "changed"
    shutil.copytree(model, changed)
    config = json.loads((changed / "config.json").read_text())
    (changed / "config.json").write_text(json.dumps({**config, "n_positions": 32}))
    verdict = registry.verify(str(changed), "gpt2-dir")
    assert verdict.status == MISMATCH and verdict.version == commit.version
    assert verdict.file_root == verdict.chain_root and verdict.files_root != verdict.chain_files_root
    assert verdict.differences["files"] == {"added": [], "removed": [], "changed": {"config.json": ["size", "sha256"]}}
    assert verdict.differences["changed"] == {} and "files do not" in verdict.note


def test_a_directory_cid_verifies_after_it_is_fetched(registry, committed):
    _, commit = committed
    verdict = registry.verify(commit.checkpoint_cid, "gpt2-dir")
    assert verdict.ok and verdict.files_root is not None


def test_committing_the_same_directory_again_returns_the_existing_version(registry, committed):
    model, commit = committed
    again = registry.commit(model, "gpt2-dir")
    assert again.existing and (again.version, again.tx) == (commit.version, commit.tx)


def test_the_same_weights_with_other_files_are_a_new_version(registry, committed, tmp_path):
    model, commit = committed
    other = tmp_path / "other"
    shutil.copytree(model, other)
    (other / "README.md").write_text("# model card")
    second = registry.commit(other, "gpt2-dir", parent=commit.version)
    assert not second.existing and second.version == commit.version + 1
    assert registry.verify(str(other), "gpt2-dir").version == second.version
    assert registry.verify(str(model), "gpt2-dir").version == commit.version


def test_a_lying_index_is_refused_before_anything_is_committed(registry, tmp_path):
    model = save_tiny_gpt2(tmp_path / "m", max_shard_size="20KB")
    index = json.loads((model / "model.safetensors.index.json").read_text())
    name = sorted(index["weight_map"])[0]
    index["weight_map"][name] = "model-00008-of-00008.safetensors"
    (model / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ModelInvalid, match=f"maps tensor '{name}' to model-00008-of-00008.safetensors"):
        registry.commit(model, "gpt2-liar")
    assert not [m for m in registry.events() if m["event"] == "ModelRegistered"
                and m["args"]["name"] == "gpt2-liar"]


def test_a_single_file_commits_a_zero_files_root(registry, tmp_path):
    model = save_tiny_gpt2(tmp_path / "single")
    commit = registry.commit(model / "model.safetensors", "gpt2-file")
    assert registry.client.get_version(commit.model_id, commit.version).files_root is None
    assert registry.verify(str(model / "model.safetensors"), "gpt2-file").ok


def test_a_file_and_a_tensor_of_a_directory_are_proven_on_chain(registry, committed):
    model, _ = committed
    verdict = registry.verify(str(model), "gpt2-dir", files=("config.json", "tokenizer_config.json"),
                              tensors=("transformer.wte.weight",))
    assert verdict.ok and verdict.file_proofs == {"config.json": True, "tokenizer_config.json": True}
    assert verdict.tensor_proofs == {"transformer.wte.weight": True}
    with pytest.raises(modelreg.InputInvalid, match="no file 'missing.json'"):
        registry.verify(str(model), "gpt2-dir", files=("missing.json",))


def test_a_single_file_has_no_file_to_prove(registry, tmp_path):
    model = save_tiny_gpt2(tmp_path / "single")
    registry.commit(model / "model.safetensors", "gpt2-one-file")
    with pytest.raises(modelreg.InputInvalid, match="has no files tree"):
        registry.verify(str(model / "model.safetensors"), "gpt2-one-file", files=("config.json",))


@pytest.mark.slow
def test_nested_unicode_empty_and_a_thousand_small_files_commit_and_verify_by_cid(registry, tmp_path):
    model = save_tiny_gpt2(tmp_path / "odd")
    (model / "a" / "b" / "c").mkdir(parents=True)
    (model / "a" / "b" / "c" / "deep.txt").write_text("deep")
    (model / "données 名前 🙂.json").write_text("{}")
    (model / "empty").write_bytes(b"")
    (model / "vocab").mkdir()
    for i in range(1000):
        (model / "vocab" / f"{i:04d}.txt").write_text(str(i))
    commit = registry.commit(model, "gpt2-odd")
    sealed = seal_model(model)
    assert len(sealed.files.leaves) == 1005 and sealed.files.leaf("empty").size == 0
    verdict = registry.verify(commit.checkpoint_cid, "gpt2-odd", files=("données 名前 🙂.json", "a/b/c/deep.txt"))
    assert verdict.ok and verdict.files_root == sealed.files_root
