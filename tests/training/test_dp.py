"""DP-SGD you can check: the epsilon each version records is the accountant's, and a replay re-executes
the clipping and the noise, so a run that skipped either, or added less noise than it claims, is
DIVERGED at the first step it touched. Real trainer, registrar, py-evm contract and embedded IPFS."""

import functools
from dataclasses import replace

import pytest

from modelreg.errors import ConfigInvalid, ManifestInvalid
from modelreg.formats.manifest import load_manifest
from modelreg.formats.privacy import describe
from modelreg.service import audit as audit_lib
from modelreg.service import replay as replay_lib
from modelreg.training import dp as dp_sgd
from modelreg.training.register import TrainingRun
from modelreg.training.replay import execute

pytestmark = pytest.mark.slow

DP = {"epsilon": 1.0, "delta": 1e-5, "max_grad_norm": 0.1}  # a small C: clipping binds on every sample


@pytest.fixture
def config(small_config):
    return replace(small_config, max_steps=6, eval_interval=3, batch_size=4, block_size=32)


def _train(registry, data, config, tmp_path, name="m", dp=DP):
    (tmp_path / "home").mkdir(exist_ok=True)
    return TrainingRun(registry, model_name=name, data_dir=data, run_dir=tmp_path / f"run-{name}", config=config,
                       resume=False, quiet=True, dp=dp).execute(device="cpu")


def _manifest(registry, version, name="m"):
    events = registry.events()
    entry = audit_lib.find_version(events, audit_lib.find_model(events, name), version)
    return load_manifest(registry.ipfs.cat(entry["manifest_cid"]))


def _reference_epsilon(sigma, q, steps, delta):
    """Google's dp-accounting, composed step by step here: the reference the recorded epsilon must equal."""
    import dp_accounting
    from dp_accounting import rdp

    acc = rdp.RdpAccountant()
    for _ in range(steps):
        acc.compose(dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)))
    return acc.get_epsilon(delta)


def test_a_dp_run_records_its_epsilon_per_version_and_replays_bit_for_bit(registry, data, config, tmp_path):
    commits = _train(registry, data, config, tmp_path)
    assert [c.step for c in commits] == [3, 6]
    manifests = [_manifest(registry, v) for v in (1, 2)]
    spent = []
    for m in manifests:
        t = m["transcript"]
        assert t["format"] == "modelreg-training-transcript-v2"
        dp = t["dp"]
        assert dp["sampling"] == "poisson" and dp["accountant"]["package"] == "dp-accounting"
        assert dp["noise_multiplier"] > 0 and dp["sample_rate"] == config.batch_size / dp["examples"]
        assert len(dp["step_params_sha256"]) == 3
        reference = _reference_epsilon(dp["noise_multiplier"], dp["sample_rate"], m["step"], dp["delta"])
        assert m["privacy"]["epsilon"] == pytest.approx(reference, rel=1e-6)
        assert m["privacy"]["basis"] == "transcript" and m["metrics"]["dp_epsilon"] == m["privacy"]["epsilon"]
        spent.append(m["privacy"]["epsilon"])
    # never decreasing along the parent chain, and the whole run stays within the target
    assert manifests[1]["parent"] == {"model_id": 1, "version": 1}
    assert 0 < spent[0] <= spent[1] <= DP["epsilon"] * (1 + 1e-6)
    for version in (1, 2):
        (verdict,) = replay_lib.replay(registry, "m", version, execute).verdicts
        assert (verdict.status, verdict.mode, verdict.steps_run) == ("REPRODUCED", "bit-exact", 3)


@pytest.mark.parametrize("cheat, kwargs", [("no noise", {"noise_scale": 0.0}),
                                           ("half the noise", {"noise_scale": 0.5}),
                                           ("no clipping", {"clip": False})])
