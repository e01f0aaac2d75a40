"""`modelreg commit`, `modelreg dataset register` and `verify` of directories, as a user types them."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from modelreg.formats.manifest import load_model
from modelreg.formats.model import seal_model
from tests.hf import save_tiny_gpt2

pytestmark = pytest.mark.slow


@pytest.fixture
def model_dir(tmp_path):
    model = save_tiny_gpt2(tmp_path / "gpt2", max_shard_size="20KB")
    (model / "tokenizer.json").write_text('{"version": "1.0"}')
    return model


def test_commit_of_a_directory_prints_the_version_and_again_prints_the_existing_one(modelreg, model_dir):
    result = modelreg("commit", model_dir, "--model", "cli-gpt2")
    assert result.output.startswith(f"Committed {model_dir} as cli-gpt2 version 1, 1/0 confirmations\n")
    sealed = seal_model(model_dir)
    assert f"weights root  {sealed.root} ({sealed.tensor_count} tensors)\n" in result.output
    assert f"files root    {sealed.files_root}\n" in result.output
    again = modelreg("commit", model_dir, "--model", "cli-gpt2")
    assert again.output == (f"cli-gpt2 already holds this model as version 1 (weights root "
                            f"{seal_model(model_dir).root}); nothing new committed\n")


def test_commit_records_dataset_parent_metrics_and_note(modelreg, model_dir, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.txt").write_text("alpha")
    registered = json.loads(modelreg("dataset", "register", data, "--json").output)
    first = json.loads(modelreg("commit", model_dir, "--model", "cli-lineage", "--json").output)
    (model_dir / "README.md").write_text("# fine-tuned")
    second = json.loads(modelreg("commit", model_dir, "--model", "cli-lineage", "--dataset", registered["root"],
                                 "--parent", "cli-lineage:1", "--metric", "eval_loss=2.25",
                                 "--metric", "accuracy=0.5", "--note", "more data", "--json").output)
    assert second["version"] == 2
    manifest, _ = load_model(_cat(modelreg, second["manifest_cid"], tmp_path / "manifest.json"))
    assert manifest["parent"] == {"model_id": first["model_id"], "version": 1}
    assert manifest["dataset_root"] == registered["root"] and manifest["note"] == "more data"
    assert manifest["metrics"] == {"eval_loss": 2.25, "accuracy": 0.5}
    history = json.loads(modelreg("audit", "history", "cli-lineage", "--json").output)
    assert [v["dataset_root"] for v in history] == [None, registered["root"]]


def _cat(modelreg, cid: str, path) -> bytes:
    modelreg("ipfs", "get", cid, "-o", path)
    return path.read_bytes()


def test_commit_with_a_dataset_directory_registers_it_first(modelreg, model_dir, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "b.txt").write_text("beta")
    commit = json.loads(modelreg("commit", model_dir, "--model", "cli-data", "--dataset", data, "--json").output)
    history = json.loads(modelreg("audit", "history", "cli-data", "--json").output)
    root = json.loads(modelreg("dataset", "seal", data, "--json").output)["root"]
    assert commit["version"] == 1 and history[0]["dataset_root"] == root


def test_verify_a_directory_a_resharded_copy_and_its_cid(modelreg, model_dir, tmp_path):
    commit = json.loads(modelreg("commit", model_dir, "--model", "cli-verify", "--json").output)
    result = modelreg("verify", model_dir, "--model", "cli-verify")
    assert result.output.startswith("VERIFIED: the directory is cli-verify version 1")
    resharded = save_tiny_gpt2(tmp_path / "resharded", max_shard_size="100KB")
    shutil.copy(model_dir / "tokenizer.json", resharded)
    modelreg("verify", resharded, "--model", "cli-verify")
    by_cid = json.loads(modelreg("verify", commit["checkpoint_cid"], "--model", "cli-verify", "--json").output)
    assert by_cid["status"] == "VERIFIED"
    proven = modelreg("verify", model_dir, "--model", "cli-verify", "--file", "config.json")
    assert "  file config.json: proven on-chain\n" in proven.output


def test_verify_of_a_directory_with_a_changed_config_names_config_json(modelreg, model_dir):
    modelreg("commit", model_dir, "--model", "cli-config")
    config = json.loads((model_dir / "config.json").read_text())
    (model_dir / "config.json").write_text(json.dumps({**config, "n_embd": 64}))
    result = modelreg("verify", model_dir, "--model", "cli-config", expect=1)
    assert result.output.startswith("MISMATCH: the directory has the tensors of cli-config version 1 but not "
                                    "its files")
    assert "  changed file: config.json (size, sha256)\n" in result.output


def test_dataset_register_twice_gives_the_same_root(modelreg, tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.txt").write_text("x")
    first = modelreg("dataset", "register", tmp_path / "d")
    assert first.output.startswith("Registered dataset 0x") and "files     1" in first.output
    assert modelreg("dataset", "register", tmp_path / "d").output == first.output


def test_commit_refuses_bad_input_with_one_error_line(modelreg, model_dir, tmp_path):
    torch.save({"w": torch.zeros(2)}, tmp_path / "pytorch_model.bin")
    pickle = modelreg("commit", tmp_path / "pytorch_model.bin", "--model", "cli-bad", expect=2)
    assert pickle.output.startswith("Error: ") and "is a pickle" in pickle.output
    assert "safetensors.torch.save_file" in pickle.output
    link = tmp_path / "linked"
    link.mkdir()
    save_file({"w": torch.zeros(2)}, tmp_path / "w.safetensors")
    (link / "model.safetensors").symlink_to(tmp_path / "w.safetensors")
    refused = modelreg("commit", link, "--model", "cli-bad", expect=2)
    assert refused.output.startswith("Error: ") and "model.safetensors' is a symbolic link" in refused.output
    assert refused.output.endswith("pass --follow-symlinks to follow links\n")
    modelreg("commit", link, "--model", "cli-bad", "--follow-symlinks")
    metric = modelreg("commit", model_dir, "--model", "cli-bad", "--metric", "loss", expect=2)
    assert "'loss' is not name=value" in metric.output
    parent = modelreg("commit", model_dir, "--model", "cli-bad", "--parent", "one", expect=2)
    assert "'one' is not V or MODEL:V" in parent.output
    dataset = modelreg("commit", model_dir, "--model", "cli-bad", "--dataset", tmp_path / "nowhere", expect=2)
    assert "is neither a directory nor a dataset root" in dataset.output


def test_seal_and_diff_take_the_cid_of_a_committed_directory(modelreg, model_dir):
    commit = json.loads(modelreg("commit", model_dir, "--model", "cli-cid", "--json").output)
    cid = commit["checkpoint_cid"]
    sealed = json.loads(modelreg("seal", cid, "--json").output)
    assert (sealed["root"], sealed["files"]["root"]) == (seal_model(model_dir).root, seal_model(model_dir).files_root)
    modelreg("diff", model_dir, cid)
    (model_dir / "config.json").write_text("{}")
    changed = modelreg("diff", cid, model_dir, expect=1)
    assert "file config.json" in changed.output


def test_a_hugging_face_cache_snapshot_commits_with_follow_symlinks(modelreg, model_dir, tmp_path):
    snapshot = tmp_path / "hub" / "models--tiny" / "snapshots" / "abc123"
    blobs = tmp_path / "hub" / "models--tiny" / "blobs"
    snapshot.mkdir(parents=True)
    blobs.mkdir()
    for path in model_dir.iterdir():
        blob = blobs / path.name.replace(".", "-")
        blob.write_bytes(path.read_bytes())
        (snapshot / path.name).symlink_to(Path("..") / ".." / "blobs" / blob.name)
    modelreg("commit", snapshot, "--model", "cli-snapshot", expect=2)
    commit = json.loads(modelreg("commit", snapshot, "--model", "cli-snapshot", "--follow-symlinks", "--json").output)
    assert commit["root"] == seal_model(model_dir).root
    modelreg("verify", model_dir, "--model", "cli-snapshot")
