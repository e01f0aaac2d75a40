"""Configuration precedence and secrets; model ownership and maintainers through the CLI."""

import json

import pytest

from modelreg.devnet.accounts import dev_accounts

ALICE, BOB = (a.address for a in dev_accounts(2))


def test_init_writes_the_flags_and_config_show_reads_them_back(modelreg):
    modelreg("init", "--rpc-url", "http://127.0.0.1:8545", "--ipfs-api", "/ip4/127.0.0.1/tcp/5001",
             "--profile", "unixfs-v0-2015", "--ipfs-cache-mib", "64", "--timeout", "30")
    shown = json.loads(modelreg("config", "show", "--json").output)
    assert shown["chain"]["rpc_url"] == "http://127.0.0.1:8545"
    assert shown["ipfs"] == {"api": "/ip4/127.0.0.1/tcp/5001", "profile": "unixfs-v0-2015", "cache_mib": 64}
    assert shown["network"] == {"timeout": 30}


def test_config_show_says_what_an_unset_chain_id_and_registry_mean(modelreg):
    shown = modelreg("config", "show").output
    assert "chain_id = (any: whatever the endpoint serves)" in shown
    assert "registry = (the one recorded in deployments.json)" in shown
    assert "chain_id = 0" not in shown


def test_init_records_a_registry_address_for_later_commands(modelreg, monkeypatch):
    address = "0x" + "Ab" * 20
    modelreg("init", "--rpc-url", "http://127.0.0.1:8545", "--registry", address)
    assert f'registry = "{address}"' in (modelreg.home / "config.toml").read_text()
    assert json.loads(modelreg("config", "show", "--json").output)["chain"]["registry"] == address
    monkeypatch.setenv("MODELREG_REGISTRY", "0x" + "cd" * 20)
    assert json.loads(modelreg("config", "show", "--json").output)["chain"]["registry"] == "0x" + "cd" * 20


def test_the_environment_overrides_the_file_and_flags_override_both(modelreg, monkeypatch):
    modelreg("init", "--rpc-url", "http://file:1")
    monkeypatch.setenv("MODELREG_RPC_URL", "http://env:2")
    assert json.loads(modelreg("config", "show", "--json").output)["chain"]["rpc_url"] == "http://env:2"
    shown = json.loads(modelreg("config", "show", "--rpc-url", "http://flag:3", "--json").output)
    assert shown["chain"]["rpc_url"] == "http://flag:3"


def test_secrets_never_appear_in_the_file_or_in_config_show(modelreg, monkeypatch):
    key = "0x" + "ab" * 32
    monkeypatch.setenv("MY_KEY", key)
    monkeypatch.setenv("MODELREG_KEYSTORE_PASSWORD", "hunter2")
    modelreg("init", "--signer", "env", "--key-env", "MY_KEY")
    text = (modelreg.home / "config.toml").read_text()
    shown = modelreg("config", "show").output
    for secret in (key, key[2:], "hunter2"):
        assert secret not in text and secret not in shown
    assert "key = from $MY_KEY (set)" in shown


@pytest.fixture
def owned(modelreg):
    modelreg("model", "register", "m", "--metadata", '{"purpose": "test"}')
    return modelreg


def _model(run):
    (m,) = json.loads(run("audit", "models", "--json").output)
    return m


def test_the_owner_adds_and_removes_maintainers(owned):
    owned("model", "add-maintainer", "m", BOB)
    assert _model(owned)["maintainers"] == [BOB]
    owned("model", "remove-maintainer", "m", BOB.lower())  # any case; checksummed before sending
    assert _model(owned)["maintainers"] == []


def test_ownership_moves_only_when_the_new_owner_accepts(owned):
    owned("model", "transfer", "m", BOB)
    assert _model(owned)["owner"] == ALICE
    owned("model", "accept", "m", "--dev-account", "1")
    assert _model(owned)["owner"] == BOB
    result = owned("model", "add-maintainer", "m", ALICE, expect=2)  # Alice is no longer the owner
    assert result.output.startswith("Error: ")
