"""The data directory has one owner: `Home` names every path in it, and no other module builds one."""

import ast
import os
from pathlib import Path

import pytest

from modelreg.chain import deployments
from modelreg.devnet import manager
from modelreg.errors import ConfigInvalid
from modelreg.home import ENV_VAR, Home, registry_key, resolve_home, send_lock, setup_lock
from modelreg.ipfs.store import describe_node, open_ipfs
from modelreg.service.config import Config, load_config, save_config
from modelreg.service.index import EventIndex

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ("registry", "cli", "training", "hardhat-free-devnet", "contracts")
ADDRESS = "0xAbCdEf0123456789aBcDeF0123456789AbCdEf01"

# The layout on disk: existing data directories (and tests/fixtures/replay_anywhere/home) rely on
# these names, so a change here is a migration, not a rename.
LAYOUT = {
    "config": "config.toml",
    "deployments": "deployments.json",
    "ipfs": "ipfs",
    "devnet": "devnet",
    "index": f"index/1337-{ADDRESS.lower()}.sqlite",
    "replays": f"replays/1337-{ADDRESS.lower()}.json",
    "runs": "runs",
    "token_cache": "cache/tokens",
    "setup_lock_file": "setup.lock",
    "send_lock_file": "send.lock",
    "nonce_locks": "locks",
    "scratch": ".",
}
TOPS = {Path(p).parts[0] for p in LAYOUT.values() if p != "."}  # the entries at the top of a data directory


def _named(home: Home) -> dict[str, Path]:
    """Every path `Home` names: its properties, and its per-registry files for one registry."""
    found = {}
    for name, attribute in vars(Home).items():
        if isinstance(attribute, property):
            found[name] = getattr(home, name)
        elif callable(attribute) and not name.startswith("_") and name != "of":
            found[name] = getattr(home, name)(1337, ADDRESS)
    return found


def test_home_names_the_whole_layout_of_the_data_directory():
    home = Home(Path("/data"))
    assert {name: os.path.relpath(path, "/data") for name, path in _named(home).items()} == LAYOUT


def test_no_two_things_share_a_path_in_the_data_directory():
    paths = [p for name, p in _named(Home(Path("/data"))).items() if name != "scratch"]
    assert len(set(paths)) == len(paths)
    assert all(not a.is_relative_to(b) for a in paths for b in paths if a != b)  # none inside another


def test_the_registry_key_is_the_chain_id_and_the_lower_case_address():
    home = Home(Path("/data"))
    assert registry_key(1, ADDRESS) == f"1-{ADDRESS.lower()}"
    assert home.index(1, ADDRESS).stem == home.replays(1, ADDRESS).stem == registry_key(1, ADDRESS)
    assert home.index(1, ADDRESS) != home.index(5, ADDRESS)  # two chains never share a cache


def test_every_entry_of_the_committed_fixture_home_is_named_by_home():
    fixture = ROOT / "tests" / "fixtures" / "replay_anywhere" / "home"
    assert {p.name for p in fixture.iterdir()} <= TOPS


def test_resolve_home_gives_the_flag_else_the_environment_as_a_home(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "from-env"))
    assert resolve_home() == Home((tmp_path / "from-env").resolve())
    assert resolve_home(tmp_path / "flag") == Home((tmp_path / "flag").resolve())
    assert resolve_home(str(tmp_path / "flag")).root.is_dir()


def test_resolve_home_refuses_a_directory_it_cannot_write(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigInvalid, match=r"cannot use .*file/home as the data directory: Not a directory"):
        resolve_home(tmp_path / "file" / "home")


def test_a_home_goes_wherever_the_data_directory_is_asked_for_as_a_path(tmp_path):
    home = Home(tmp_path)
    assert os.fspath(home) == str(home) == str(tmp_path)
    assert Path(home) == tmp_path
    assert Home.of(home) is home
    assert Home.of(str(tmp_path)) == Home.of(tmp_path) == home
    assert resolve_home(home) == home


