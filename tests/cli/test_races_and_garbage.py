"""Many processes in one data directory, hostile peers and files, a full disk: no crash, nothing lost."""

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from modelreg.chain.signer import Signer
from modelreg.errors import ManifestInvalid, SignerInvalid
from modelreg.formats.manifest import load_manifest

MODELREG = str(Path(sys.executable).parent / "modelreg")


def _weights(path: Path, seed: int, size: int = 4096) -> Path:
    save_file({"w": np.random.default_rng(seed).standard_normal(size).astype(np.float32)}, path)
    return path


def _run(home, *args, check=True) -> subprocess.CompletedProcess:
    done = subprocess.run([MODELREG, "--home", str(home), *map(str, args)], capture_output=True, text=True,
                          timeout=300)
    if check:
        assert done.returncode == 0, done.stderr
    return done


def _start(home, *args) -> subprocess.Popen:
    return subprocess.Popen([MODELREG, "--home", str(home), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _one_error_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), done.stderr
    assert "unexpected" not in lines[0]
    return lines[0]


@pytest.mark.slow
def test_commits_adds_gc_and_reindex_at_once_in_one_home_lose_no_pin(modelreg, tmp_path):
    # The suite's small size; bench/concurrency.py runs 20 adds and 8 commits.
    home = modelreg.home
    modelreg("commit", _weights(tmp_path / "first.safetensors", 0), "--model", "race")  # devnet and registry
    commits = [_start(home, "commit", _weights(tmp_path / f"c{i}.safetensors", 10 + i), "--model", "race",
                      "--json") for i in range(3)]
    adds = [_start(home, "ipfs", "add", _weights(tmp_path / f"a{i}.safetensors", 100 + i, 300_000), "--json")
            for i in range(4)]
    beside = [_start(home, "ipfs", "gc"), _start(home, "audit", "reindex", "--json")]
    for proc in [*commits, *adds, *beside]:
        proc.wait(300)
        assert proc.returncode == 0, proc.stderr.read()
    committed = [json.loads(p.stdout.read()) for p in commits]
    added = [json.loads(p.stdout.read())["cid"] for p in adds]
    _run(home, "ipfs", "gc")
    pins = set(json.loads(_run(home, "ipfs", "ls", "--json").stdout)["pins"])
    assert set(added) <= pins
    assert {c["checkpoint_cid"] for c in committed} | {c["manifest_cid"] for c in committed} <= pins
    assert sorted(c["version"] for c in committed) == [2, 3, 4]
    check = json.loads(_run(home, "ipfs", "check", "--json").stdout)
    assert check["ok"] and check["pins"] == len(pins)
    assert _run(home, "verify", committed[0]["checkpoint_cid"], "--model", "race").returncode == 0


@pytest.mark.slow
def test_a_refused_commit_takes_back_its_own_pins_and_keeps_the_users(modelreg, tmp_path):
    weights = _weights(tmp_path / "w.safetensors", 1)
    user_pin = json.loads(modelreg("ipfs", "add", weights, "--json").output)["cid"]
    modelreg("model", "register", "mine")
    before = set(json.loads(modelreg("ipfs", "ls", "--json").output)["pins"])
    refused = modelreg("commit", _weights(tmp_path / "v.safetensors", 2), "--model", "mine",
                       "--parent", "mine:7", expect=2)
    assert "Error:" in refused.output and "unexpected" not in refused.output
    assert modelreg("commit", weights, "--model", "mine", "--parent", "mine:7", expect=2)
    after = set(json.loads(modelreg("ipfs", "ls", "--json").output)["pins"])
    assert after == before and user_pin in after


class DeepJsonRpcServer(ThreadingHTTPServer):
    """A test double for a hostile JSON-RPC endpoint: every answer is 80,000 nested arrays."""

    def __init__(self):
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                body = b"[" * 80_000 + b"]" * 80_000
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)


