"""`train-and-register --dp-*` on the devnet, as a user types it: epsilon per version in audit show,
history --json and the report; the replay is REPRODUCED; bad options are one Error line."""

import json

import pytest

from tests.cli.conftest import FAST_RUN

pytestmark = pytest.mark.slow


def test_dp_training_is_recorded_shown_and_replayed(modelreg, small_data, tmp_path):
    out = modelreg("train-and-register", "--data", small_data, "--model", "dp-gpt", *FAST_RUN,
                   "--dp-epsilon", "1", "--dp-delta", "1e-5", "--dp-max-grad-norm", "1", "--json").output
    assert [v["version"] for v in json.loads(out)["versions"]] == [1, 2]
    shown = modelreg("audit", "show", "dp-gpt", "2").output
    assert "privacy: ε = " in shown and "(DP-SGD, re-executed by audit replay)" in shown
    history = json.loads(modelreg("audit", "history", "dp-gpt", "--json").output)
    eps = [v["privacy"]["epsilon"] for v in history]
    assert 0 < eps[0] <= eps[1] <= 1.0 and {v["privacy"]["delta"] for v in history} == {1e-5}
    assert modelreg("audit", "replay", "dp-gpt", "--version", "2").output.startswith("REPRODUCED")
    report = tmp_path / "r.md"
    modelreg("audit", "report", "dp-gpt", "--format", "md", "-o", report)
    text = report.read_text()
    assert "## Differential privacy" in text and "version 2: ε = " in text


def test_a_model_without_dp_says_so_in_its_report(modelreg, small_data, tmp_path):
    modelreg("train-and-register", "--data", small_data, "--model", "plain-gpt", "--steps", "2",
             "--eval-interval", "2")
    assert "privacy: not trained with differential privacy" in modelreg("audit", "show", "plain-gpt", "1").output
    report = tmp_path / "r.html"
    modelreg("audit", "report", "plain-gpt", "--format", "html", "-o", report)
    assert "No version of this model states a differential-privacy guarantee" in report.read_text()


@pytest.mark.parametrize("args, message", [
    (["--dp-delta", "1e-5"], "need --dp-epsilon"),
    (["--dp-epsilon", "1", "--dp-delta", "0.5"], "--dp-delta 0.5"),
    (["--dp-epsilon", "-1"], "--dp-epsilon -1"),
])
def test_bad_dp_options_are_one_error_line_and_register_nothing(modelreg, small_data, args, message):
    result = modelreg("train-and-register", "--data", small_data, "--model", "bad-dp", *FAST_RUN, *args, expect=2)
    assert message in result.output and result.output.count("Error:") == 1
    assert "bad-dp" not in modelreg("audit", "models").output


def test_dp_under_torchrun_is_one_error_line_and_registers_nothing(modelreg, small_data, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")  # what torchrun sets in every rank
    result = modelreg("train-and-register", "--data", small_data, "--model", "ddp-dp", *FAST_RUN,
                      "--dp-epsilon", "1", "--dp-delta", "1e-5", expect=2)
    assert "run it without torchrun" in result.output and result.output.count("Error:") == 1
    monkeypatch.delenv("WORLD_SIZE")
    assert "ddp-dp" not in modelreg("audit", "models").output
