"""Nothing is written before every check passes: a bad parent, dataset or signer leaves the chain,
the pins and the data directory as they were, at every entry point of a commit."""

import types
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from safetensors.numpy import save_file

import modelreg
from modelreg.cli.main import cli
from modelreg.errors import AccessDenied, DatasetNotFound, ModelNameInvalid, ParentNotFound
from modelreg.formats.seal import seal_dataset
from modelreg.records import VersionRef
from modelreg.service.background import BackgroundCommitter

pytestmark = pytest.mark.slow  # one devnet for the module: about 10 s


@pytest.fixture(scope="module")
def registry(registry, tmp_path_factory):
    """The conftest's registry, holding a model `base` with one version."""
    registry.commit(_weights(tmp_path_factory.mktemp("base") / "w.safetensors", 0), "base")
    return registry


def _weights(path: Path, seed: int) -> Path:
    save_file({"w": np.random.default_rng(seed).standard_normal((4, 4), dtype=np.float32)}, str(path))
    return path


def _state(registry, home: Path) -> dict:
    """What a commit writes: blocks, the models and versions on-chain, pins, and files in the data directory."""
    files = sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file()
                   and p.relative_to(home).parts[0] not in ("devnet", "index") and not p.name.endswith(".lock"))
    return {"block": registry.client.w3.eth.block_number, "models": registry.client.model_count(),
            "pins": sorted(registry.ipfs.pins()), "files": files}


@pytest.fixture
def unchanged(registry, home):
    before = _state(registry, home)
    yield
    assert _state(registry, home) == before


@pytest.fixture
def data(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.txt").write_text("to be or not to be")
    return data


def test_registry_commit_of_a_new_model_with_a_parent_registers_nothing(registry, tmp_path, data, unchanged):
    with pytest.raises(ParentNotFound, match="model 'fresh' is not registered yet, so it has no version 1"):
        registry.commit(_weights(tmp_path / "w.safetensors", 1), "fresh", parent=1, dataset=data)


def test_registry_commit_names_the_parent_model_by_name(registry, tmp_path, unchanged):
    base = registry.model_id("base")
    with pytest.raises(ParentNotFound, match=r"model 'base' has no version 7 to be the parent \(it has 1 version\)"):
        registry.commit(_weights(tmp_path / "w.safetensors", 2), "base", parent=VersionRef(base, 7))


def test_modelreg_commit_with_a_bad_parent_writes_nothing(registry, home, tmp_path, unchanged):
    with pytest.raises(ParentNotFound, match="model 'base' has no version 2"):
        modelreg.commit(_weights(tmp_path / "w.safetensors", 10), "base", home=home, parent=2)


def test_modelreg_commit_refuses_a_dataset_root_nobody_registered(registry, home, tmp_path, unchanged):
    with pytest.raises(DatasetNotFound, match="has no record by"):
        modelreg.commit(_weights(tmp_path / "w.safetensors", 3), "fresh", home=home, dataset="0x" + "ab" * 32)


def test_cli_commit_with_a_bad_parent_prints_one_error_line_and_writes_nothing(registry, home, tmp_path, data,
                                                                              unchanged):
    result = CliRunner().invoke(cli, ["--home", str(home), "commit", str(_weights(tmp_path / "w.safetensors", 4)),
                                      "--model", "fresh", "--parent", "1", "--dataset", str(data)])
    assert result.exit_code == 2
    assert result.output.count("Error:") == 1 and "is not registered yet" in result.output


def test_background_committer_with_a_bad_parent_fails_before_its_journal_exists(registry, tmp_path, data,
                                                                                 unchanged):
    journal = tmp_path / "commits.jsonl"
    with pytest.raises(ParentNotFound, match="model 'base' has no version 3"):
        BackgroundCommitter("base", journal=journal, registry=registry, dataset=data, parent=3)
    assert not journal.exists()


def test_the_trainer_callback_with_a_bad_parent_fails_as_training_begins(registry, tmp_path, unchanged):
    from modelreg.integrations.transformers import JOURNAL, RegistryCallback

    callback = RegistryCallback("fresh", registry=registry, parent=VersionRef(registry.model_id("base"), 2))
    args = types.SimpleNamespace(output_dir=str(tmp_path))  # the two fields on_train_begin reads
    with pytest.raises(ParentNotFound, match="model 'base' has no version 2"):
        callback.on_train_begin(args, types.SimpleNamespace(is_world_process_zero=True), None)
    assert not (tmp_path / JOURNAL).exists()


def test_dataset_root_still_works_but_warns_that_dataset_is_the_keyword(registry, tmp_path, data):
    registered = registry.register_dataset_dir(data)[0].root
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        c = registry.commit(_weights(tmp_path / "w.safetensors", 5), "base", dataset_root=registered)
    assert [w.category for w in caught] == [DeprecationWarning] and "dataset=" in str(caught[0].message)
    assert registry.history("base")[c.version - 1]["dataset_root"] == registered


def test_a_dataset_directory_is_registered_only_with_the_commit_that_names_it(registry, tmp_path):
    data = tmp_path / "fresh-data"
    data.mkdir()
    (data / "a.txt").write_text("alpha")
    registry.commit(_weights(tmp_path / "w.safetensors", 6), "with-data", dataset=data)
    assert registry.history("with-data")[0]["dataset_root"] == seal_dataset(data).root


def test_a_name_the_contract_would_refuse_is_refused_before_anything_is_written(registry, tmp_path, unchanged):
    with pytest.raises(ModelNameInvalid, match="use 'my-model'"):
        registry.commit(_weights(tmp_path / "w.safetensors", 7), "My Model")


def test_a_signer_that_may_not_commit_to_the_model_is_refused_before_anything_is_written(registry, home, tmp_path,
                                                                                      unchanged):
    stranger = modelreg.connect(home, dev_account=3)
    with pytest.raises(AccessDenied, match="is neither the owner .* nor a maintainer of model 'base'"):
        stranger.commit(_weights(tmp_path / "w.safetensors", 8), "base")
