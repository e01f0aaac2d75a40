"""Metrics and notes a commit records are shown by `audit show`, the reports and --json; the report
charts every metric series with two or more points and names the ones it does not chart."""

import json

import numpy as np
import pytest
from safetensors.numpy import save_file

from modelreg.service.report import metric_charts

pytestmark = pytest.mark.slow  # one devnet: about 6 s


def _weights(path, seed):
    save_file({"w": np.random.default_rng(seed).standard_normal((4, 4), dtype=np.float32)}, str(path))
    return path


def test_a_note_and_every_metric_reach_show_the_reports_and_json(modelreg, tmp_path):
    modelreg("commit", _weights(tmp_path / "a.safetensors", 1), "--model", "noted", "--metric", "eval_loss=2.5",
             "--metric", "accuracy=0.25", "--note", "first <try>")
    modelreg("commit", _weights(tmp_path / "b.safetensors", 2), "--model", "noted", "--parent", "1",
             "--metric", "eval_loss=2.0")
    show = modelreg("audit", "show", "noted", "1").output
    assert "       metrics: accuracy 0.25, eval_loss 2.5\n" in show and "          note: first <try>\n" in show
    assert "          step: -\n" in show and "  tensor_count: 1\n" in show and "    files_root: none\n" in show
    shown = json.loads(modelreg("audit", "show", "noted", "1", "--json").output)
    assert shown["manifest"]["note"] == "first <try>"
    report = json.loads(modelreg("audit", "report", "noted", "--format", "json").output)
    assert [(v["note"], v["metrics"]) for v in report["versions"]] == [
        ("first <try>", {"eval_loss": 2.5, "accuracy": 0.25}), (None, {"eval_loss": 2.0})]
    page = modelreg("audit", "report", "noted", "--format", "html").output
    assert "first &lt;try&gt;" in page and "accuracy 0.25, eval_loss 2.5" in page
    assert 'aria-label="loss (from each manifest) by version"' in page  # eval_loss: two points, charted
    assert "Not charted, fewer than two points: accuracy (1 point: 0.25 at version 1)." in page
    md = modelreg("audit", "report", "noted", "--format", "md").output
    assert "| first \\<try\\> |" in md


def test_each_metric_series_of_two_points_gets_a_chart_and_one_point_gets_none():
    versions = [{"version": 1, "step": 10, "metrics": {"loss": 3.0, "lr": 0.1, "tag": "warmup"}},
                {"version": 2, "step": 20, "metrics": {"loss": 2.0, "lr": 0.05, "grad_norm": 1.5}}]
    html = metric_charts(versions)
    assert html.count("<svg") == 2  # loss, and lr on its own axis
    assert 'aria-label="loss (from each manifest) by training step"' in html and 'aria-label="lr by training step"' in html
    assert "grad_norm (1 point: 1.5 at training step 20)" in html and "tag" not in html
    assert metric_charts([{"version": 1, "step": 60, "metrics": {"val_loss": 2.3}}]).count("<svg") == 0
    assert metric_charts([{"version": 1, "step": None, "metrics": {}}]) == "<p>No numeric metrics in the manifests.</p>"


def test_the_report_tells_to_verify_a_directory_for_a_directory_version_and_a_file_for_a_file():
    from modelreg.service.report import check_commands

    report = {"chain": {"rpc": "http://127.0.0.1:8545", "contract": "0xC0FFEE"}, "model": {"name": "m"},
              "versions": [{"version": 1, "files_root": None}, {"version": 2, "files_root": "0x" + "12" * 32}]}
    assert check_commands(report)[:2] == [
        "modelreg verify CHECKPOINT.safetensors --model m --version 1 --rpc-url http://127.0.0.1:8545 --registry 0xC0FFEE",
        "modelreg verify MODEL_DIR/ --model m --version 2 --rpc-url http://127.0.0.1:8545 --registry 0xC0FFEE"]
