"""modelreg against real Kubo 0.42.0 daemons: one at Kubo's default import configuration, one per profile.

The CID Kubo gives must equal the one computed here, for files and directories, through modelreg's
client (every import parameter passed per request) and through Kubo's own `ipfs add --only-hash`.
Daemons start in well under a second and are shared per module. CI never skips these tests
(`make go-binaries` builds `.cache/bin/ipfs`).
"""

import dataclasses
import json
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from modelreg.cli.main import cli
from modelreg.devnet import manager
from modelreg.errors import CidMismatch, IpfsApiFileMissing, IpfsDropped, IpfsRefused, SymlinkRefused
from modelreg.ipfs import dagpb, directory, kubo, unixfs
from modelreg.ipfs.embedded import EmbeddedIpfs
from modelreg.ipfs.kubo import KuboIpfs
from tests.cli.conftest import CORPUS, Modelreg
from tests.registry.ipfs.kubo_daemon import KuboDaemon, require_kubo
from tests.registry.ipfs.test_directory import SHAPES, hugging_face_model, write
from tests.registry.ipfs.unixfs_patterns import pattern_bytes

PROFILES = [unixfs.V1_2025, unixfs.V0_2015]
MiB = 1 << 20
TINY_RUN = ["--steps", "2", "--eval-interval", "2"]  # one version: what goes through Kubo, not training
EMPTY_DIR = "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn"  # `ipfs init` pins it


@pytest.fixture(scope="module")
def stock(tmp_path_factory):
    """A daemon left at Kubo's default import configuration, as a new user runs it."""
    require_kubo()
    with KuboDaemon.started(tmp_path_factory.mktemp("kubo-stock")) as daemon:
        yield daemon


@pytest.fixture(scope="module", params=PROFILES, ids=lambda p: p.name)
def profiled(request, tmp_path_factory):
    """(profile, a daemon configured with it: `ipfs init --profile test,<profile>`)."""
    require_kubo()
    with KuboDaemon.started(tmp_path_factory.mktemp("kubo"), request.param.name) as daemon:
        yield request.param, daemon


def local_cid(path, profile) -> str:
    return EmbeddedIpfs(path.parent / f".local-{profile.name}", profile).cid_of(path)


def only_hash(daemon: KuboDaemon, path) -> str:
    """Kubo's own CID for `path`, from its CLI with the daemon's configured import settings."""
    return daemon.ipfs("add", "--only-hash", "-Q", "-r", "--hidden", str(path)).strip()


def modelreg(daemon_or_api, home, *args, expect=0):
    api = str(daemon_or_api.repo) if isinstance(daemon_or_api, KuboDaemon) else daemon_or_api
    result = CliRunner().invoke(cli, ["--home", str(home), "ipfs", *map(str, args), "--ipfs-api", api])
    assert result.exit_code == expect, result.output
    return result.output


def test_the_version_is_the_one_the_makefile_builds(stock):
    assert stock.ipfs("version", "--number").strip() == "0.42.0"


def test_the_profiled_daemons_import_with_the_profiles_parameters(profiled):
    profile, daemon = profiled
    imports = json.loads((daemon.repo / "config").read_text())["Import"]
    assert imports["CidVersion"] == profile.cid_version
    assert imports["UnixFSRawLeaves"] == profile.raw_leaves
    assert imports["UnixFSChunker"] == f"size-{profile.chunk_size}"
    assert imports["UnixFSFileMaxLinks"] == profile.max_links
    assert imports["UnixFSHAMTDirectorySizeEstimation"] == profile.hamt_estimate
    assert imports["UnixFSHAMTDirectoryMaxFanout"] == profile.hamt_fanout


@pytest.mark.parametrize("size", [0, 1, 256 << 10, (256 << 10) + 1, MiB, 3 * MiB + 7])
def test_kubo_only_hash_of_a_file_equals_the_local_cid(profiled, tmp_path, size):
    profile, daemon = profiled
    (tmp_path / "f").write_bytes(pattern_bytes(size, seed=size))
    assert only_hash(daemon, tmp_path / "f") == local_cid(tmp_path / "f", profile)


