"""`modelreg devnet up|down|status|reset` and the manager behind them: pid and port files, on-demand start."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import click
import pytest
from click.testing import CliRunner

from modelreg.cli.devnet import devnet
from modelreg.devnet import manager
from modelreg.errors import ChainUnavailable
from tests.devnet.conftest import Client, http_send


def run(home, *args, input=None):
    return CliRunner().invoke(devnet, list(args), obj={"home_flag": str(home)}, input=input)


@pytest.mark.slow
def test_up_status_down_reset_cycle(tmp_path):
    result = run(tmp_path, "up", "--port", "0", "--json")
    assert result.exit_code == 0, result.output
    state = json.loads(result.output)
    assert state["running"] and state["block_number"] == 0
    assert json.loads((tmp_path / "devnet" / "server.json").read_text())["pid"] == state["pid"]
    assert manager.ensure_running(tmp_path) == state["url"]  # already up: the same server
    Client(http_send(state["url"]))("evm_mine")

    status = run(tmp_path, "status")
    assert status.exit_code == 0
    assert status.output.startswith(f"Devnet running at {state['url']} (pid {state['pid']}, block 1)")

    assert run(tmp_path, "down").output == "Devnet stopped.\n"
    assert not (tmp_path / "devnet" / "server.json").exists()
    assert json.loads(run(tmp_path, "status", "--json").output)["running"] is False
    assert run(tmp_path, "down").output == "No devnet was running.\n"

    refused = run(tmp_path, "reset", input="n\n")
    assert refused.exit_code == 1 and "Aborted" in refused.output
    assert (tmp_path / "devnet" / "chain.sqlite").exists()
    assert run(tmp_path, "reset", "--yes").exit_code == 0
    assert not (tmp_path / "devnet" / "chain.sqlite").exists()


def test_status_of_a_fresh_home_is_not_running(tmp_path):
    result = run(tmp_path, "status")
    assert result.exit_code == 0
    assert result.output == f"Devnet not running; chain in {tmp_path / 'devnet'}\n"


def test_a_stale_server_file_after_a_crash_reads_as_not_running(tmp_path):
    (tmp_path / "devnet").mkdir()
    (tmp_path / "devnet" / "server.json").write_text(
        json.dumps({"pid": 2**22 + 12345, "port": 1, "url": "http://127.0.0.1:1"}))
    assert manager.status(tmp_path).running is False
    assert manager.down(tmp_path) is False
    assert not (tmp_path / "devnet" / "server.json").exists()


def _unreaped_orphan() -> int:
    """The pid of a killed process that init has not reaped yet: a zombie that is not our child, as a
    SIGKILLed devnet is once the command that started it has exited."""
    starter = subprocess.run(["sh", "-c", "sleep 100 >/dev/null 2>&1 & echo $!"], capture_output=True, text=True)
    pid = int(starter.stdout)
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.05)
    return pid


def test_a_killed_devnet_not_yet_reaped_is_restarted_not_reported_as_hung(tmp_path):
    (tmp_path / "devnet").mkdir()
    (tmp_path / "devnet" / "server.json").write_text(
        json.dumps({"pid": _unreaped_orphan(), "port": 1, "url": "http://127.0.0.1:1"}))
    try:
        assert manager.up(tmp_path, port=0).running
    finally:
        manager.down(tmp_path)


def test_up_on_a_busy_port_says_which_port_and_how_to_fix_it(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ChainUnavailable, match=f"cannot listen on 127.0.0.1:{port}.*--port"):
            manager.up(tmp_path, port=port)


def test_every_command_has_help_text():
    assert devnet.help
    for name, command in devnet.commands.items():
        assert isinstance(command, click.Command) and command.help, name


def test_a_second_server_on_the_same_chain_refuses_to_start(served):
    home, state = served
    result = subprocess.run([sys.executable, "-m", "modelreg.devnet", "--home", str(home), "--port", "0"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "another devnet already serves" in result.stderr
    assert manager.status(home).pid == state.pid
