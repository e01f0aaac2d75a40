"""A Kubo daemon as IPFS storage, through its RPC API, with every CID checked against our own."""

import contextlib
import io
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import ipfshttpclient
from ipfshttpclient import exceptions as rpc
from ipfshttpclient.http_common import multiaddr_to_url_data

from modelreg import caps
from modelreg._files import open_regular
from modelreg.errors import CarInvalid, CidMismatch, InputInvalid, IpfsUnavailable
from modelreg.ipfs import directory, unixfs
from modelreg.ipfs.car import verify_car
from modelreg.ipfs.embedded import EmbeddedIpfs

T = TypeVar("T")


def api_multiaddr(api: str) -> str:
    """ipfshttpclient wants a multiaddr; accept the URL form people type too. InputInvalid unless
    the result is an address the client can use (checked here, before anything is opened)."""
    problem = (f"IPFS API address {api!r} is not an http(s) URL or a multiaddr; "
               "use e.g. http://127.0.0.1:5001 or /ip4/127.0.0.1/tcp/5001")
    addr = api
    if not api.startswith("/"):
        try:
            url = urlsplit(api if "://" in api else f"http://{api}")
            port = url.port or (443 if url.scheme == "https" else 80)
        except ValueError:  # an unclosed [ipv6], a port that is not a number or out of range
            raise InputInvalid(problem) from None
        host = url.hostname
        if url.scheme not in ("http", "https") or not host:
            raise InputInvalid(problem)
        proto = "ip6" if ":" in host else "ip4" if host.replace(".", "").isdigit() else "dns"
        addr = f"/{proto}/{host}/tcp/{port}/{url.scheme}"
    try:
        multiaddr_to_url_data(addr, "api/v0")
    except (rpc.AddressError, ValueError):  # the multiaddr library raises ValueError subclasses
        raise InputInvalid(problem) from None
    return addr


def _root_of(reply, source) -> dict:
    """The entry of an `add` reply for `source` itself: a directory's reply lists every entry
    under it, each named by its path, the directory's own name last."""
    if not isinstance(reply, list):
        return reply
    name = Path(str(source)).name
    for entry in reversed(reply):
        if entry["Name"] == name:
            return entry
    raise KeyError(f"no entry named {name!r}")


