"""The public Python API: `modelreg.seal`, `modelreg.connect` and a registry's commit, verify and history."""

import subprocess
import sys

import numpy as np
import pytest
from safetensors.numpy import save_file

import modelreg
from modelreg.formats.manifest import load_model
from tests.registry.service.conftest import connected_registry, module_home  # noqa: F401  (the fixtures)


def _checkpoint(path, value: float):
    save_file({"w": np.full((4, 4), value, dtype=np.float32), "b": np.zeros(4, dtype=np.float32)}, str(path))
    return path


def test_seal_gives_the_weights_root_and_a_proof_per_tensor(tmp_path):
    sealed = modelreg.seal(_checkpoint(tmp_path / "a.safetensors", 1.0))
    assert sealed.root.startswith("0x") and len(sealed.root) == 66
    assert sorted(leaf.name for leaf in sealed.tensors.leaves) == ["b", "w"] and sealed.files is None
    assert modelreg.seal(_checkpoint(tmp_path / "b.safetensors", 2.0)).root != sealed.root


def test_commit_then_verify_then_history_through_the_api(registry, tmp_path):
    first = registry.commit(_checkpoint(tmp_path / "1.safetensors", 1.0), "api-model", step=10,
                            metrics={"val_loss": 2.5})
    second = registry.commit(_checkpoint(tmp_path / "2.safetensors", 2.0), "api-model", parent=first.version)
    assert (first.version, second.version) == (1, 2)
    assert second.ref == modelreg.VersionRef(first.model_id, 2)
    assert registry.verify(str(tmp_path / "2.safetensors"), "api-model").ok
    versions = registry.history("api-model")
    assert [v["parent"] for v in versions] == [None, {"model_id": first.model_id, "version": 1}]
    assert [v["weights_root"] for v in versions] == [first.root, second.root]


def test_commit_records_the_code_revision_given(registry, tmp_path):
    commit = registry.commit(_checkpoint(tmp_path / "r.safetensors", 4.0), "api-revision", code_revision="abc1234")
    assert load_model(registry.ipfs.cat(commit.manifest_cid))[0]["code_revision"] == "abc1234"


def test_committing_weights_the_model_already_holds_returns_that_version(registry, tmp_path):
    path = _checkpoint(tmp_path / "same.safetensors", 7.0)
    original = registry.commit(path, "api-dupes")
    again = registry.commit(path, "api-dupes")
    assert again.existing and not original.existing
    assert (again.version, again.tx) == (original.version, original.tx)
    assert len(registry.history("api-dupes")) == 1


def test_verify_names_the_tensor_that_differs(registry, tmp_path):
    registry.commit(_checkpoint(tmp_path / "v.safetensors", 3.0), "api-verify")
    save_file({"w": np.full((4, 4), 3.0, dtype=np.float32), "b": np.ones(4, dtype=np.float32)},
              str(tmp_path / "tampered.safetensors"))
    verdict = registry.verify(str(tmp_path / "tampered.safetensors"), "api-verify", version=1)
    assert not verdict.ok
    assert "b" in str(verdict.to_dict())


def test_an_unknown_setting_is_refused_by_name(tmp_path):
    with pytest.raises(modelreg.ConfigInvalid, match="unknown setting.*rpc_uri"):
        modelreg.connect(tmp_path, rpc_uri="http://127.0.0.1:1")


def test_the_card_folders_are_not_importable_by_their_bare_names(tmp_path):
    code = ("import importlib, modelreg, modelreg.cli, modelreg.training, modelreg.contracts, modelreg.devnet\n"
            "for name in ('registry', 'cli', 'training', 'contracts', 'devnet'):\n"
            "    try:\n        importlib.import_module(name)\n    except ImportError:\n        continue\n"
            "    raise SystemExit(f'{name} is importable')\n")
    # From a folder outside the checkout, as an installed user runs it.
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_python_dash_m_modelreg_cli_runs_the_command(tmp_path):
    result = subprocess.run([sys.executable, "-m", "modelreg.cli", "--help"], cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 0 and "Usage: modelreg" in result.stdout


def test_no_files_root_is_none_and_a_model_is_model_id_everywhere_in_the_api(registry, tmp_path):
    """One spelling of "no files root" (None, never the contract's zero) and of a model's id (`model_id`)."""
    path = _checkpoint(tmp_path / "single.safetensors", 5.0)
    assert modelreg.seal(path).files_root is None
    commit = registry.commit(path, "api-none")
    assert commit.files_root is None and commit.to_dict()["files_root"] is None
    verification = registry.verify(str(path), "api-none")
    assert verification.ok and (verification.files_root, verification.chain_files_root) == (None, None)
    assert (verification.to_dict()["files_root"], verification.to_dict()["chain_files_root"]) == (None, None)
    assert registry.client.get_version(commit.model_id, commit.version).files_root is None
    (version,) = registry.history("api-none")
    assert version["model_id"] == commit.model_id and "model" not in version and version["files_root"] is None
