"""The Kubo client, against KuboRpcTestDouble (no Kubo daemon can be installed here)."""

import dataclasses
import socket
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner

from modelreg.cli.main import cli
from modelreg.errors import (
    CarInvalid,
    CidMismatch,
    InputInvalid,
    IpfsAnswerInvalid,
    IpfsRefused,
    IpfsTimeout,
    IpfsUnavailable,
)
from modelreg.ipfs import unixfs
from modelreg.ipfs.embedded import EmbeddedIpfs
from modelreg.ipfs.kubo import KuboIpfs, api_url
from modelreg.ipfs.store import open_ipfs
from tests.registry.ipfs.kubo_test_double import KuboRpcTestDouble
from tests.registry.ipfs.unixfs_patterns import pattern_bytes

MiB = 1 << 20


@pytest.fixture
def kubo(tmp_path):
    with KuboRpcTestDouble(tmp_path / "daemon") as double:
        yield double


def client(tmp_path, api, profile="unixfs-v1-2025"):
    return open_ipfs(tmp_path / "home", api=api, profile=profile)


@pytest.mark.parametrize("profile", ["unixfs-v1-2025", "unixfs-v0-2015"])
def test_add_sends_the_profiles_parameters_and_the_cid_matches_the_local_one(
        tmp_path, kubo, profile):
    data = pattern_bytes(3 * MiB + 1, seed=1)
    (tmp_path / "f").write_bytes(data)
    ipfs = client(tmp_path, kubo.url, profile)
    cid = ipfs.add(tmp_path / "f")
    assert cid == EmbeddedIpfs(tmp_path / "x", unixfs.profile_named(profile)).cid_of(tmp_path / "f")
    (endpoint, params), = [r for r in kubo.requests if r[0] == "add"]
    p = unixfs.profile_named(profile)
    assert params["chunker"] == [f"size-{p.chunk_size}"]
    assert params["raw-leaves"] == [str(p.raw_leaves).lower()]
    assert params["cid-version"] == [str(p.cid_version)]
    assert params["hash"] == ["sha2-256"] and params["trickle"] == ["false"]
    assert params["max-file-links"] == [str(p.max_links)]
    assert params["max-hamt-fanout"] == [str(p.hamt_fanout)]
    assert ipfs.pins() == [cid]


