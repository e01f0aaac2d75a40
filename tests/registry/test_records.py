"""The record layer's one conversion between the contract's zero root and None, and names that say one thing."""

import pytest

from modelreg.records import ZERO_ROOT, root_or_none, root_or_zero
from modelreg.service.replay import ReplayVerdict
from modelreg.service.verify import Verification

ROOT = "0x" + "ab" * 32


@pytest.mark.parametrize("zero", [ZERO_ROOT, bytes(32)])
def test_the_contracts_zero_root_is_none_at_the_api(zero):
    assert root_or_none(zero) is None
    assert root_or_zero(None) == ZERO_ROOT == "0x" + "00" * 32


@pytest.mark.parametrize("root", [ROOT, bytes.fromhex("ab" * 32)])
def test_a_real_root_passes_both_ways_as_0x_hex(root):
    assert root_or_none(root) == ROOT and root_or_zero(root_or_none(root)) == ROOT


def test_the_two_verdicts_have_distinct_names():
    assert Verification.__name__ == "Verification" and ReplayVerdict.__name__ == "ReplayVerdict"
    assert Verification is not ReplayVerdict
    import modelreg.service.replay as replay
    import modelreg.service.verify as verify

    assert not hasattr(verify, "Verdict") and not hasattr(replay, "Verdict")  # no class named twice


def test_no_module_spells_no_files_root_as_the_zero_root_any_more():
    import modelreg.formats.model as model

    assert not hasattr(model, "ZERO_ROOT")  # it lives in records, the contract's encoding only
