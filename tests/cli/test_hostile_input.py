"""Hostile values and broken setups: each refused with one `Error:` line and a non-zero exit before
anything is written, so the chain, IPFS, the journal and the files are as they were."""

import json
import os
import re
import socket
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest
from eth_account import Account

from modelreg.chain import deployments
from modelreg.devnet.chain import CHAIN_ID
from modelreg.service.config import load_config
from modelreg.service.connect import connect
from tests.cli.conftest import FAST_RUN, _home
from tests.cli.test_errors import demo, fails, stored  # noqa: F401 - fixtures shared with the error suite


def _events(home: Path) -> Counter:
    return Counter(e["event"] for e in connect(home, load_config(home)).client.events())


@pytest.fixture
def untouched(demo):  # noqa: F811
    """Everything `demo` stores, chain events and IPFS pins and files under runs/ included."""
    def snapshot():
        runs = demo.home / "runs"
        return {"events": _events(demo.home), "pins": sorted(demo("ipfs", "ls", "--json").output.split()),
                "runs": sorted(str(p.relative_to(runs)) for p in runs.rglob("*")) if runs.exists() else []}

    before = snapshot()
    yield
    assert snapshot() == before


# ------------------------------------------------------------------ values


def test_a_version_below_one_is_refused_by_every_command(demo, stored):  # noqa: F811
    fails(demo, "verify", demo.checkpoint, "--model", "demo", "--version", "-1",
          match=r"Invalid value for '--version': -1 is not in the range 1<=x<=4294967295")
    fails(demo, "audit", "show", "demo", "0", match=r"Invalid value for 'VERSION'")
    fails(demo, "model", "revoke", "demo", "0", "--reason", "r", match=r"Invalid value for 'VERSION'")
    fails(demo, "model", "revoke", "demo", "--reason", "r", "--", "-1", match=r"Invalid value for 'VERSION'")


@pytest.mark.parametrize("args, problem", [
    (["--model", "x" * 500], r"is not a valid model name .* use 'x{64}'"),
    (["--model", ""], r"--model is empty; give the model a name"),
    (["--model", "../../escaped-model"], r"is not a valid model name"),
    (["--model", ".."], r"'..' is not a valid model name"),  # the name rule refuses it before the path check
    (["--seed", str(2**70)], r"Invalid value for '--seed': 1180591620717411303424 is not in the range"),
    (["--steps", "0"], r"Invalid value for '--steps'"),
    (["--eval-interval", "-3"], r"Invalid value for '--eval-interval'"),
    (["--run-dir", "/tmp/outside-the-data-directory"], r"is not inside the data directory"),
    (["--device", "quantum"], r"--device 'quantum' is not a torch device"),
], ids=["500-char-name", "empty-name", "path-in-name", "dot-dot-name", "huge-seed", "zero-steps",
        "negative-interval", "run-dir-outside", "unknown-device"])
def test_bad_training_values_are_refused_before_anything_is_written(demo, untouched, tmp_path, args, problem,  # noqa: F811
                                                                    small_data):
    fails(demo, "train-and-register", "--data", small_data, *FAST_RUN, *args, match=problem)
    assert not Path("/tmp/outside-the-data-directory").exists()
    assert not (demo.home.parent / "escaped-model").exists()


@pytest.mark.parametrize("api", ["not a url", "/ip4/1.2.3", "http://[::1", "http://127.0.0.1:99999", "/garbage"])
def test_a_bad_ipfs_api_address_is_named_and_creates_nothing(tmp_path, api):
    for run in _home(tmp_path / "home"):
        fails(run, "ipfs", "--ipfs-api", api, "ls", match=f"IPFS API address '{re.escape(api)}' is not an http")
        assert not (run.home / "ipfs").exists()


# ------------------------------------------------------------------ data, signer, IPFS: preflight


@pytest.mark.parametrize("content", [b"", bytes(range(256)) * 4, b"hello world"], ids=["empty", "binary", "tiny"])
def test_bad_data_leaves_no_trace_and_the_fixed_data_then_trains(demo, untouched, tmp_path, content):  # noqa: F811
    data = tmp_path / "data"
    data.mkdir()
    (data / "only.txt").write_bytes(content)
    fails(demo, "train-and-register", "--data", data, "--model", "bad-data", *FAST_RUN,
          match=r"dataset|tokens|UTF-8")
    assert not (demo.home / "runs" / "bad-data").exists()