def test_an_rpc_endpoint_answering_deep_json_is_one_error_line(tmp_path):
    server = DeepJsonRpcServer()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        done = _run(tmp_path, "audit", "models", "--rpc-url", url, "--registry", "0x" + "11" * 20, check=False)
        assert "nests 80000 levels deep" in _one_error_line(done)
    finally:
        server.shutdown()
        server.server_close()


def test_a_deeply_nested_manifest_is_refused_by_name():
    with pytest.raises(ManifestInvalid, match="nests 80000 levels deep"):
        load_manifest(b"[" * 80_000)


def test_the_recursion_limit_stays_at_pythons_default_after_every_import():
    code = ("import sys, modelreg.chain.client, modelreg.chain.signer, modelreg.cli.main, "
            "modelreg.service.connect, modelreg.devnet.accounts; print(sys.getrecursionlimit())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert int(out) == 1000


@pytest.mark.parametrize("case", ["malformed IPv6 rpc_url", "deeply nested TOML", "config.toml a directory",
                                  "rpc_url with a bad port"])
def test_a_hostile_configuration_is_one_error_line(tmp_path, case):
    config = tmp_path / "config.toml"
    if case == "config.toml a directory":
        config.mkdir()
    elif case == "deeply nested TOML":
        config.write_text("x = " + "[" * 50_000 + "]" * 50_000 + "\n")
    else:
        url = "http://[::1/" if "IPv6" in case else "http://127.0.0.1:99999999/"
        config.write_text(f'[chain]\nrpc_url = "{url}"\n')
    line = _one_error_line(_run(tmp_path, "config", "show", check=False))
    assert str(config) in line or "rpc_url" in line


def test_a_keystore_that_is_a_device_is_refused_without_reading_it():
    with pytest.raises(SignerInvalid, match="character device"):
        Signer.from_keystore("/dev/zero", "password")


def test_an_endless_keystore_file_is_refused_past_its_size_cap(tmp_path):
    big = tmp_path / "keystore.json"
    big.write_bytes(b" " * (1024 * 1024))
    with pytest.raises(SignerInvalid, match="over 65536 bytes"):
        Signer.from_keystore(big, "password")


@pytest.fixture
def small_disk(tmp_path):
    """A 48 MiB tmpfs mounted here (root only); skipped elsewhere, except under CI, where it fails."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"cannot mount a tmpfs under CI: {done.stderr.decode().strip()}")
        pytest.skip("mounting a tmpfs needs root")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.slow
def test_a_commit_on_a_full_disk_names_the_path_and_the_next_run_commits_once(small_disk, tmp_path):
    from modelreg.devnet import manager

    home = small_disk / "home"
    try:
        _run(home, "commit", _weights(tmp_path / "first.safetensors", 0), "--model", "full")
        big = _weights(tmp_path / "big.safetensors", 1, 2_000_000)  # 8 MB
        filler = small_disk / "filler"
        free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
        filler.write_bytes(b"\0" * (free - 2 * 1024 * 1024))
        line = _one_error_line(_run(home, "commit", big, "--model", "full", check=False))
        assert "no space left" in line and str(home) in line
        pins_before = json.loads(_run(home, "ipfs", "ls", "--json").stdout)["pins"]
        filler.unlink()
        again = json.loads(_run(home, "commit", big, "--model", "full", "--json").stdout)
        assert again["version"] == 2
        history = json.loads(_run(home, "audit", "history", "full", "--json").stdout)
        assert [v["version"] for v in history] == [1, 2]
        pins = set(json.loads(_run(home, "ipfs", "ls", "--json").stdout)["pins"])
        assert pins == set(pins_before) | {again["checkpoint_cid"], again["manifest_cid"]}
        assert json.loads(_run(home, "ipfs", "check", "--json").stdout)["ok"]
        assert not list(home.glob(".tmp-*")) and not list((home / "ipfs").rglob(".tmp-*"))
    finally:
        manager.down(home)