def test_round_trip_through_the_daemon_add_get_export_import_get(tmp_path, kubo):
    data = pattern_bytes(2 * MiB + 3, seed=2)
    ipfs = client(tmp_path, kubo.url)
    cid = ipfs.add_bytes(data)
    ipfs.get(cid, tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == data
    ipfs.export_car(cid, tmp_path / "f.car")
    with KuboRpcTestDouble(tmp_path / "daemon2") as other:
        second = client(tmp_path, other.url)
        assert second.import_car(tmp_path / "f.car") == [cid]
        assert second.pins() == [cid]
        assert second.cat(cid) == data


def test_pin_unpin_and_gc_reach_the_daemon(tmp_path, kubo):
    ipfs = client(tmp_path, kubo.url)
    cid = ipfs.add_bytes(b"manifest", pin=False)
    assert ipfs.pins() == []
    ipfs.pin(cid)
    assert ipfs.pins() == [cid]
    ipfs.unpin(cid)
    assert ipfs.gc() == 1 and ipfs.pins() == []
    with pytest.raises(IpfsUnavailable, match="refused pin/rm of .*not pinned"):
        ipfs.unpin(cid)


def test_a_daemon_returning_another_cid_is_an_error(tmp_path):
    with KuboRpcTestDouble(tmp_path / "daemon", mode="wrong-cid") as kubo:
        ipfs = client(tmp_path, kubo.url)
        with pytest.raises(CidMismatch, match=f"{kubo.url} stored the file as bafkrei.*"
                                              "but unixfs-v1-2025 gives bafkrei"):
            ipfs.add_bytes(b"weights")


def test_a_daemon_ignoring_max_file_links_is_caught_by_the_cid_comparison(tmp_path):
    # This double keeps 174 links per node whatever the request says; a profile wanting 4
    # disagrees as soon as a file has more than 4 chunks.
    small = dataclasses.replace(unixfs.V1_2025, name="tiny", chunk_size=1024, max_links=4)
    with KuboRpcTestDouble(tmp_path / "daemon", mode="ignores-max-links") as kubo:
        ipfs = KuboIpfs(kubo.url, tmp_path / "home", small)
        assert ipfs.add_bytes(b"x" * 4096)  # 4 chunks: one level either way
        with pytest.raises(CidMismatch, match="stored the file as .*ignored the per-request import "
                                              "parameters.*ipfs config profile apply tiny"):
            ipfs.add_bytes(pattern_bytes(5 * 1024, seed=1))


def test_a_daemon_answering_garbage_is_named(tmp_path):
    with KuboRpcTestDouble(tmp_path / "daemon", mode="garbage") as kubo:
        ipfs = client(tmp_path, kubo.url)
        with pytest.raises(IpfsAnswerInvalid, match=f"{kubo.url} answered add with text/html, not the "
                                                    "JSON Kubo's RPC sends"):
            ipfs.add_bytes(b"x")
        with pytest.raises(IpfsAnswerInvalid, match="answered pin/ls with text/html"):
            ipfs.pins()
        with pytest.raises(IpfsUnavailable, match="sent a bad DAG"):
            ipfs.cat("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")


def test_a_corrupted_block_from_the_daemon_is_caught_on_get(tmp_path):
    with KuboRpcTestDouble(tmp_path / "daemon", mode="corrupt-export") as kubo:
        ipfs = client(tmp_path, kubo.url)
        cid = ipfs.add_bytes(pattern_bytes(2 * MiB, seed=3))
        with pytest.raises(IpfsUnavailable, match=f"bad DAG for {cid}: CAR block .* does not"):
            ipfs.get(cid, tmp_path / "out")
        assert not (tmp_path / "out").exists()
        with pytest.raises(CarInvalid, match="does not match its CID"):
            ipfs.export_car(cid, tmp_path / "x.car")
        assert not (tmp_path / "x.car").exists()


def test_a_daemon_that_is_down_is_named_with_its_url(tmp_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ipfs = client(tmp_path, f"http://127.0.0.1:{port}")
    with pytest.raises(IpfsRefused, match=f"nothing listens at http://127.0.0.1:{port}, the IPFS "
                                          "API.*\\(add\\): connection refused"):
        ipfs.add_bytes(b"x")


def test_only_hash_needs_no_daemon(tmp_path):
    (tmp_path / "f").write_bytes(b"abc")
    assert client(tmp_path, "http://127.0.0.1:9").cid_of(tmp_path / "f") == (
        EmbeddedIpfs(tmp_path / "x").cid_of(tmp_path / "f"))


def test_api_accepts_urls_and_multiaddrs_and_names_a_bad_one():
    assert api_url("http://127.0.0.1:5001") == "http://127.0.0.1:5001"
    assert api_url("127.0.0.1:5001") == "http://127.0.0.1:5001"
    assert api_url("https://ipfs.example") == "https://ipfs.example:443"
    assert api_url("/ip4/10.0.0.1/tcp/5001") == "http://10.0.0.1:5001"
    assert api_url("/ip6/::1/tcp/5001/http") == "http://[::1]:5001"
    assert api_url("/dns4/kubo.local/tcp/5001/https") == "https://kubo.local:5001"
    for bad in ("ftp://x", "not a url", "/ip4/1.2.3", "/ip4/1.2.3.4/tcp/0", "/ip6/1.2.3.4/tcp/1",
                "/garbage", "/ip4/1.2.3.4/udp/5001", "http://[::1", "http://127.0.0.1:99999"):
        with pytest.raises(InputInvalid, match="IPFS API address .* is not an http"):
            api_url(bad)


def test_paths_inside_a_directory_are_resolved_here_over_verified_blocks(tmp_path, kubo):
    # The daemon only exports the directory's DAG; the path is walked locally, every block checked.
    (tmp_path / "m" / "sub").mkdir(parents=True)
    (tmp_path / "m" / "config.json").write_bytes(b'{"n_layer": 2}')
    (tmp_path / "m" / "sub" / "w.bin").write_bytes(pattern_bytes(2 * MiB + 1, seed=4))
    source = EmbeddedIpfs(tmp_path / "source")
    cid = source.add(tmp_path / "m")
    source.export_car(cid, tmp_path / "m.car")
    ipfs = client(tmp_path, kubo.url)
    assert ipfs.import_car(tmp_path / "m.car") == [cid]
    assert ipfs.cat(f"{cid}/config.json") == b'{"n_layer": 2}'
    assert [e.name for e in ipfs.ls(cid)] == ["config.json", "sub"]
    ipfs.get(f"{cid}/sub", tmp_path / "out")
    assert (tmp_path / "out" / "w.bin").read_bytes() == pattern_bytes(2 * MiB + 1, seed=4)


def test_a_daemon_that_drips_its_answer_ends_the_call_within_its_deadline(tmp_path):
    # Every read gets a byte before a per-read timeout could fire; only the overall deadline ends it.
    with KuboRpcTestDouble(tmp_path / "daemon", mode="slow-drip") as kubo:
        ipfs = KuboIpfs(kubo.url, tmp_path / "home", timeout=1)
        started = time.monotonic()
        with pytest.raises(IpfsTimeout, match=f"{kubo.url} did not finish pin/ls within 1 s"):
            ipfs.pins()
        assert time.monotonic() - started < 2
        result = CliRunner().invoke(cli, ["--home", str(tmp_path / "h"), "ipfs", "ls", "--ipfs-api", kubo.url,
                                          "--timeout", "1"])
        assert result.exit_code == 2
        assert result.output.splitlines()[0].startswith(f"Error: the IPFS API at {kubo.url} did not finish "
                                                        "pin/ls within 1 s")
        assert "allow more with --timeout (now 1 s)" in result.output


def test_an_answer_that_is_not_kubos_is_named_as_such(tmp_path):
    # An HTTP server on the port that is not Kubo's RPC (a gateway, a web app): 404 in plain text.
    with ThreadingHTTPServer(("127.0.0.1", 0), SimpleHTTPRequestHandler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            url = f"http://127.0.0.1:{server.server_port}"
            with pytest.raises(IpfsAnswerInvalid, match=f"{url} answered pin/ls with HTTP 501"):
                client(tmp_path, url).pins()
        finally:
            server.shutdown()


def test_a_file_whose_cid_differs_is_left_unpinned_on_the_daemon(tmp_path):
    (tmp_path / "w.bin").write_bytes(pattern_bytes(3 * MiB, seed=6))
    with KuboRpcTestDouble(tmp_path / "daemon", mode="wrong-cid") as kubo:
        with pytest.raises(CidMismatch, match="stored the file as"):
            client(tmp_path, kubo.url).add(tmp_path / "w.bin")
        assert kubo.store.pins() == []
