"""`modelreg ipfs ...` through click, with the root group's error handling."""

import json

import click
import pytest
from click.testing import CliRunner

from modelreg.cli.ipfs import ipfs
from modelreg.cli.main import Group
from modelreg.ipfs import unixfs
from tests.registry.ipfs.kubo_test_double import KuboRpcTestDouble
from tests.registry.ipfs.unixfs_patterns import pattern_bytes


@click.group(cls=Group)
def root():
    """Stand-in for the modelreg root group (which adds --home)."""


root.add_command(ipfs)


def run(tmp_path, *args):
    return CliRunner().invoke(root, ["ipfs", *map(str, args)],
                              obj={"home_flag": str(tmp_path / "home")})


@pytest.fixture
def weights(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(pattern_bytes(3 * (1 << 20) + 5, seed=1))
    return path


def test_every_command_has_help_text():
    for name, command in ipfs.commands.items():
        assert command.help, f"ipfs {name} has no help text"
    assert ipfs.help


def test_add_get_export_import_get_round_trip(tmp_path, weights):
    added = run(tmp_path, "add", weights, "--json")
    assert added.exit_code == 0, added.output
    cid = json.loads(added.output)["cid"]
    assert run(tmp_path, "get", cid, "-o", tmp_path / "out").exit_code == 0
    assert run(tmp_path, "export-car", cid, "-o", tmp_path / "w.car").exit_code == 0
    other = tmp_path / "other"
    other.mkdir()
    imported = run(other, "import-car", tmp_path / "w.car", "--json")
    assert json.loads(imported.output) == {"roots": [cid]}
    assert run(other, "get", cid, "-o", tmp_path / "again").exit_code == 0
    assert (tmp_path / "again").read_bytes() == (tmp_path / "out").read_bytes() == (
        weights.read_bytes())


def test_only_hash_prints_the_v0_cid_and_stores_nothing(tmp_path, weights):
    result = run(tmp_path, "add", weights, "--profile", "unixfs-v0-2015", "--only-hash")
    assert result.exit_code == 0
    with open(weights, "rb") as f:
        assert result.output == f"{unixfs.root_of(f, unixfs.V0_2015)}  {weights}\n"
    assert json.loads(run(tmp_path, "ls", "--json").output) == {"pins": []}


def test_ls_unpin_gc(tmp_path, weights):
    cid = run(tmp_path, "add", weights).output.split()[0]
    assert cid in run(tmp_path, "ls").output
    assert run(tmp_path, "unpin", cid).output == f"unpinned {cid}\n"
    assert json.loads(run(tmp_path, "gc", "--json").output) == {"removed": 5}
    repin = run(tmp_path, "pin", cid)
    assert repin.exit_code == 2
    assert repin.output.startswith(f"Error: block {cid} is not in the store")


def test_a_corrupted_block_is_one_error_line_with_exit_code_1(tmp_path, weights):
    cid = run(tmp_path, "add", weights).output.split()[0]
    root = unixfs.parse_cid(cid)
    leaf = unixfs.links_of(root, (tmp_path / "home/ipfs/blocks" / cid[-3:-1] / cid).read_bytes())[0]
    path = tmp_path / "home/ipfs/blocks" / str(leaf)[-3:-1] / str(leaf)
    path.write_bytes(b"X" + path.read_bytes()[1:])
    result = run(tmp_path, "get", cid, "-o", tmp_path / "out")
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"Error: block {leaf} is corrupted: its bytes do not hash to its CID ({path})"]


def test_a_bad_cid_is_a_usage_error(tmp_path):
    result = run(tmp_path, "get", "nope", "-o", tmp_path / "out")
    assert result.exit_code == 2
    assert result.output.startswith("Error: 'nope' is not a CID")


def test_add_through_a_kubo_daemon(tmp_path, weights):
    with KuboRpcTestDouble(tmp_path / "daemon") as kubo:
        result = CliRunner().invoke(root, ["ipfs", "--ipfs-api", kubo.url, "add", str(weights)],
                                    obj={"home_flag": str(tmp_path / "home")})
        assert result.exit_code == 0, result.output
        assert kubo.store.pins() == [result.output.split()[0]]


@pytest.fixture
def model_dir(tmp_path, weights):
    d = tmp_path / "model"
    (d / "sub").mkdir(parents=True)
    (d / "config.json").write_text('{"n_layer": 2}')
    (d / "sub" / "weights.bin").write_bytes(weights.read_bytes())
    (d / "empty").write_bytes(b"")
    return d


def test_a_directory_is_added_listed_read_by_path_and_written_back(tmp_path, model_dir):
    added = run(tmp_path, "add", model_dir, "--json")
    assert added.exit_code == 0, added.output
    report = json.loads(added.output)
    cid = report["cid"]
    assert report["directory"] and report["size"] == 3 * (1 << 20) + 5 + 14
    listing = json.loads(run(tmp_path, "ls", cid, "--json").output)
    assert [e["name"] for e in listing["entries"]] == ["config.json", "empty", "sub"]
    assert run(tmp_path, "cat", f"{cid}/config.json").output == '{"n_layer": 2}'
    assert run(tmp_path, "get", cid, "-o", tmp_path / "out").exit_code == 0
    assert (tmp_path / "out/sub/weights.bin").read_bytes() == (model_dir / "sub/weights.bin").read_bytes()
    assert (tmp_path / "out/empty").read_bytes() == b""


def test_a_symbolic_link_in_a_directory_names_the_flag_that_follows_it(tmp_path, model_dir, weights):
    (model_dir / "link.bin").symlink_to(weights)
    refused = run(tmp_path, "add", model_dir)
    assert refused.exit_code == 2
    assert refused.output.splitlines() == [
        f"Error: {str(model_dir / 'link.bin')!r} is a symbolic link, and links are followed only when "
        "asked (follow_symlinks); pass --follow-symlinks to follow links"]
    assert run(tmp_path, "add", model_dir, "--follow-symlinks").exit_code == 0


def test_a_missing_path_inside_a_directory_is_one_error_line(tmp_path, model_dir):
    cid = run(tmp_path, "add", model_dir).output.split()[0]
    result = run(tmp_path, "cat", f"{cid}/nope.json")
    assert result.exit_code == 2
    assert result.output.splitlines() == [f"Error: directory {cid} has no entry 'nope.json'"]
