"""Signers: keys from hex, an environment variable or a keystore, and never shown."""

import json

import pytest
from eth_account import Account

from modelreg.chain.signer import Signer
from modelreg.errors import SignerInvalid

KEY = "0x" + "4c" * 32
ADDRESS = Account.from_key(KEY).address


@pytest.fixture
def keystore(tmp_path):
    path = tmp_path / "key.json"
    # Few KDF iterations keep the test fast; real keystores use eth-account's defaults.
    path.write_text(json.dumps(Account.encrypt(KEY, "correct horse", kdf="pbkdf2", iterations=16)))
    return path


def test_a_signer_from_hex_signs_for_its_address():
    assert Signer.from_key(KEY).address == ADDRESS
    assert Signer.from_key(KEY[2:]).address == ADDRESS


def test_the_key_never_appears_in_the_repr():
    signer = Signer.from_key(KEY)
    assert repr(signer) == f"Signer({ADDRESS})"
    assert KEY[2:] not in repr(signer) + str(signer)


def test_a_malformed_key_is_refused_without_echoing_it():
    with pytest.raises(SignerInvalid, match="the private key is malformed") as e:
        Signer.from_key("0x1234deadbeef")
    assert "1234deadbeef" not in str(e.value)


def test_a_signer_from_an_environment_variable(monkeypatch):
    monkeypatch.setenv("MODELREG_TEST_KEY", KEY + "\n")
    assert Signer.from_env("MODELREG_TEST_KEY").address == ADDRESS


def test_a_missing_environment_variable_says_what_to_export(monkeypatch):
    monkeypatch.delenv("MODELREG_TEST_KEY", raising=False)
    with pytest.raises(SignerInvalid, match="environment variable MODELREG_TEST_KEY is not set; export"):
        Signer.from_env("MODELREG_TEST_KEY")


def test_a_malformed_environment_key_names_the_variable_not_the_value(monkeypatch):
    monkeypatch.setenv("MODELREG_TEST_KEY", "0xnothex")
    with pytest.raises(SignerInvalid, match="environment variable MODELREG_TEST_KEY: the private key is malformed"):
        Signer.from_env("MODELREG_TEST_KEY")


def test_a_keystore_opens_with_its_password(keystore):
    assert Signer.from_keystore(keystore, "correct horse").address == ADDRESS


def test_a_wrong_keystore_password_is_refused(keystore):
    with pytest.raises(SignerInvalid, match=f"wrong password for keystore {keystore}"):
        Signer.from_keystore(keystore, "battery staple")


def test_a_missing_or_garbled_keystore_is_refused(tmp_path):
    with pytest.raises(SignerInvalid, match="keystore .*nope.json does not exist"):
        Signer.from_keystore(tmp_path / "nope.json", "pw")
    garbled = tmp_path / "garbled.json"
    garbled.write_text("{not json")
    with pytest.raises(SignerInvalid, match="garbled.json is not a readable JSON keystore"):
        Signer.from_keystore(garbled, "pw")
    garbled.write_text("{}")
    with pytest.raises(SignerInvalid, match="garbled.json"):
        Signer.from_keystore(garbled, "pw")