def test_each_layer_writes_where_home_names_its_part(tmp_path):
    home = Home(tmp_path)
    save_config(home, Config())
    assert home.config.is_file() and load_config(str(tmp_path)) == Config()
    record = deployments.Deployment(address=ADDRESS, block=3, tx="0x01", deployer=ADDRESS)
    deployments.record(tmp_path, 1337, record)  # a plain path still works: the API takes one
    assert home.deployments.is_file() and deployments.lookup(home, 1337) == record
    cid = open_ipfs(home).add_bytes(b"block")
    assert [p.name for p in home.ipfs.rglob("*") if p.is_file() and p.name == cid] == [cid]
    assert describe_node(open_ipfs(home), home) == f"the embedded IPFS store in {home.ipfs}"
    index = EventIndex(str(tmp_path), chain_id=1337, address=ADDRESS, from_block=0,
                       head=lambda: 0, block_hash=lambda n: "0x00", fetch=lambda first, last: [])
    assert index.path == home.index(1337, ADDRESS)
    assert manager.status(home).directory == str(home.devnet)
    with setup_lock(home), send_lock(tmp_path):
        assert home.setup_lock_file.exists() and home.send_lock_file.exists()
    assert {p.name for p in tmp_path.iterdir()} <= TOPS


# -- no module but home.py builds a path in the data directory -----------------------------------------
def _homeish(node: ast.AST) -> bool:
    """An expression that stands for the data directory itself: `home`, `self.home`, `home_of()`,
    `Path(home)`, `home.root`."""
    if isinstance(node, ast.Name):
        return "home" in node.id.lower()
    if isinstance(node, ast.Attribute):
        return "home" in node.attr.lower() or (node.attr in ("root", "scratch") and _homeish(node.value))
    if isinstance(node, ast.Call):
        return _homeish(node.func) or any(_homeish(a) for a in node.args)
    return False


def _layout_literal(node: ast.AST) -> bool:
    return (isinstance(node, ast.Constant) and isinstance(node.value, str) and bool(node.value)
            and Path(node.value).parts[0] in TOPS)


def path_building(source: str) -> list[int]:
    """The lines of `source` that build a path in the data directory by hand: a join onto the home
    itself, or a join of a name of its layout onto anything."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            if _homeish(node.left) or _layout_literal(node.right):
                lines.append(node.lineno)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) in ("join", "joinpath"):
            args = [*([node.func.value] if node.func.attr == "joinpath" else []), *node.args]
            if (args and _homeish(args[0])) or any(_layout_literal(a) for a in args[1:]):
                lines.append(node.lineno)
        elif isinstance(node, ast.JoinedStr):
            parts = node.values
            for value, after in zip(parts, parts[1:], strict=False):
                if (isinstance(value, ast.FormattedValue) and _homeish(value.value)
                        and isinstance(after, ast.Constant) and str(after.value).startswith(("/", os.sep))):
                    lines.append(node.lineno)
    return lines


@pytest.mark.parametrize("source", [
    'Path(home) / "ipfs"',
    "self.home / NONCE_LOCKS",
    'registry.home.root / "cache" / "tokens"',
    'home_of() / "runs"',
    'runs = directory / "runs"',
    'os.path.join(home, "index")',
    'Path(home).joinpath("replays")',
    'f"the store in {home_of()}/ipfs"',
    'where / "deployments.json"',
])
def test_the_check_finds_a_path_built_by_hand_in_the_data_directory(source):
    assert path_building(source) == [1]


@pytest.mark.parametrize("source", [
    "home.ipfs / 'blocks'",
    "Home.of(home).devnet / SERVER_FILE",
    "self.root / 'pins.sqlite'",
    'f"{home.ipfs} is full"',
    'click.group("ipfs")',
])
def test_the_check_lets_a_layer_build_inside_its_own_part(source):
    assert path_building(source) == []


def test_no_module_but_home_builds_a_path_in_the_data_directory():
    offenders = []
    for folder in SOURCE:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path == ROOT / "registry" / "home.py":
                continue
            offenders += [f"{path.relative_to(ROOT)}:{line}" for line in path_building(path.read_text(encoding="utf-8"))]
    assert not offenders, f"ask modelreg.home.Home for the path instead: {offenders}"