def test_kubo_only_hash_of_every_directory_shape_equals_the_local_cid(profiled, tmp_path):
    profile, daemon = profiled
    for name, make in SHAPES.items():
        (tmp_path / name).mkdir()
        make(tmp_path / name)
        assert only_hash(daemon, tmp_path / name) == local_cid(tmp_path / name, profile), name


def _estimate(profile, d) -> int:
    """The size `profile` measures directory `d` by against its HAMT threshold, as one node."""
    *_, root = directory.build_tree(d, dataclasses.replace(profile, hamt_threshold=1 << 40))
    if profile.hamt_estimate == "block":
        return len(root.data)
    return sum(len(link.name) + len(link.hash) for link in dagpb.decode_node(root.data, "").links)


def _at_and_over_the_threshold(root, profile):
    """Two directories of empty files: one whose size, as `profile` estimates it, is exactly its
    HAMT threshold (it stays one node), and one a byte over (it becomes a HAMT shard). Names stay
    under 127 bytes, so a byte more of name is a byte more of node."""
    at, over = root / "at", root / "over"
    write(root / "one" / f"{0:05d}{'x' * 100}")
    write(root / "two" / f"{0:05d}{'x' * 100}")
    write(root / "two" / f"{1:05d}{'x' * 100}")
    per_link = _estimate(profile, root / "two") - _estimate(profile, root / "one")
    names = [f"{i:05d}{'x' * 100}" for i in range(profile.hamt_threshold // per_link - 1)]
    for name in names:
        write(at / name)
    missing = profile.hamt_threshold - _estimate(profile, at)
    assert 0 < missing < len(names)
    for name in names[:missing]:
        (at / name).rename(at / f"{name}y")
    assert _estimate(profile, at) == profile.hamt_threshold
    at_names = sorted(p.name for p in at.iterdir())
    for name in at_names:
        write(over / name)
    (over / at_names[-1]).rename(over / f"{at_names[-1]}z")
    return at, over


def _root_type(daemon, cid) -> int:
    return dagpb.decode_unixfs(dagpb.decode_node(daemon.ipfs_bytes("block", "get", cid), "").data, "").type


@pytest.mark.slow
def test_kubo_only_hash_at_the_hamt_threshold_and_a_byte_over_equals_the_local_cid(profiled, tmp_path):
    profile, daemon = profiled
    at, over = _at_and_over_the_threshold(tmp_path, profile)
    for d, kind in ((at, dagpb.UNIXFS_DIRECTORY), (over, dagpb.UNIXFS_HAMT_SHARD)):
        cid = KuboIpfs(daemon.repo, tmp_path / "home", profile).add(d)  # raises unless the CIDs agree
        assert only_hash(daemon, d) == cid == local_cid(d, profile)
        assert _root_type(daemon, cid) == kind


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_a_stock_daemon_stores_every_directory_shape_with_the_profiles_cid(stock, tmp_path, profile):
    client = KuboIpfs(stock.repo, tmp_path / "home", profile)
    for name, make in SHAPES.items():
        (tmp_path / name).mkdir()
        make(tmp_path / name)
        assert client.add(tmp_path / name) == local_cid(tmp_path / name, profile), name


@pytest.mark.slow
def test_a_stock_daemon_stores_a_file_past_174_chunks_with_the_v1_cid(stock, tmp_path):
    # 175 MiB: 175 one-MiB chunks. Kubo's default is 174 links per node, unixfs-v1-2025's 1024;
    # before max-file-links was sent per request, this was the size where a stock Kubo disagreed.
    path = tmp_path / "shard.bin"
    with open(path, "wb") as f:
        f.truncate(175 * MiB)
    client = KuboIpfs(stock.repo, tmp_path / "home", unixfs.V1_2025)
    assert client.add(path) == local_cid(path, unixfs.V1_2025)


def test_max_file_links_and_the_chunker_reach_a_stock_daemon_per_request(stock, tmp_path):
    # A profile no Kubo config names: 1 KiB chunks, 4 links per node, so 5 KiB needs two levels.
    tiny = dataclasses.replace(unixfs.V1_2025, name="tiny", chunk_size=1024, max_links=4)
    data = pattern_bytes(5 * 1024 + 1, seed=5)
    (tmp_path / "f").write_bytes(data)
    assert KuboIpfs(stock.repo, tmp_path / "home", tiny).add(tmp_path / "f") == local_cid(tmp_path / "f", tiny)


@pytest.mark.slow
def test_a_stock_daemon_at_the_hamt_threshold_names_the_config_only_setting(stock, tmp_path):
    # Kubo takes the HAMT size estimation only from its config; the stock one ("links") leaves
    # this directory one node where unixfs-v1-2025 ("block") shards it.
    _, over = _at_and_over_the_threshold(tmp_path, unixfs.V1_2025)
    client = KuboIpfs(stock.repo, tmp_path / "home", unixfs.V1_2025)
    with pytest.raises(CidMismatch, match="Import.UnixFSHAMTDirectorySizeEstimation only from its config, "
                                          "where it is 'links'.*`ipfs config Import.UnixFSHAMTDirectory"
                                          "SizeEstimation block`"):
        client.add(over)


def test_paths_inside_a_directory_read_back_through_the_daemon(profiled, tmp_path):
    profile, daemon = profiled
    hugging_face_model(tmp_path / "m")
    client = KuboIpfs(daemon.repo, tmp_path / "home", profile)
    cid = client.add(tmp_path / "m")
    assert client.cat(f"{cid}/config.json") == (tmp_path / "m" / "config.json").read_bytes()
    assert [e.name for e in client.ls(cid)] == sorted(p.name for p in (tmp_path / "m").iterdir())
    client.get(cid, tmp_path / "out")
    for path in (tmp_path / "m").iterdir():
        assert (tmp_path / "out" / path.name).read_bytes() == path.read_bytes()


def test_every_ipfs_command_works_through_the_daemon(stock, tmp_path):
    hugging_face_model(tmp_path / "m")
    (tmp_path / "m" / "README.md").write_text(f"a model no other test adds: {tmp_path}\n")
    home = tmp_path / "home"
    cid = modelreg(stock, home, "add", tmp_path / "m", "--no-pin").split()[0]
    assert cid == local_cid(tmp_path / "m", unixfs.V1_2025)
    assert modelreg(stock, home, "add", tmp_path / "m", "--only-hash").split()[0] == cid
    assert cid not in json.loads(modelreg(stock, home, "ls", "--json"))["pins"]
    assert modelreg(stock, home, "pin", cid) == f"pinned {cid}\n"
    assert cid in json.loads(modelreg(stock, home, "ls", "--json"))["pins"]
    names = [e["name"] for e in json.loads(modelreg(stock, home, "ls", cid, "--json"))["entries"]]
    assert names == sorted(p.name for p in (tmp_path / "m").iterdir())
    assert modelreg(stock, home, "cat", f"{cid}/config.json") == (tmp_path / "m" / "config.json").read_text()
    modelreg(stock, home, "get", cid, "-o", tmp_path / "out")
    assert (tmp_path / "out" / "config.json").read_bytes() == (tmp_path / "m" / "config.json").read_bytes()

    # dag export: byte-identical to Kubo's own; import into a fresh daemon, which pins the root.
    modelreg(stock, home, "export-car", cid, "-o", tmp_path / "m.car")
    assert (tmp_path / "m.car").read_bytes() == stock.ipfs_bytes("dag", "export", cid)
    with KuboDaemon.started(tmp_path / "second") as second:
        assert modelreg(second, tmp_path / "h2", "import-car", tmp_path / "m.car") == f"imported and pinned {cid}\n"
        assert cid in second.ipfs("pin", "ls", "--type", "recursive", "-q").split()

    # unpin and gc: the blocks only this DAG holds go (the root and README; other tests pin the rest).
    assert modelreg(stock, home, "unpin", cid) == f"unpinned {cid}\n"
    assert json.loads(modelreg(stock, home, "gc", "--json"))["removed"] >= 2
    assert _digest(cid) not in {_digest(c) for c in stock.ipfs("refs", "local").split()}
    assert "cached blocks" in modelreg(stock, home, "clear-cache")


def test_ipfs_api_is_accepted_before_and_after_the_subcommand(stock, tmp_path):
    (tmp_path / "f").write_bytes(b"weights")
    before = CliRunner().invoke(cli, ["--home", str(tmp_path / "h"), "ipfs", "--ipfs-api", stock.api,
                                      "add", str(tmp_path / "f")])
    after = CliRunner().invoke(cli, ["--home", str(tmp_path / "h"), "ipfs", "add", str(tmp_path / "f"),
                                     "--ipfs-api", stock.api, "--timeout", "30"])
    assert before.exit_code == after.exit_code == 0, before.output + after.output
    assert before.output == after.output


def test_a_daemon_killed_mid_add_is_named_and_the_next_run_after_a_restart_recovers(tmp_path, monkeypatch):
    require_kubo()
    data = pattern_bytes(24 * MiB, seed=9)
    (tmp_path / "w.bin").write_bytes(data)
    with KuboDaemon.started(tmp_path / "kill") as daemon:
        port_before = daemon.api
        client = KuboIpfs(daemon.repo, tmp_path / "home", unixfs.V1_2025)
        real_parts, killer = kubo.file_parts, threading.Thread(target=daemon.kill)

        def parts_that_kill_the_daemon(*args):
            for part in real_parts(*args):
                killer.start()  # while the file's bytes go on the wire
                yield part

        monkeypatch.setattr(kubo, "file_parts", parts_that_kill_the_daemon)
        with pytest.raises(IpfsDropped, match=f"{daemon.repo} closed the connection in the middle of add"):
            client.add(tmp_path / "w.bin")
        killer.join()
        monkeypatch.undo()
        with pytest.raises(IpfsRefused, match="connection refused"):  # its stale api file names a dead port
            client.pins()
        (daemon.repo / "api").unlink()
        with pytest.raises(IpfsApiFileMissing, match="no Kubo daemon runs on the repo"):
            client.pins()

        daemon.restart()
        assert daemon.api != port_before  # found again through IPFS_PATH/api
        cid = client.add(tmp_path / "w.bin")
        assert cid == client.add(tmp_path / "w.bin")  # a second run adds nothing new
        assert sorted(client.pins()) == sorted([cid, EMPTY_DIR])
        daemon.ipfs("repo", "gc")
        dag = daemon.ipfs("refs", "-r", "--unique", cid).split() + [cid, EMPTY_DIR]
        local = daemon.ipfs("refs", "local").split()  # one line per block: a duplicate would show
        assert sorted(_digest(c) for c in local) == sorted(_digest(c) for c in dag)
        assert client.cat(cid) == data


def test_a_fetch_to_verify_is_not_pinned_and_the_cache_stays_within_its_limit(stock, tmp_path):
    source = KuboIpfs(stock.repo, tmp_path / "owner", unixfs.V1_2025)
    cids = [source.add_bytes(pattern_bytes(2 * MiB, seed=s)) for s in (2, 4, 6)]
    auditor = KuboIpfs(stock.repo, tmp_path / "auditor", unixfs.V1_2025, cache_bytes=3 * MiB)
    for cid in cids:
        assert len(auditor.cat(cid)) == 2 * MiB
        assert auditor.cache_size() <= 3 * MiB
    assert auditor.local.pins() == []
    assert auditor.clear_cache() > 0 and auditor.cache_size() == 0


def _digest(cid: str) -> bytes:
    """A block's multihash: `refs local` names blocks as CIDv1 raw whatever their codec."""
    return bytes(unixfs.parse_cid(cid).digest)


def test_no_third_party_warning_reaches_the_terminal(stock, tmp_path):
    done = subprocess.run([sys.executable, "-W", "default", "-m", "modelreg.cli", "--home", str(tmp_path / "h"),
                           "ipfs", "ls", "--ipfs-api", str(stock.repo)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


@pytest.mark.slow
def test_train_commit_verify_audit_and_replay_through_a_stock_daemon_and_from_an_auditors_directory(
        stock, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for source in sorted(CORPUS.glob("*.txt"))[:2]:
        (data / source.name).write_bytes(source.read_bytes()[:30_000])
    api = str(stock.repo)
    owner = Modelreg(tmp_path / "owner")
    try:
        trained = json.loads(owner("train-and-register", "--data", data, "--model", "gpt-kubo", *TINY_RUN,
                                   "--ipfs-api", api, "--json").output)
        last = trained["versions"][-1]
        assert last["checkpoint_cid"] in stock.ipfs("pin", "ls", "--type", "recursive", "-q").split()
        checkpoint = sorted(Path(trained["run_dir"]).glob("ckpt-*[0-9].safetensors"))[-1]
        committed = json.loads(owner("commit", checkpoint, "--model", "gpt-kubo-copy", "--ipfs-api", api,
                                     "--json").output)
        assert committed["checkpoint_cid"] == last["checkpoint_cid"]

        rpc_url = manager.status(owner.home).url
        registry = re.search(r"0x[0-9a-fA-F]{40}", (owner.home / "deployments.json").read_text()).group()
        auditor = Modelreg(tmp_path / "auditor")
        flags = ["--rpc-url", rpc_url, "--registry", registry, "--ipfs-api", api]
        verdict = json.loads(auditor("verify", last["checkpoint_cid"], "--model", "gpt-kubo", *flags,
                                     "--json").output)
        assert (verdict["status"], verdict["version"]) == ("VERIFIED", last["version"])
        assert EmbeddedIpfs(auditor.home).pins() == []  # fetched to verify: cached, not pinned
        said = auditor("verify", last["checkpoint_cid"], "--model", "gpt-kubo", *flags).output
        assert f"into a cache in {auditor.home}/ipfs (not pinned, trimmed past 1024 MiB" in said
        assert "`modelreg ipfs clear-cache` empties it" in said
        shown = auditor("audit", "show", "gpt-kubo", str(last["version"]), *flags).output
        assert "manifest: manifest verified" in shown, shown
        replayed = auditor("audit", "replay", "gpt-kubo", *flags).output
        assert "REPRODUCED" in replayed, replayed
        auditor("audit", "report", "gpt-kubo", "--format", "json", "-o", tmp_path / "report.json", *flags)
        report = json.loads((tmp_path / "report.json").read_text())
        (version,) = report["versions"]
        assert (version["verification"], version["checkpoint_cid"]) == ("manifest verified", last["checkpoint_cid"])
        assert report["ipfs_node"].startswith("kubo/0.42.0 (peer 12D3") and report["ipfs_node"].endswith(f"at {api}")
        assert report["links"]["gateway"] is None
    finally:
        manager.down(owner.home)


def test_a_symbolic_link_refused_here_stops_the_upload_and_pins_nothing(stock, tmp_path):
    hugging_face_model(tmp_path / "m")
    (tmp_path / "m" / "unique.txt").write_text(str(tmp_path))
    (tmp_path / "m" / "link").symlink_to(tmp_path / "m" / "config.json")
    pins = sorted(stock.ipfs("pin", "ls", "-q").split())
    with pytest.raises(SymlinkRefused):
        KuboIpfs(stock.repo, tmp_path / "home", unixfs.V1_2025).add(tmp_path / "m")
    assert sorted(stock.ipfs("pin", "ls", "-q").split()) == pins


def test_a_transfer_that_keeps_moving_outlasts_a_deadline_sized_for_small_calls(stock, tmp_path):
    # 48 MiB under a 1 s deadline: each 8 MiB moved adds a second, so a working daemon finishes.
    data = pattern_bytes(48 * MiB, seed=10)
    (tmp_path / "shard.bin").write_bytes(data)
    client = KuboIpfs(stock.repo, tmp_path / "home", unixfs.V1_2025, timeout=1)
    cid = client.add(tmp_path / "shard.bin")
    assert client.cat(cid) == data
