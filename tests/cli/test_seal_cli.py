"""The seal, dataset seal and diff commands, through a root group that turns errors into `Error:` lines."""

import json
import random

import click
import pytest
from click.testing import CliRunner

from modelreg.cli.main import Group
from modelreg.cli.seal import dataset, diff, seal
from modelreg.formats.manifest import load_manifest
from tests.registry.formats.seal_helpers import random_tensors, safetensors_bytes


@click.group(cls=Group)
def root():
    """modelreg, with only the sealing commands."""


for command in (seal, dataset, diff):
    root.add_command(command)


def _run(*args):
    return CliRunner().invoke(root, list(map(str, args)), obj={"home_flag": None})


@pytest.fixture
def checkpoint(tmp_path):
    path = tmp_path / "m.safetensors"
    path.write_bytes(safetensors_bytes(random_tensors(random.Random(13), 5)))
    return path


def test_every_command_has_help_text():
    for command in (seal, dataset, diff, dataset.commands["seal"]):
        assert command.help and len(command.help) > 20


def test_seal_prints_the_root_and_tensor_count(checkpoint):
    result = _run("seal", checkpoint)
    assert result.exit_code == 0
    manifest = json.loads(_run("seal", checkpoint, "--json").output)
    assert f"root        {manifest['root']}" in result.output and "tensors     5" in result.output


def test_seal_json_prints_a_manifest_that_loads(checkpoint):
    result = _run("seal", checkpoint, "--json")
    assert result.exit_code == 0
    manifest = load_manifest(result.output.encode())
    assert manifest["format"] == "modelreg-tensors-v1" and len(manifest["leaves"]) == 5


def test_seal_of_a_malformed_file_is_one_error_line_with_exit_code_2(tmp_path):
    (tmp_path / "bad.safetensors").write_bytes(b"\x05\x00")
    result = _run("seal", tmp_path / "bad.safetensors")
    assert result.exit_code == 2
    assert result.output == (f"Error: {tmp_path / 'bad.safetensors'}: file is 2 bytes, too short to hold "
                             "the 8-byte safetensors header length\n")


def test_dataset_seal_prints_the_root_and_json_manifest(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_text("alpha")
    human = _run("dataset", "seal", tmp_path / "d")
    assert human.exit_code == 0 and "files    1 (5 bytes)" in human.output
    manifest = load_manifest(_run("dataset", "seal", tmp_path / "d", "--json").output.encode())
    assert manifest["leaves"] == [{"path": "a.txt", "size": 5, "sha256": manifest["leaves"][0]["sha256"]}]
    assert f"root     {manifest['root']}" in human.output


def test_dataset_seal_refuses_a_symlink_with_one_error_line(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "link").symlink_to(tmp_path)
    result = _run("dataset", "seal", tmp_path / "d")
    assert result.exit_code == 2 and result.output.startswith("Error: dataset entry")
    assert "is a symbolic link" in result.output


def test_diff_exits_0_when_identical_and_1_listing_changes(checkpoint, tmp_path):
    assert _run("diff", checkpoint, checkpoint).exit_code == 0
    other = tmp_path / "o.safetensors"
    other.write_bytes(safetensors_bytes({"only.here": ("F32", [1], bytes(4))}))
    (tmp_path / "o.json").write_text(_run("seal", other, "--json").output)
    result = _run("diff", checkpoint, tmp_path / "o.json", "--json")
    assert result.exit_code == 1
    assert json.loads(result.output)["added"] == ["only.here"]
    human = _run("diff", checkpoint, other)
    assert human.exit_code == 1 and "only.here" in human.output and "removed" in human.output


def test_seal_of_a_model_directory_prints_both_roots(tmp_path, checkpoint):
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.safetensors").write_bytes(checkpoint.read_bytes())
    (model / "config.json").write_text("{}")
    manifest = json.loads(_run("seal", model, "--json").output)
    result = _run("seal", model)
    assert result.exit_code == 0 and f"root        {manifest['root']}" in result.output
    assert f"files root  {manifest['files']['root']}" in result.output and "files       1 (2 bytes)" in result.output


def test_a_symlink_in_a_model_directory_is_refused_naming_the_flag(tmp_path, checkpoint):
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.safetensors").symlink_to(checkpoint)
    result = _run("seal", model)
    assert result.exit_code == 2
    assert result.output == ("Error: model entry 'model.safetensors' is a symbolic link, and links are followed "
                             "only when asked to follow them; pass --follow-symlinks to follow links\n")
    followed = _run("seal", model, "--follow-symlinks", "--json")
    assert followed.exit_code == 0 and json.loads(followed.output)["root"] == json.loads(
        _run("seal", checkpoint, "--json").output)["root"]


def test_a_pickle_is_refused_with_how_to_convert_it(tmp_path):
    import torch

    torch.save({"w": torch.zeros(2)}, tmp_path / "pytorch_model.bin")
    result = _run("seal", tmp_path / "pytorch_model.bin")
    assert result.exit_code == 2 and "is a pickle" in result.output
    assert "convert it with safetensors.torch.save_file" in result.output and "header length" not in result.output


def test_diff_of_two_directories_names_a_changed_file(tmp_path, checkpoint):
    for name, config in (("a", "{}"), ("b", '{"x": 1}')):
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.safetensors").write_bytes(checkpoint.read_bytes())
        (tmp_path / name / "config.json").write_text(config)
    result = _run("diff", tmp_path / "a", tmp_path / "b")
    assert result.exit_code == 1 and "file config.json" in result.output and "size, sha256" in result.output
