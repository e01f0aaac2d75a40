"""The model-name rule: what passes, and the name an error suggests instead."""

import pytest

from modelreg.chain.names import check_model_name, normalize_model_name
from modelreg.errors import ModelNameInvalid


@pytest.mark.parametrize("name", ["gpt-tiny", "a", "llama-3-1-8b", "x" * 64, "a0", "gpt-t1ny"])
def test_a_name_inside_the_rule_is_returned_unchanged(name):
    assert check_model_name(name) == name


@pytest.mark.parametrize("name, suggestion", [
    ("GPT-tiny", "gpt-tiny"),
    ("gpt-tiny ", "gpt-tiny"),
    ("gpt\u2011tiny", "gpt-tiny"),  # a non-breaking hyphen
    ("gpt-tiny\u200b", "gpt-tiny"),  # a trailing zero-width space
    ("gpt tiny", "gpt-tiny"),
    ("ｇｐｔ－ｔｉｎｙ", "gpt-tiny"),  # full-width letters and hyphen, folded by NFKC
    ("org/model", "org-model"),
    ("modèle", "modle"),
    ("y" * 70, "y" * 64),
    ("gpt_tiny", "gpt-tiny"),  # one separator: underscores and dots are gone
    ("gpt.tiny", "gpt-tiny"),
    ("llama-3.1_8b", "llama-3-1-8b"),
    ("gpt--tiny", "gpt-tiny"),
    ("-gpt-", "gpt"),
    ("3", "model-3"),  # a name never reads as an id
    ("7b-chat", "model-7b-chat"),
])
def test_a_name_outside_the_rule_is_refused_showing_the_name_to_use(name, suggestion):
    assert normalize_model_name(name) == suggestion
    with pytest.raises(ModelNameInvalid, match=f"is not a valid model name .*; use '{suggestion}'"):
        check_model_name(name)


@pytest.mark.parametrize("name", ["", "   ", "\u200b", "🙂", ".", "..", "-", "_"])
def test_a_name_with_nothing_usable_says_so(name):
    with pytest.raises(ModelNameInvalid, match="has no usable characters"):
        check_model_name(name)