class KuboIpfs:
    """A Kubo daemon: adds use the profile's chunker and CID options and must return the CID
    computed here; reads come back as a CAR whose every block is verified locally."""

    def __init__(self, api: str, home: str | os.PathLike,
                 profile: unixfs.Profile = unixfs.V1_2025, timeout: float = 120):
        self.api = api
        address = api_multiaddr(api)  # before the local store is created: a bad address writes nothing
        self.profile = profile
        # Fetched DAGs land unpinned in the local store, where they are verified and then
        # read; gc clears them.
        self.local = EmbeddedIpfs(home, profile)
        # ipfshttpclient 0.7's connect() refuses every Kubo >= 0.8 (its VERSION_MAXIMUM),
        # though the RPC endpoints used here are unchanged since; building the Client
        # directly skips only that version gate.
        self.client = ipfshttpclient.Client(address, timeout=timeout)

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except (rpc.ConnectionError, rpc.TimeoutError) as e:
            raise IpfsUnavailable(f"cannot reach the Kubo daemon at {self.api} ({what}): "
                                  f"{type(e).__name__}", api=self.api) from None
        except rpc.ErrorResponse as e:
            raise IpfsUnavailable(f"the Kubo daemon at {self.api} refused {what}: {e}") from None
        except (rpc.Error, AssertionError, KeyError, TypeError, ValueError) as e:
            raise IpfsUnavailable(f"the Kubo daemon at {self.api} answered garbage to {what} "
                                  f"({type(e).__name__}: {e}); is that URL a Kubo RPC API?"
                                  ) from None

    def _add_options(self) -> dict:
        p = self.profile
        # Kubo has no per-request max-links; its balanced layout takes the count from its
        # Import config, so a daemon configured otherwise is caught by the CID comparison.
        return {"chunker": f"size-{p.chunk_size}", "raw_leaves": p.raw_leaves,
                "cid_version": p.cid_version, "trickle": False, "opts": {"hash": p.hash}}

    def _add(self, source, expected: str, pin: bool, **options) -> str:
        reply = self._call("add", lambda: self.client.add(source, pin=pin, **self._add_options(),
                                                          **options))
        got = self._call("add", lambda: str(unixfs.parse_cid(_root_of(reply, source)["Hash"])))
        if got != expected:
            what = "the directory" if options.get("recursive") else "the file"
            raise CidMismatch(f"the Kubo daemon at {self.api} stored {what} as {got}, but "
                              f"{self.profile.name} gives {expected}; configure the daemon "
                              f"with that profile (ipfs config profile apply {self.profile.name})")
        return got

    def add(self, path, pin=True, *, follow_symlinks=False, open_file=None) -> str:
        """Add a file or a directory (recursively, hidden files included, as the local CID is
        computed); the CID is computed here first, reading through `open_file` when given, so
        bad input never reaches the daemon."""
        expected = self.cid_of(path, follow_symlinks=follow_symlinks, open_file=open_file)
        if not Path(path).is_dir():
            return self._add(str(path), expected, pin)
        # The client walks the directory itself; period_special=False keeps dotfiles.
        return self._add(str(path), expected, pin, recursive=True, period_special=False,
                         follow_symlinks=follow_symlinks)

    def add_bytes(self, data: bytes, pin=True) -> str:
        expected = str(unixfs.root_of(io.BytesIO(data), self.profile))
        return self._add(io.BytesIO(data), expected, pin)

    def cid_of(self, path, *, follow_symlinks=False, open_file=None) -> str:
        return self.local.cid_of(path, follow_symlinks=follow_symlinks, open_file=open_file)

    def _fetch(self, cid: str) -> str:
        """Bring the DAG under `cid` into the local store, every block verified."""
        cid = str(unixfs.parse_cid(cid))
        with tempfile.TemporaryDirectory(dir=self.local.store.root) as tmp:
            car = Path(tmp) / "fetch.car"
            self._export_to(cid, car)
            try:
                roots = self.local.import_car(car, pin=False)
            except CarInvalid as e:
                raise IpfsUnavailable(f"the Kubo daemon at {self.api} sent a bad DAG for "
                                      f"{cid}: {e}") from None
        if roots != [cid]:
            raise IpfsUnavailable(f"the Kubo daemon at {self.api} exported roots {roots} "
                                  f"when asked for {cid}")
        return cid

    def _export_to(self, cid: str, path: Path) -> None:
        def stream():
            with open(path, "wb") as f:  # streamed to disk, bounded in bytes and time (modelreg.caps)
                # slack: a CAR adds a header and a CID per block, a DAG its internal nodes
                slack = caps.current().max_bytes // 32 + (1 << 20)
                for chunk in caps.capped_stream(self.client.dag.export(cid, stream=True),
                                                f"the DAG of {cid} from {self.api}", slack=slack):
                    f.write(chunk)

        self._call(f"dag/export of {cid}", stream)

    def _fetch_path(self, path: str) -> str:
        """Fetch the DAG of a CID or of a path inside a directory; the path is resolved
        locally, over verified blocks, so the daemon cannot redirect it."""
        parts = [p for p in str(path).removeprefix("/ipfs/").split("/") if p]
        if len(parts) <= 1:
            return self._fetch(str(path))
        self._fetch(parts[0])
        return str(directory.resolve("/".join(parts), self.local.store.get))

    def get(self, cid, out_path) -> None:
        self.local.get(self._fetch_path(cid), out_path)

    def cat(self, cid) -> bytes:
        return self.local.cat(self._fetch_path(cid))

    def ls(self, cid) -> list[directory.Entry]:
        return self.local.ls(self._fetch_path(cid))

    def pin(self, cid) -> None:
        cid = str(unixfs.parse_cid(cid))
        self._call(f"pin/add of {cid}", lambda: self.client.pin.add(cid))

    def unpin(self, cid) -> None:
        cid = str(unixfs.parse_cid(cid))
        self._call(f"pin/rm of {cid}", lambda: self.client.pin.rm(cid))

    def pins(self) -> list[str]:
        reply = self._call("pin/ls", lambda: self.client.pin.ls(type="recursive"))
        return sorted(self._call("pin/ls", lambda: list(reply["Keys"])))

    def gc(self) -> int:
        """Run the daemon's repo gc; return how many blocks it removed."""
        removed = self._call("repo/gc", lambda: self.client.repo.gc())
        return self._call("repo/gc", lambda: sum(1 for r in removed if "Key" in r))

    def export_car(self, cid, path) -> None:
        """The daemon's CAR of `cid`, written only once every block in it checks out."""
        cid = str(unixfs.parse_cid(cid))
        out = Path(path)
        if not out.parent.is_dir():
            raise InputInvalid(f"cannot write {out}: the directory {out.parent} does not exist")
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
        os.close(fd)
        try:
            self._export_to(cid, Path(tmp))
            with open(tmp, "rb") as f:
                verify_car(f)
            os.replace(tmp, out)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def import_car(self, path) -> list[str]:
        """Send a CAR to the daemon after checking every block here; the daemon pins its roots."""
        with open_regular(path) as f:
            roots = [str(r) for r in verify_car(f)]
            f.seek(0)
            reply = self._call("dag/import", lambda: self.client.dag.imprt(f))
        got = self._call("dag/import", lambda: [str(reply["Root"]["Cid"]["/"])])
        if got != roots[:1]:
            raise IpfsUnavailable(f"the Kubo daemon at {self.api} imported {got}, "
                                  f"the CAR's roots are {roots}")
        return roots
