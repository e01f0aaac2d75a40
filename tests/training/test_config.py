from dataclasses import replace

import pytest

from modelreg.errors import ConfigInvalid
from modelreg.training.config import PRESETS, TrainConfig, preset


def test_presets_tiny_and_small_exist_and_differ():
    assert set(PRESETS) == {"tiny", "small"}
    assert PRESETS["small"].n_embd > PRESETS["tiny"].n_embd


def test_config_round_trips_through_its_dict():
    config = replace(PRESETS["small"], seed=7)
    assert TrainConfig.from_dict(config.to_dict()) == config


def test_every_field_is_in_the_dict():
    from dataclasses import fields

    assert set(PRESETS["tiny"].to_dict()) == {f.name for f in fields(TrainConfig)}


def test_unknown_field_in_a_recorded_config_is_refused():
    with pytest.raises(ConfigInvalid, match=r"unknown training config fields \['n_experts'\]"):
        TrainConfig.from_dict({**PRESETS["tiny"].to_dict(), "n_experts": 8})


def test_width_not_divisible_by_heads_is_refused():
    with pytest.raises(ConfigInvalid, match="n_embd=100 is not a multiple of n_head=3"):
        replace(PRESETS["tiny"], n_embd=100, n_head=3)


def test_vocabulary_smaller_than_the_byte_alphabet_is_refused():
    with pytest.raises(ConfigInvalid, match="vocab_size=100 is below 257"):
        replace(PRESETS["tiny"], vocab_size=100)


def test_zero_steps_is_refused():
    with pytest.raises(ConfigInvalid, match="max_steps=0 must be at least 1"):
        replace(PRESETS["tiny"], max_steps=0)


def test_unknown_preset_names_the_choices():
    with pytest.raises(ConfigInvalid, match=r"unknown preset 'huge'; choose one of \['small', 'tiny'\]"):
        preset("huge")
