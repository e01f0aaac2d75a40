"""The product as a user meets it: train and register on the devnet, then verify, revoke, audit."""

import json

import pytest

from modelreg.formats.seal import seal_checkpoint
from tests.cli.conftest import copy_file

pytestmark = pytest.mark.slow


def _checkpoints(trained):
    return sorted((trained.home / "runs" / "gpt-tiny").glob("ckpt-*[0-9].safetensors"))


def test_train_and_register_commits_every_checkpoint_with_its_parent(trained):
    history = json.loads(trained("audit", "history", "gpt-tiny", "--json").output)
    roots = [seal_checkpoint(p).root for p in _checkpoints(trained)]
    assert [v["weights_root"] for v in history] == roots
    assert [v["parent"] for v in history] == [None, {"model_id": 1, "version": 1}]
    assert history[0]["dataset_root"] == history[1]["dataset_root"] is not None


def test_verify_finds_which_version_a_file_is(trained):
    first = _checkpoints(trained)[0]
    result = trained("verify", first, "--model", "gpt-tiny")
    assert result.output.startswith("VERIFIED: the file is gpt-tiny version 1")


def test_verify_by_cid_fetches_the_pinned_checkpoint(trained):
    journal = (trained.home / "runs" / "gpt-tiny" / "journal.jsonl").read_text().splitlines()
    committed = [json.loads(line) for line in journal if '"committed"' in line]
    result = trained("verify", committed[-1]["checkpoint_cid"], "--model", "gpt-tiny", "--json")
    assert json.loads(result.output)["status"] == "VERIFIED"


def test_verify_proves_one_tensor_with_the_contract(trained):
    last = _checkpoints(trained)[-1]
    result = trained("verify", last, "--model", "gpt-tiny", "--version", "2", "--tensor", "transformer.wte.weight")
    assert "tensor transformer.wte.weight: proven on-chain" in result.output


def _tensor_holding_last_byte(path) -> str:
    with open(path, "rb") as f:
        header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
    header.pop("__metadata__", None)
    return max(header, key=lambda name: header[name]["data_offsets"][1])


def test_one_flipped_byte_is_a_mismatch_naming_the_tensor(trained, tmp_path):
    path = copy_file(_checkpoints(trained)[-1], tmp_path / "tampered.safetensors")
    with open(path, "r+b") as f:
        f.seek(-1, 2)
        byte = f.read(1)
        f.seek(-1, 2)
        f.write(bytes([byte[0] ^ 0x01]))
    tensor = _tensor_holding_last_byte(path)
    result = trained("verify", path, "--model", "gpt-tiny", "--version", "2", "--json", expect=1)
    verdict = json.loads(result.output)
    assert verdict["status"] == "MISMATCH"
    assert verdict["differences"]["changed"] == {tensor: ["sha256"]}
    text = trained("verify", path, "--model", "gpt-tiny", "--version", "2", expect=1).output
    assert f"changed: {tensor} (sha256)" in text


def test_a_checkpoint_compared_with_another_version_is_a_mismatch(trained):
    first = _checkpoints(trained)[0]
    result = trained("verify", first, "--model", "gpt-tiny", "--version", "2", expect=1)
    assert result.output.startswith("MISMATCH")


def test_a_revoked_version_is_reported_revoked_with_exit_1(trained):
    last = _checkpoints(trained)[-1]
    trained("model", "revoke", "gpt-tiny", "2", "--reason", "trained on a leaked file", "--replacement", "1")
    result = trained("verify", last, "--model", "gpt-tiny", expect=1)
    assert result.output.startswith("REVOKED: the file is gpt-tiny version 2")
    assert "trained on a leaked file" in result.output
    history = json.loads(trained("audit", "history", "gpt-tiny", "--json").output)
    assert history[1]["revoked"]["reason"] == "trained on a leaked file"
    assert history[1]["revoked"]["replacement"] == 1


def test_audit_show_checks_the_manifest_against_the_chain(trained):
    shown = json.loads(trained("audit", "show", "gpt-tiny", "1", "--json").output)
    assert shown["verification"] == "manifest verified"
    assert shown["manifest"]["step"] == 3
    assert shown["manifest"]["model"] == "gpt-tiny"
    assert set(shown["manifest"]["metrics"]) >= {"val_loss", "train_loss"}


def test_audit_lineage_links_versions_and_the_dataset(trained):
    graph = json.loads(trained("audit", "lineage", "gpt-tiny", "--json").output)
    edges = [tuple(e) for e in graph["edges"]]
    assert ("gpt-tiny:1", "gpt-tiny:2") in edges
    assert sum(1 for src, _ in edges if src.startswith("dataset:")) == 2


@pytest.mark.parametrize("fmt", ["md", "json", "html"])
def test_audit_report_is_written_in_each_format(trained, tmp_path, fmt):
    out = tmp_path / f"report.{fmt}"
    trained("audit", "report", "gpt-tiny", "--format", fmt, "-o", out)
    text = out.read_text()
    history = json.loads(trained("audit", "history", "gpt-tiny", "--json").output)
    for v in history:
        assert v["tx"] in text and v["manifest_cid"] in text
    if fmt == "json":
        report = json.loads(text)
        assert [v["verification"] for v in report["versions"]] == ["manifest verified"] * 2
    if fmt == "html":
        assert "<svg" in text and 'aria-label="lineage graph"' in text and 'aria-label="loss (from each manifest) by training step"' in text
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")  # self-contained


def test_the_event_index_can_be_rebuilt_from_the_chain(trained):
    before = trained("audit", "history", "gpt-tiny", "--json").output
    result = trained("audit", "reindex")
    assert result.output.startswith("Indexed ")
    assert trained("audit", "history", "gpt-tiny", "--json").output == before
