"""A Kubo daemon as IPFS storage, through its RPC API, with every CID checked against our own."""

import contextlib
import io
import os
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from modelreg import caps
from modelreg._files import open_regular
from modelreg.errors import (
    CarInvalid,
    CidMismatch,
    InputInvalid,
    IpfsAnswerInvalid,
    IpfsCallRejected,
    IpfsUnavailable,
)
from modelreg.home import HomeLike
from modelreg.ipfs import directory, unixfs
from modelreg.ipfs.car import verify_car
from modelreg.ipfs.embedded import EmbeddedIpfs
from modelreg.ipfs.kubo_rpc import KuboRpc, Part, api_url, file_parts

__all__ = ["KuboIpfs", "api_url", "add_options", "DEFAULT_CACHE_BYTES"]

DEFAULT_CACHE_BYTES = 1 << 30  # content fetched to verify or read, kept unpinned up to this size

# What Kubo 0.42 takes only from its config, never per request (core/commands/add.go: "always set
# from config"): how a directory's size is measured against the HAMT threshold, and the threshold.
_CONFIG_ONLY = (("Import.UnixFSHAMTDirectorySizeEstimation", "hamt_estimate", "links"),
                ("Import.UnixFSHAMTDirectorySizeThreshold", "hamt_threshold", "256KiB"))


def add_options(p: unixfs.Profile) -> dict:
    """Every import parameter Kubo 0.42's `add` takes per request, set to the profile's values,
    so a daemon at its default configuration stores files with the profile's CIDs."""
    return {"cid-version": p.cid_version, "raw-leaves": p.raw_leaves, "chunker": f"size-{p.chunk_size}",
            "hash": p.hash, "trickle": p.layout == "trickle", "max-file-links": p.max_links,
            "max-directory-links": 0, "max-hamt-fanout": p.hamt_fanout, "inline": False,
            "empty-dirs": True}


def _threshold_bytes(value: str) -> int | None:
    """Kubo's byte sizes ("256KiB", "1MB", "262144") in bytes; None for anything else."""
    units = {"KiB": 1 << 10, "MiB": 1 << 20, "KB": 1000, "MB": 1000**2, "B": 1, "": 1}
    for unit, factor in units.items():
        number = value[: len(value) - len(unit)].strip()
        if value.endswith(unit) and number.isdigit():
            return int(number) * factor
    return None


class _Stopped(Exception):
    """The other side of an add failed: this side stops reading."""


def _stoppable(open_file, stop: threading.Event):
    """`open_file`, its files raising _Stopped at the next read once `stop` is set."""

    @contextlib.contextmanager
    def opened(path):
        with open_file(path) as f:
            yield _StoppableFile(f, stop)

    return opened


class _StoppableFile:
    def __init__(self, f, stop: threading.Event):
        self._f, self._stop = f, stop

    def read(self, n: int = -1) -> bytes:
        if self._stop.is_set():
            raise _Stopped
        return self._f.read(n)


def _root_of(reply: list, name: str) -> dict | None:
    """The entry of an `add` answer for the added root itself: a directory's answer names every
    entry under it by its path, the root's own name last."""
    for entry in reversed(reply):
        if entry.get("Name") == name and "Hash" in entry:
            return entry
    return None