def test_a_run_that_cheats_on_dp_is_diverged_at_the_first_step_it_touches(registry, data, config, tmp_path,
                                                                          monkeypatch, cheat, kwargs):
    honest = dp_sgd.noisy_clipped_grads
    with monkeypatch.context() as m:
        m.setattr(dp_sgd, "noisy_clipped_grads", functools.partial(honest, **kwargs))
        _train(registry, data, replace(config, max_steps=3), tmp_path)
    assert _manifest(registry, 1)["privacy"]["epsilon"] > 0  # the claim is there, as a cheat would write it
    (verdict,) = replay_lib.replay(registry, "m", 1, execute).verdicts
    assert (verdict.status, verdict.step) == ("DIVERGED", 1), cheat
    assert "clip and noise" in verdict.reason


def test_the_epsilon_agrees_with_opacus_accountant():
    from opacus.accountants import RDPAccountant

    for sigma, q, steps, delta in [(0.86, 0.002, 20, 1e-5), (1.1, 0.01, 1000, 1e-5), (2.0, 0.05, 400, 1e-6)]:
        theirs = RDPAccountant()
        theirs.history = [(sigma, q, steps)]
        assert dp_sgd.epsilon(sigma, q, steps, delta) == pytest.approx(theirs.get_epsilon(delta), rel=1e-6)


def test_calibration_reaches_the_target_and_no_less_noise_would():
    sigma = dp_sgd.calibrate(1.0, 1e-5, 0.01, 500)
    assert dp_sgd.epsilon(sigma, 0.01, 500, 1e-5) <= 1.0
    assert dp_sgd.epsilon(sigma * 0.99, 0.01, 500, 1e-5) > 1.0


def test_a_transcript_whose_epsilon_does_not_follow_from_its_parameters_diverges(registry, data, config,
                                                                                 tmp_path):
    from modelreg.training import replay as training_replay
    from modelreg.training.config import TrainConfig

    _train(registry, data, replace(config, max_steps=3), tmp_path)
    dp = _manifest(registry, 1)["transcript"]["dp"]
    spec = dp_sgd.DPSpec.from_dict(dp)
    job = type("Job", (), {"last_step": 3, "first_step": 1, "dp": {**dp, "epsilon_spent": dp["epsilon_spent"] / 2}})
    cfg = TrainConfig.from_dict(_manifest(registry, 1)["config"])
    tokens = dp["examples"] * (cfg.block_size + 1)
    outcome = training_replay._check_dp_claim(job, spec, cfg, tokens)
    assert outcome.step == 1 and outcome.replayed["epsilon"] == pytest.approx(dp["epsilon_spent"])
    job.dp = dp  # the honest one passes
    assert training_replay._check_dp_claim(job, spec, cfg, tokens) is None
    # a noise multiplier too small for the target it claims
    weak = dp_sgd.DPSpec.from_dict({**dp, "noise_multiplier": dp["noise_multiplier"] / 2})
    assert training_replay._check_dp_claim(job, weak, cfg, tokens).step == 1


def test_a_users_own_dp_claim_is_recorded_as_not_checkable(registry, tmp_path):
    import numpy as np
    from safetensors.numpy import save_file

    path = tmp_path / "w.safetensors"
    save_file({"w": np.arange(8, dtype=np.float32)}, str(path))
    registry.commit(path, "mine", privacy={"epsilon": 0.8, "delta": 1e-6, "mechanism": "dp-sgd"})
    privacy = _manifest(registry, 1, "mine")["privacy"]
    assert privacy["basis"] == "claimed" and privacy["epsilon"] == 0.8
    assert "claimed, not checkable by replay" in describe(privacy)
    with pytest.raises(ManifestInvalid, match="epsilon"):
        registry.commit(path, "mine", privacy={"epsilon": -1, "delta": 1e-6})


def test_dp_options_are_checked_before_anything_is_written(config):
    with pytest.raises(ConfigInvalid, match="delta"):
        dp_sgd.plan(1.0, 0.5, 1.0, config, 100_000)
    with pytest.raises(ConfigInvalid, match="epsilon"):
        dp_sgd.plan(0.0, 1e-5, 1.0, config, 100_000)
    with pytest.raises(ConfigInvalid, match="too few"):
        dp_sgd.plan(1.0, 1e-5, 1.0, config, 100)