@pytest.mark.slow
def test_after_a_refused_dataset_the_fixed_one_trains_without_resume(modelreg, small_data, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "only.txt").write_text("hello world")
    fails(modelreg, "train-and-register", "--data", data, "--model", "fixed", *FAST_RUN, match=r"tokens")
    for source in small_data.iterdir():
        (data / source.name).write_bytes(source.read_bytes())
    (data / "only.txt").unlink()
    done = json.loads(modelreg("train-and-register", "--data", data, "--model", "fixed", *FAST_RUN, "--json").output)
    assert [v["version"] for v in done["versions"]] == [1, 2]
    assert _events(modelreg.home)["DatasetRegistered"] == 1


def test_a_signer_that_may_not_commit_is_refused_before_training(demo, untouched, small_data):  # noqa: F811
    fails(demo, "train-and-register", "--data", small_data, "--model", "demo", "--dev-account", "1", *FAST_RUN,
          match=r"is neither the owner \(0x[0-9a-fA-F]{40}\) nor a maintainer of model 'demo'")
    assert not (demo.home / "runs" / "demo").exists()


def test_a_signer_without_funds_is_refused_before_training(demo, untouched, small_data, monkeypatch):  # noqa: F811
    monkeypatch.setenv("MODELREG_TEST_EMPTY_KEY", Account.create().key.hex())
    fails(demo, "train-and-register", "--data", small_data, "--model", "poor", "--signer", "env",
          "--key-env", "MODELREG_TEST_EMPTY_KEY", *FAST_RUN, match=r"holds 0 wei on chain .* fund it")


def test_an_unreachable_ipfs_daemon_is_found_before_training(demo, untouched, small_data):  # noqa: F811
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    fails(demo, "train-and-register", "--data", small_data, "--model", "no-ipfs", "--ipfs-api",
          f"http://127.0.0.1:{port}", *FAST_RUN, match=rf"nothing listens at http://127.0.0.1:{port}, the IPFS "
                                                     r"API \(pin/ls\): connection refused; start the daemon")
    assert not (demo.home / "runs" / "no-ipfs").exists()


# ------------------------------------------------------------------ hostile checkpoints

ZERO = '{"dtype":"F32","shape":[0],"data_offsets":[0,0]}'


@pytest.mark.parametrize("header, problem", [
    ("{}", "holds no tensors"),
    ('{"a":' + "[" * 5000 + "]" * 5000 + "}", "nests brackets more than 8 deep"),
    ('{"a":{"dtype":"F32","shape":[0,' + "9" * 5000 + '],"data_offsets":[0,0]}}', "more than 20 digits"),
    ('{"a":{"dtype":"F32","shape":[' + ",".join(["1"] * 1_000_000) + '],"data_offsets":[0,4]}}',
     "at most 64 dimensions"),
    ('{"__metadata__":{"k":"a","k":"b"},"a":' + ZERO + "}", "__metadata__ gives the key 'k' twice"),
], ids=["empty", "deep", "huge-integer", "million-dimensions", "metadata-key-twice"])
def test_seal_of_a_hostile_header_is_one_error_line(demo, tmp_path, header, problem):  # noqa: F811
    raw = header.encode()
    path = tmp_path / "hostile.safetensors"
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + bytes(4))
    fails(demo, "seal", path, match=problem)


# ------------------------------------------------------------------ special files


def _within(seconds: float, fn) -> None:
    worker = threading.Thread(target=fn, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), "blocked"


def test_seal_and_verify_of_a_fifo_fail_at_once(demo, tmp_path):  # noqa: F811
    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    _within(60, lambda: fails(demo, "seal", fifo, match=r"is a FIFO, not a regular file"))
    _within(60, lambda: fails(demo, "verify", fifo, "--model", "demo", match=r"is a FIFO, not a regular file"))


# ------------------------------------------------------------------ two commands at once


@pytest.mark.slow
def test_two_runs_started_at_once_on_a_fresh_data_directory_share_one_registry(tmp_path, small_data):
    home = tmp_path / "home"
    procs = [subprocess.Popen([sys.executable, "-m", "modelreg.cli", "--home", str(home), "train-and-register",
                               "--data", str(small_data), "--model", name, *FAST_RUN, "--json"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for name in ("first", "second")]
    try:
        outputs = [p.communicate(timeout=600) for p in procs]
        for p, (_, err) in zip(procs, outputs):
            assert p.returncode == 0, err.decode()[-2000:]
        assert len(deployments.recorded(home, CHAIN_ID)) == 1  # one registry, none orphaned
        events = _events(home)
        assert events["DatasetRegistered"] == 1 and events["ModelRegistered"] == 2
        assert events["VersionCommitted"] == 4
    finally:
        from modelreg.devnet import manager

        manager.down(home)