class KuboIpfs:
    """A Kubo daemon: adds pass the profile's import parameters and must return the CID computed
    here; reads come back as a CAR whose every block is verified locally.

    `api` is a URL, a multiaddr, or the daemon's repo directory (IPFS_PATH), whose `api` file
    is read on every call. Content fetched to be read lands unpinned in a local cache under
    `home`, trimmed (by gc of its unpinned blocks) whenever it exceeds `cache_bytes`.
    """

    def __init__(self, api: str, home: HomeLike,
                 profile: unixfs.Profile = unixfs.V1_2025, timeout: float = 120,
                 cache_bytes: int = DEFAULT_CACHE_BYTES):
        self.rpc = KuboRpc(api, timeout)  # before the local store is created: a bad address writes nothing
        self.api = self.rpc.api
        self.profile = profile
        self.cache_bytes = cache_bytes
        self.local = EmbeddedIpfs(home, profile)

    def _upload(self, parts, name: str, pin: bool) -> str:
        """Send `parts` to the daemon's add; the CID it gives the root named `name`."""
        reply = self.rpc.call("add", parts=parts, pin=pin, progress=False, **add_options(self.profile))
        root = _root_of(reply, name)
        if root is None:
            raise IpfsCallRejected(f"the Kubo daemon at {self.api} ended its answer to add without "
                                   f"a CID for {name!r} (an error it sends after the answer; its "
                                   "log has it)", api=self.api)
        try:
            return str(unixfs.parse_cid(str(root["Hash"])))
        except Exception as e:  # whatever a bad CID string raises in multiformats
            raise IpfsAnswerInvalid(f"the Kubo daemon at {self.api} answered add with "
                                    f"{root['Hash']!r}, not a CID ({e})", api=self.api) from None

    def _check(self, got: str, expected: str, is_dir: bool) -> str:
        if got != expected:
            what = "the directory" if is_dir else "the file"
            raise CidMismatch(f"the Kubo daemon at {self.api} stored {what} as {got}, but "
                              f"{self.profile.name} gives {expected}; {self._cause(is_dir)}")
        return got

    def _cause(self, is_dir: bool) -> str:
        """Why a daemon given every per-request parameter can still disagree, and the fix."""
        apply = f"`ipfs config profile apply {self.profile.name}`"
        if not is_dir:
            return ("the daemon ignored the per-request import parameters (Kubo 0.42 takes them); "
                    f"configure it with {apply} and restart it")
        for key, attr, default in _CONFIG_ONLY:
            try:
                (answer,) = self.rpc.call("config", key)
                value = answer.get("Value")
            except IpfsCallRejected:  # a key its config does not set
                value = None
            value = default if value is None else str(value)
            want = getattr(self.profile, attr)
            have = _threshold_bytes(value) if attr == "hamt_threshold" else value
            if have != want:
                setting = f"{want >> 10}KiB" if attr == "hamt_threshold" else want
                return (f"Kubo takes {key} only from its config, where it is {value!r} and the "
                        f"profile needs {setting!r}: run `ipfs config {key} {setting}` and restart "
                        f"the daemon (or apply the whole profile: {apply})")
        return f"configure the daemon with {apply} and restart it"

    def add(self, path, pin=True, *, follow_symlinks=False, open_file=None) -> str:
        """Add a file or a directory (recursively, hidden files and empty directories included,
        as the local CID is computed), reading through `open_file` when given; pinned only once
        the daemon's CID equals the local one.

        The local CID is computed on a second thread while the daemon receives the bytes, so its
        hashing and the daemon's run on two cores (the file is read twice, from the page cache
        the second time). Bad input found by either side stops the other, and its error is the
        one raised; what the daemon received by then is unpinned, for its gc.
        """
        path = Path(path)
        stop = threading.Event()
        local_open = _stoppable(open_file or open_regular, stop)
        with ThreadPoolExecutor(1) as pool:
            local = pool.submit(self._local_cid, path, follow_symlinks, local_open, stop)
            try:
                got = self._upload(file_parts(path, _stoppable(open_regular, stop), follow_symlinks),
                                   path.name, pin=False)
            except BaseException as e:
                stop.set()
                local_error = local.exception()
                raise (local_error if not isinstance(local_error, (_Stopped, type(None))) else e) from None
            expected = local.result()
        self._check(got, expected, path.is_dir())
        if pin:
            self.pin(got)
        return got

    def _local_cid(self, path, follow_symlinks, open_file, stop) -> str:
        try:
            return self.cid_of(path, follow_symlinks=follow_symlinks, open_file=open_file)
        except BaseException:
            stop.set()  # the upload ends at its next read
            raise

    def add_bytes(self, data: bytes, pin=True) -> str:
        expected = str(unixfs.root_of(io.BytesIO(data), self.profile))
        return self._check(self._upload([Part("data", io.BytesIO(data))], "data", pin), expected, False)

    def describe(self) -> str:
        """The daemon in words, from its own `id`: 'kubo/0.42.0 (peer 12D3…) at API'."""
        try:
            (me,) = self.rpc.call("id")
            return f"{str(me.get('AgentVersion'))[:60]} (peer {str(me.get('ID'))[:80]}) at {self.api}"
        except (IpfsUnavailable, ValueError):  # the report still says where it looked
            return f"the IPFS API at {self.api} (it did not answer `id`)"

    def cid_of(self, path, *, follow_symlinks=False, open_file=None) -> str:
        return self.local.cid_of(path, follow_symlinks=follow_symlinks, open_file=open_file)

    def _fetch(self, cid: str) -> str:
        """Bring the DAG under `cid` into the local cache, every block verified, unpinned."""
        cid = str(unixfs.parse_cid(cid))
        self.trim_cache()
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

    def cache_size(self) -> int:
        """Bytes of blocks in the local cache (pinned ones included)."""
        total = 0
        for shard in os.scandir(self.local.store.blocks_dir):
            if shard.is_dir():
                total += sum(e.stat().st_size for e in os.scandir(shard.path) if e.is_file())
        return total

    def trim_cache(self) -> int:
        """Drop the cache's unpinned blocks when it holds more than `cache_bytes`; how many went."""
        return self.local.gc() if self.cache_size() > self.cache_bytes else 0

    def clear_cache(self) -> int:
        """Drop every unpinned block of the local cache (the daemon's own store is untouched)."""
        return self.local.gc()

    def _export_to(self, cid: str, path: Path) -> None:
        # streamed to disk, bounded in bytes and time (modelreg.caps); slack: a CAR adds a header and a
        # CID per block, a DAG its internal nodes
        slack = caps.current().max_bytes // 32 + (1 << 20)
        with open(path, "wb") as f, self.rpc.stream("dag/export", cid) as answer:
            for chunk in caps.capped_stream(answer.chunks(), f"the DAG of {cid} from {self.api}", slack=slack):
                f.write(chunk)

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
        self.trim_cache()

    def cat(self, cid) -> bytes:
        data = self.local.cat(self._fetch_path(cid))
        self.trim_cache()
        return data

    def ls(self, cid) -> list[directory.Entry]:
        return self.local.ls(self._fetch_path(cid))

    def pin(self, cid) -> None:
        self.rpc.call("pin/add", str(unixfs.parse_cid(cid)))

    def unpin(self, cid) -> None:
        self.rpc.call("pin/rm", str(unixfs.parse_cid(cid)))

    def pins(self) -> list[str]:
        (reply,) = self.rpc.call("pin/ls", type="recursive") or [{}]
        keys = reply.get("Keys")
        if not isinstance(keys, dict):
            raise IpfsAnswerInvalid(f"{self.api} answered pin/ls without its Keys", api=self.api)
        return sorted(keys)

    def gc(self) -> int:
        """Run the daemon's repo gc; return how many blocks it removed."""
        return sum(1 for r in self.rpc.call("repo/gc") if "Key" in r)

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
            reply = self.rpc.call("dag/import", parts=[Part(Path(path).name, f)], pin_roots=True)
        try:
            got = [str(r["Root"]["Cid"]["/"]) for r in reply if "Root" in r]
        except (KeyError, TypeError):
            raise IpfsAnswerInvalid(f"{self.api} answered dag/import without the root's CID",
                                    api=self.api) from None
        if got[:1] != roots[:1]:
            raise IpfsUnavailable(f"the Kubo daemon at {self.api} imported {got}, "
                                  f"the CAR's roots are {roots}")
        return roots
