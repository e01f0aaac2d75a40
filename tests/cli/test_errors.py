"""Every bad input a user can type: one `Error:` line naming the bad thing, exit 2 (1 for a failed
verification), never a traceback, and nothing already stored is lost or changed."""

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from eth_account import Account
from safetensors.numpy import save_file

from modelreg.formats.seal import seal_checkpoint
from modelreg.service.config import load_config
from modelreg.service.connect import connect
from tests.cli.conftest import Modelreg, _home
from tests.conftest import anvil_chain

NOT_AN_ADDRESS = "0x12345"
SOME_ADDRESS = "0x00000000000000000000000000000000000000a1"


def fails(run: Modelreg, *args, match: str, code: int = 2) -> str:
    """Run `modelreg ARGS`, expecting exit `code` and exactly one `Error:` line matching `match`."""
    result = run(*args, expect=None)
    output = result.output
    assert result.exit_code == code, f"exit {result.exit_code}, output:\n{output}"
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, f"expected one Error: line, got:\n{output}"
    assert re.search(match, errors[0]), f"{errors[0]!r} does not match {match!r}"
    assert "unexpected" not in errors[0], f"an unhandled exception reached the user: {errors[0]}"
    return errors[0]


def _checkpoint(path: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    save_file({"wte.weight": rng.standard_normal((4, 3), dtype=np.float32),
               "ln.bias": rng.standard_normal(3, dtype=np.float32)}, str(path))
    return path


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A data directory where model `demo` is registered with one version (a small checkpoint,
    committed through the library: these tests need a version on-chain, not a trained model)."""
    home = tmp_path_factory.mktemp("errors")
    for run in _home(home):
        run("model", "register", "demo")
        run.checkpoint = _checkpoint(home / "demo-1.safetensors", seed=1)
        client = connect(home, load_config(home), write=True).client
        sealed = seal_checkpoint(run.checkpoint)
        client.commit_version(client.model_id("demo"), sealed.root, tensor_count=len(sealed.leaves),
                              manifest_cid="bafkqaaa")
        yield run


@pytest.fixture
def stored(demo):
    """What `demo` holds before a test; asserts afterwards that a failing command changed none of it."""
    def snapshot():
        return {"history": demo("audit", "history", "demo", "--json").output,
                "models": demo("audit", "models", "--json").output,
                **{name: (demo.home / name).read_bytes() for name in ("deployments.json", "config.toml")
                   if (demo.home / name).exists()}}

    before = snapshot()
    assert json.loads(before["history"])[0]["version"] == 1
    yield
    assert snapshot() == before


@pytest.fixture
def fresh(tmp_path):
    """An empty data directory, for commands that fail before any chain is needed."""
    yield from _home(tmp_path / "home")


# ------------------------------------------------------------------ models and versions

def test_an_unknown_model_is_named(demo, stored):
    fails(demo, "audit", "history", "nope", match=r"^Error: no model named 'nope' is registered")
    fails(demo, "verify", demo.checkpoint, "--model", "nope", match=r"no model named 'nope'")
    fails(demo, "model", "revoke", "nope", "1", "--reason", "r", match=r"no model named 'nope'")


def test_an_unknown_version_is_named(demo, stored):
    fails(demo, "audit", "show", "demo", "9", match=r"has no version 9 \(it has 1\); `modelreg audit history demo` lists its versions$")
    fails(demo, "verify", demo.checkpoint, "--model", "demo", "--version", "9", match=r"has no version 9$")
    fails(demo, "model", "revoke", "demo", "9", "--reason", "r", match=r"has no version 9$")


def test_registering_a_taken_name_is_refused(demo, stored):
    fails(demo, "model", "register", "demo",
          match=r"^Error: a model named 'demo' already exists \(id 1\); choose another name")


def test_verify_with_an_unknown_tensor_name_names_it(demo, stored):
    fails(demo, "verify", demo.checkpoint, "--model", "demo", "--tensor", "no.such.weight",
          match=r"no tensor 'no.such.weight'")


def test_verify_of_another_file_is_a_verification_failure_with_exit_1(demo, tmp_path):
    other = _checkpoint(tmp_path / "other.safetensors", seed=2)
    result = demo("verify", other, "--model", "demo", expect=1)
    assert result.output.startswith("MISMATCH: the file")


# ------------------------------------------------------------------ files and CIDs

def test_a_missing_file_is_named(demo, stored, tmp_path):
    missing = tmp_path / "missing.safetensors"
    fails(demo, "verify", missing, "--model", "demo", match=f"^Error: file '{re.escape(str(missing))}' does not exist$")
    fails(demo, "seal", missing, match=r"does not exist")


def test_a_file_that_is_not_safetensors_is_named(demo, stored, tmp_path):
    text = tmp_path / "notes.safetensors"
    text.write_text("these are my notes, not a checkpoint\n" * 4)
    fails(demo, "verify", text, "--model", "demo", match=f"^Error: {re.escape(str(text))}: header length .* not safetensors")
    (tmp_path / "empty").mkdir()
    fails(demo, "verify", tmp_path / "empty", "--model", "demo", match=r"holds no \*\.safetensors file")


@pytest.mark.parametrize(("cid", "problem"), [
    ("bafyNOTACID", "a base32 CIDv1 \\(b...\\) has only the characters a-z and 2-7"),
    ("QmTooShort", "a CIDv0 \\(Qm...\\) has 46 characters, this one has 10"),
    ("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyk", "its length \\(58 characters\\) or its contents"),
    ("xyz", "it is neither a CIDv0"),
], ids=["base32-characters", "v0-length", "v1-length", "no-base"])
def test_a_malformed_cid_is_named_in_our_words(demo, stored, cid, problem):
    line = fails(demo, "verify", cid, "--model", "demo",
                 match=f"^Error: no file named '{cid}' exists, and '{cid}' is not a CID: {problem}")
    assert "Pad bits" not in line  # the CID library's inner wording stays inside


def test_a_well_formed_cid_that_is_not_stored_is_named(demo, stored):
    cid = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
    fails(demo, "verify", cid, "--model", "demo", match=f"block {cid} is not in the store")


def test_a_report_to_a_missing_directory_is_named(demo, stored, tmp_path):
    out = tmp_path / "no" / "such" / "report.md"
    fails(demo, "audit", "report", "demo", "-o", out,
          match=f"^Error: cannot write the report to {re.escape(str(out))}: No such file or directory$")


def test_ipfs_get_to_a_missing_directory_is_named(demo, stored, tmp_path):
    cid = demo("ipfs", "add", demo.checkpoint, "--only-hash").output.split()[0]
    demo("ipfs", "add", demo.checkpoint)
    fails(demo, "ipfs", "get", cid, "-o", tmp_path / "no" / "such" / "file", match=r"no/such")


# ------------------------------------------------------------------ datasets

def test_training_on_an_empty_directory_is_refused_before_anything_is_registered(demo, stored, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    fails(demo, "train-and-register", "--data", empty, "--model", "never",
          match=f"^Error: dataset '{re.escape(str(empty))}' holds no files")
    assert not (demo.home / "runs" / "never").exists()


def test_training_on_a_directory_with_a_symlink_is_refused(demo, stored, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.txt").write_text("to be or not to be\n")
    (data / "b.txt").symlink_to(data / "a.txt")
    fails(demo, "train-and-register", "--data", data, "--model", "never",
          match=r"dataset entry '.*b\.txt' is a symbolic link")
    assert not (demo.home / "runs" / "never").exists()


# ------------------------------------------------------------------ addresses and permissions

def test_a_non_address_is_refused_before_anything_is_sent(demo, stored):
    for command in ("add-maintainer", "remove-maintainer", "transfer"):
        fails(demo, "model", command, "demo", NOT_AN_ADDRESS,
              match=f"^Error: Invalid value for 'ADDRESS': '{NOT_AN_ADDRESS}' is not an Ethereum address")


def test_an_address_with_a_typo_in_its_checksum_is_refused(demo, stored):
    typo = "0xF39Fd6e51aad88F6F4ce6aB8827279cffFb92266"  # dev account 0, first letter upper-cased
    fails(demo, "model", "add-maintainer", "demo", typo, match=r"fails its mixed-case checksum")


def test_a_stranger_cannot_revoke_or_add_maintainers(demo, stored):
    fails(demo, "model", "revoke", "demo", "1", "--reason", "mine now", "--dev-account", "1",
          match=r"^Error: 0x\w{40} is neither the owner nor a maintainer of model 1")
    fails(demo, "model", "add-maintainer", "demo", SOME_ADDRESS, "--dev-account", "1",
          match=r"^Error: 0x\w{40} is not the owner of model 1; sign with the owner's key$")


def test_a_dev_account_that_does_not_exist_is_named(demo, stored):
    fails(demo, "model", "register", "other", "--dev-account", "99",
          match=r"^Error: dev account 99 does not exist; use 0 to 9$")


# ------------------------------------------------------------------ chains

def test_an_unreachable_rpc_endpoint_is_named(demo, stored):
    fails(demo, "audit", "models", "--rpc-url", "http://127.0.0.1:9",
          match=r"^Error: cannot reach the JSON-RPC endpoint http://127.0.0.1:9 ")


def test_an_rpc_url_that_is_not_http_is_named(demo, stored):
    fails(demo, "audit", "models", "--rpc-url", "ftp://127.0.0.1:9",
          match=r"chain.rpc_url must be an http\(s\):// URL, got 'ftp://127.0.0.1:9'")


def test_the_wrong_chain_id_is_refused(demo, stored):
    fails(demo, "model", "register", "other", "--chain-id", "5",
          match=r"^Error: the embedded devnet is chain 1337, not the configured chain 5")


def test_an_endpoint_without_a_deployed_registry_is_named(demo, stored):
    with anvil_chain() as anvil:
        fails(demo, "audit", "models", "--rpc-url", anvil.rpc_url,
              match=r"^Error: no ModelRegistry is recorded for chain 31337 .*; to read an existing registry "
                    r"pass --registry ADDRESS \(or set MODELREG_REGISTRY\), to start a new one run `modelreg deploy`")
        fails(demo, "model", "register", "other", "--rpc-url", anvil.rpc_url,
              match=r"no ModelRegistry is recorded for chain 31337")
        fails(demo, "audit", "models", "--rpc-url", anvil.rpc_url, "--chain-id", "5",
              match=f"^Error: {anvil.rpc_url} serves chain 31337, not the configured chain 5")


def test_a_registry_that_is_not_an_address_is_named(demo, stored, monkeypatch):
    fails(demo, "audit", "models", "--registry", NOT_AN_ADDRESS,
          match=f"^Error: chain.registry must be a contract address \\(0x and 40 hex digits\\), got '{NOT_AN_ADDRESS}'$")
    monkeypatch.setenv("MODELREG_REGISTRY", "registry.eth")
    fails(demo, "audit", "models", match=r"^Error: \$MODELREG_REGISTRY: chain.registry must be a contract address")


def test_a_registry_address_without_code_is_named(demo, stored):
    fails(demo, "audit", "models", "--registry", SOME_ADDRESS,
          match=r"^Error: no contract code at 0x0+[aA]1 on chain 1337: the address is not a registry on this "
                r"chain; check --registry \(or MODELREG_REGISTRY\) and --rpc-url$")


def test_a_second_deploy_on_the_same_chain_is_refused(demo, stored):
    fails(demo, "deploy", match=r"^Error: a ModelRegistry is already recorded for chain 1337: 0x\w{40}, deployed in "
                                r"block \d+; a new one would start with an empty history; use it as it is, or pass "
                                r"--force to deploy a new one")


# ------------------------------------------------------------------ signers

def test_a_signer_without_ether_cannot_pay(demo, stored, monkeypatch):
    key = "0x" + os.urandom(32).hex()
    monkeypatch.setenv("MODELREG_TEST_KEY", key)
    address = Account.from_key(key).address
    line = fails(demo, "model", "register", "other", "--signer", "env", "--key-env", "MODELREG_TEST_KEY",
                 match=f"^Error: cannot register model 'other': {address} cannot pay for gas")
    assert key[2:] not in line


def test_a_missing_key_variable_is_named(demo, stored, monkeypatch):
    monkeypatch.delenv("MODELREG_NO_SUCH_KEY", raising=False)
    fails(demo, "model", "register", "other", "--signer", "env", "--key-env", "MODELREG_NO_SUCH_KEY",
          match=r"^Error: environment variable MODELREG_NO_SUCH_KEY is not set")


@pytest.fixture
def keystore(tmp_path):
    path = tmp_path / "key.json"
    path.write_text(json.dumps(Account.encrypt(os.urandom(32), "correct horse")))
    return path


def test_a_wrong_keystore_password_is_refused(demo, stored, keystore, monkeypatch):
    monkeypatch.setenv("MODELREG_KEYSTORE_PASSWORD", "wrong")
    fails(demo, "model", "register", "other", "--signer", "keystore", "--keystore", keystore,
          match=f"^Error: wrong password for keystore {re.escape(str(keystore))}$")


def test_a_keystore_password_with_no_terminal_to_ask_on_is_named(demo, stored, keystore, monkeypatch):
    monkeypatch.delenv("MODELREG_KEYSTORE_PASSWORD", raising=False)

    def no_terminal(prompt):
        raise EOFError  # what getpass raises when stdin is closed and there is no tty

    monkeypatch.setattr("getpass.getpass", no_terminal)
    fails(demo, "model", "register", "other", "--signer", "keystore", "--keystore", keystore,
          match=r"^Error: no password for keystore .*: set \$MODELREG_KEYSTORE_PASSWORD")


def test_a_keystore_that_is_not_a_keystore_is_named(demo, stored, tmp_path, monkeypatch):
    monkeypatch.setenv("MODELREG_KEYSTORE_PASSWORD", "x")
    bogus = tmp_path / "bogus.json"
    bogus.write_text("{}")
    fails(demo, "model", "register", "other", "--signer", "keystore", "--keystore", bogus,
          match=r"is missing a field .*Web3 Secret Storage")
    fails(demo, "model", "register", "other", "--signer", "keystore", "--keystore", tmp_path / "none.json",
          match=r"keystore .*none\.json does not exist$")


def test_a_read_on_a_new_data_directory_needs_no_funded_signer(tmp_path, monkeypatch):
    monkeypatch.setenv("MODELREG_TEST_KEY", "0x" + os.urandom(32).hex())
    monkeypatch.setenv("MODELREG_SIGNER", "env")
    monkeypatch.setenv("MODELREG_KEY_ENV", "MODELREG_TEST_KEY")
    for run in _home(tmp_path / "home"):
        result = run("audit", "models", "--json")
        assert json.loads(result.output) == []


# ------------------------------------------------------------------ configuration

def test_an_unknown_signer_kind_is_named(fresh, monkeypatch):
    fails(fresh, "model", "register", "x", "--signer", "hsm", match=r"Invalid value for '--signer': 'hsm' is not one of")
    monkeypatch.setenv("MODELREG_SIGNER", "hsm")
    fails(fresh, "audit", "models",
          match=r"^Error: \$MODELREG_SIGNER: signer.kind must be one of dev, keystore, env, got 'hsm'$")


@pytest.mark.parametrize(("text", "match"), [
    ("[chain\nrpc_url = 'x'\n", r"config.toml is not valid TOML: Expected ']'"),
    ("\xff\xfe", r"config.toml is not valid TOML: 'utf-8' codec"),
    ("[signer]\nkind = 'hsm'\n", r"config.toml: signer.kind must be one of dev, keystore, env, got 'hsm'$"),
    ("[signer]\ndev_account = true\n", r"config.toml: signer.dev_account must be an integer, got True$"),
    ("[chain]\nchain_id = 'five'\n", r"config.toml: chain.chain_id must be an integer, got 'five'$"),
    ("[chain]\nrpc_url = 8545\n", r"config.toml: chain.rpc_url must be a string, got 8545$"),
    ("[chain]\nurl = 'http://x'\n", r"config.toml: unknown key 'url' in \[chain\]$"),
    ("[wallet]\nkind = 'dev'\n", r"config.toml: unknown section \[wallet\]"),
    ("rpc_url = 'http://x'\n", r"config.toml: 'rpc_url' is outside a section"),
], ids=["toml", "encoding", "signer-kind", "bool-as-int", "int", "string", "key", "section", "no-section"])
def test_a_malformed_config_file_is_named_and_left_alone(fresh, text, match):
    path = fresh.home / "config.toml"
    path.parent.mkdir()
    path.write_bytes(text.encode("latin-1"))
    for command in (("config", "show"), ("audit", "models"), ("model", "register", "x")):
        fails(fresh, *command, match=match)
    assert path.read_bytes() == text.encode("latin-1")


def test_a_malformed_environment_variable_is_named(fresh, monkeypatch):
    monkeypatch.setenv("MODELREG_CHAIN_ID", "five")
    fails(fresh, "config", "show", match=r"^Error: \$MODELREG_CHAIN_ID: chain.chain_id must be an integer")


def test_a_data_directory_that_cannot_be_made_is_named(tmp_path):
    run = Modelreg(Path("/proc/modelreg-cannot-exist"))
    fails(run, "config", "show", match=r"^Error: cannot use /proc/modelreg-cannot-exist as the data directory: "
                                       r"No such file or directory; pass --home \(or set MODELREG_HOME to\) a "
                                       r"directory you can write$")


def test_a_data_directory_that_cannot_be_written_is_named():
    fails(Modelreg(Path("/proc")), "audit", "models",
          match=r"^Error: cannot use /proc as the data directory: No such file or directory; pass --home")


def test_verify_against_a_model_without_versions_says_so(tmp_path, demo):
    for run in _home(tmp_path / "home"):
        run("model", "register", "empty")
        fails(run, "verify", demo.checkpoint, "--model", "empty",
              match=r"^Error: model 'empty' has no versions yet, so no file can match it; commit one first")


def test_init_over_an_existing_config_needs_force(fresh):
    fresh("init", "--signer", "env", "--key-env", "MY_KEY")
    path = fresh.home / "config.toml"
    before = path.read_bytes()
    fails(fresh, "init", match=f"^Error: {re.escape(str(path))} already exists; pass --force to overwrite it$")
    assert path.read_bytes() == before
    fresh("init", "--force")
    assert path.read_bytes() != before
