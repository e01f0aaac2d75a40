"""What verify and the background committer say: names not ids, "directory" for directories, the version a
file actually is, roots by their names in --json, and who committed the same weights earlier."""

import json
import logging

import numpy as np
import pytest
from safetensors.numpy import save_file

import modelreg
from modelreg.formats.model import seal_model
from modelreg.service.background import BackgroundCommitter

pytestmark = pytest.mark.slow  # one devnet: about 8 s


def _weights(path, seed):
    save_file({"w": np.random.default_rng(seed).standard_normal((4, 4), dtype=np.float32)}, str(path))
    return path


def test_verify_names_the_kind_the_model_and_the_version_the_file_actually_is(modelreg, tmp_path):
    one, two = _weights(tmp_path / "one.safetensors", 1), _weights(tmp_path / "two.safetensors", 2)
    directory = tmp_path / "dir"
    directory.mkdir()
    _weights(directory / "model.safetensors", 3)
    (directory / "config.json").write_text("{}")
    for path in (one, two, directory):
        modelreg("commit", path, "--model", "msgs")
    assert modelreg("verify", directory, "--model", "msgs").output.startswith(
        "VERIFIED: the directory is msgs version 3 (root 0x")
    wrong = modelreg("verify", one, "--model", "msgs", "--version", "2", expect=1).output
    assert wrong.startswith("MISMATCH: the file (root 0x") and "  it is version 1 of 'msgs', not version 2\n" in wrong
    verdict = json.loads(modelreg("verify", one, "--model", "msgs", "--version", "2", "--json", expect=1).output)
    assert (verdict["model"], verdict["kind"], verdict["actual_version"]) == ("msgs", "file", 1)
    assert verdict["tensors_root"] == seal_model(one).root and verdict["files_root"] is None
    assert verdict["chain_files_root"] is None  # no files root: null at the JSON edge, never the zero root
    stranger = modelreg("verify", _weights(tmp_path / "x.safetensors", 9), "--model", "msgs", expect=1).output
    assert "matches no version of model 'msgs'; compared with version 3" in stranger


def test_verify_says_when_another_model_and_account_committed_the_weights_earlier(modelreg, tmp_path):
    original = _weights(tmp_path / "w.safetensors", 4)
    modelreg("commit", original, "--model", "orig")
    modelreg("commit", original, "--model", "copycat", "--dev-account", "1")
    said = modelreg("verify", original, "--model", "copycat").output
    first = json.loads(modelreg("audit", "find-root", seal_model(original).root, "--json").output)[0]
    assert (f"  also committed earlier by model orig (version 1, account {first['committer']}, block "
            f"{first['block']}): `modelreg audit find-root") in said
    assert "also committed earlier" not in modelreg("verify", original, "--model", "orig").output


def test_the_background_committer_logs_one_line_per_commit(tmp_path, caplog):
    registry = modelreg.connect(tmp_path / "home")
    try:
        with caplog.at_level(logging.INFO, logger="modelreg"), \
                BackgroundCommitter("logged", journal=tmp_path / "j.jsonl", registry=registry) as committer:
            for step in (1, 2):
                committer.submit(_weights(tmp_path / f"s{step}.safetensors", step), step=step)
        lines = [r.getMessage() for r in caplog.records if r.name == "modelreg.service.background"]
        assert [line.split(" (")[0] for line in lines] == ["modelreg: committed logged version 1",
                                                           "modelreg: committed logged version 2"]
        assert f"step 2, weights root {committer.commits[1].root}" in lines[1]
    finally:
        from modelreg.devnet import manager

        manager.down(tmp_path / "home")


def test_json_says_model_id_and_null_for_no_files_root_and_text_says_none(modelreg, tmp_path):
    """A model's id is `model_id` in every JSON output, and a version with no files root has
    `files_root: null` there, never the contract's zero root; the text says "none"."""
    one = _weights(tmp_path / "one.safetensors", 1)
    modelreg("commit", one, "--model", "nulls")
    history = json.loads(modelreg("audit", "history", "nulls", "--json").output)
    assert [(v["model_id"], v["files_root"]) for v in history] == [(1, None)] and "model" not in history[0]
    shown = json.loads(modelreg("audit", "show", "nulls", "1", "--json").output)
    assert (shown["model_id"], shown["files_root"]) == (1, None)
    (found,) = json.loads(modelreg("audit", "find-root", seal_model(one).root, "--json").output)
    assert (found["model_id"], found["name"]) == (1, "nulls") and "model" not in found
    report = json.loads(modelreg("audit", "report", "nulls", "--format", "json").output)
    assert [(v["model_id"], v["files_root"]) for v in report["versions"]] == [(1, None)]
    assert "0x" + "00" * 32 not in json.dumps([history, shown, found, report])
    # The same tensors with a config beside them: the files differ, and the chain's are "none".
    directory = tmp_path / "dir"
    directory.mkdir()
    _weights(directory / "model.safetensors", 1)
    (directory / "config.json").write_text("{}")
    said = modelreg("verify", directory, "--model", "nulls", "--version", "1", expect=1).output
    assert said.startswith(f"MISMATCH: the directory has the tensors of nulls version 1 but not its files "
                           f"(files root {seal_model(directory).files_root}, on-chain none)")
