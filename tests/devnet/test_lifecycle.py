"""The devnet's lifecycle as a user meets it: the command that starts it says so, once; an idle
devnet stops by itself and keeps its chain; `devnet status` shows it."""

import json
import time

import pytest
from click.testing import CliRunner

from modelreg.cli.main import cli
from modelreg.devnet import manager

pytestmark = pytest.mark.slow  # a devnet started twice: about 8 s


def _run(home, *args):
    result = CliRunner().invoke(cli, ["--home", str(home), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_the_command_that_starts_the_devnet_says_so_once_with_url_pid_and_how_to_stop(tmp_path, monkeypatch):
    monkeypatch.setenv("MODELREG_NOTICES", "1")
    try:
        first = _run(tmp_path, "audit", "models", "--json")
        state = manager.status(tmp_path)
        assert first.stderr == (f"Started the embedded devnet of {tmp_path} at {state.url} (pid {state.pid}); it "
                                f"stops after 30 min without requests, or now with `modelreg --home {tmp_path} devnet "
                                "down`.\n")
        assert json.loads(first.stdout) == []  # stdout stays one JSON document
        assert _run(tmp_path, "audit", "models", "--json").stderr == ""
        status = _run(tmp_path, "devnet", "status").stdout
        assert status.startswith(f"Devnet running at {state.url} (pid {state.pid}, block ")
        assert status.endswith("it stops after 30 min without requests, or now with `modelreg devnet down`\n")
    finally:
        manager.down(tmp_path)


def test_an_idle_devnet_stops_by_itself_and_the_next_command_finds_its_chain(tmp_path, monkeypatch):
    monkeypatch.setenv(manager.IDLE_TIMEOUT_ENV, "1.5")
    try:
        _run(tmp_path, "audit", "models")  # starts it and deploys the registry: block 1
        started = manager.status(tmp_path)
        assert started.running and started.idle_timeout == 1.5 and started.block_number >= 1
        deadline = time.monotonic() + 20
        while manager._alive(started.pid) and time.monotonic() < deadline:  # no request: status() is one
            time.sleep(0.2)
        assert manager.status(tmp_path) == manager.DevnetStatus(False, str(tmp_path / "devnet"))
        assert (tmp_path / "devnet" / "chain.sqlite").exists()
        again = manager.up(tmp_path, port=0, idle_timeout=0)
        assert again.started and again.block_number == started.block_number and again.pid != started.pid
    finally:
        manager.down(tmp_path)


def test_a_request_in_progress_keeps_the_devnet_awake():
    now = [0.0]
    stopped = []
    watch = manager.IdleWatch(lambda: stopped.append(now[0]), 10, clock=lambda: now[0])
    watch.opened()
    now[0] = 100.0
    assert watch.idle_for() == 0.0  # a long eth_getLogs is not idleness
    watch.closed()
    now[0] = 105.0
    assert watch.idle_for() == 5.0
    now[0] = 111.0
    watch.run(poll=0)
    assert stopped == [111.0]


def test_the_idle_timeout_must_be_seconds(monkeypatch):
    monkeypatch.setenv(manager.IDLE_TIMEOUT_ENV, "half an hour")
    with pytest.raises(Exception, match="is not a number of seconds"):
        manager.idle_timeout_default()
