"""Fixtures for CLI tests: data directories with their own embedded devnet, a small dataset."""

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from modelreg.cli.main import cli
from modelreg.devnet import manager

CORPUS = Path(__file__).resolve().parents[2] / "training" / "corpus" / "shakespeare"

# A test-sized run: 6 steps, a checkpoint every 3, on ~60 KB of text: two versions in seconds.
FAST_RUN = ["--steps", "6", "--eval-interval", "3"]


class Modelreg:
    """Runs `modelreg --home HOME ...` in-process, as a user would type it."""

    def __init__(self, home: Path):
        self.home = home

    def __call__(self, *args, expect: int | None = 0):
        result = CliRunner().invoke(cli, ["--home", str(self.home), *map(str, args)], catch_exceptions=False)
        if expect is not None:
            assert result.exit_code == expect, f"exit {result.exit_code}, output:\n{result.output}"
        return result


@pytest.fixture(scope="session")
def small_data(tmp_path_factory) -> Path:
    """Two small text files cut from the committed corpus."""
    data = tmp_path_factory.mktemp("data")
    for source in sorted(CORPUS.glob("*.txt"))[:2]:
        (data / source.name).write_bytes(source.read_bytes()[:30_000])
    return data


def _home(path: Path):
    yield Modelreg(path)
    manager.down(path)  # the devnet this data directory started on demand


@pytest.fixture
def modelreg(tmp_path):
    """A fresh data directory; its devnet is stopped afterwards."""
    yield from _home(tmp_path / "home")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, small_data):
    """A data directory where `gpt-tiny` was trained and registered (2 versions) on the devnet."""
    home = tmp_path_factory.mktemp("trained")
    for run in _home(home):
        run("train-and-register", "--data", small_data, "--model", "gpt-tiny", *FAST_RUN, "--json")
        yield run


def copy_file(src: Path, dst: Path) -> Path:
    shutil.copyfile(src, dst)
    return dst
