"""Kubo's RPC API over HTTP: the few calls modelreg makes, streamed, each under one deadline.

    rpc = KuboRpc("/path/to/IPFS_PATH", timeout=120)   # or http://127.0.0.1:5001, or a multiaddr
    for entry in rpc.call("pin/ls", type="recursive"): ...

Hand-written on the standard library's http.client, not a package: ipfshttpclient 0.7 is no
longer maintained (its connect() refuses every Kubo >= 0.8, and its urllib3 prints a v3
FutureWarning on every command), and what modelreg needs is small: POSTs with query
arguments, one streaming multipart upload, and newline-delimited JSON or raw bytes back.

Every call has one overall deadline (the `timeout` setting): connecting, sending and every
read take what is left of it, so a server that drips a byte a second still ends the call on
time. Bytes that do move extend it by a second per 8 MiB (_MOVING), so a many-GiB shard going
to or coming from a working daemon is not cut off by a deadline sized for small calls. Failures are told apart, each its own error class: nothing listening (IpfsRefused), the
connection closed in the middle (IpfsDropped), the deadline passed (IpfsTimeout), an answer
that is not Kubo's (IpfsAnswerInvalid), and Kubo refusing the request (IpfsCallRejected).
"""

import http.client
import ipaddress
import os
import socket
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit

from modelreg._json import loads_outside
from modelreg.errors import (
    InputInvalid,
    IpfsAnswerInvalid,
    IpfsApiFileMissing,
    IpfsCallRejected,
    IpfsDropped,
    IpfsRefused,
    IpfsTimeout,
)

_SEND_CHUNK = 1 << 20
_READ_CHUNK = 1 << 16
_BOUNDARY = "modelreg-kubo-multipart-boundary-7d1f0c"
_MAX_JSON_LINE = 1 << 20  # one NDJSON answer line; Kubo's are a few hundred bytes
_MOVING = 8 << 20  # bytes per second of deadline added as they are sent or received


def api_url(api: str) -> str:
    """The http(s) URL of a Kubo RPC API written as a URL, host:port or multiaddr
    (/ip4/127.0.0.1/tcp/5001[/http]); InputInvalid for anything else."""
    problem = (f"IPFS API address {api!r} is not an http(s) URL, a multiaddr or an IPFS_PATH "
               "directory; use e.g. http://127.0.0.1:5001, /ip4/127.0.0.1/tcp/5001 or ~/.ipfs")
    if api.startswith("/"):
        return _multiaddr_url(api, problem)
    try:
        url = urlsplit(api if "://" in api else f"http://{api}")
        port = url.port or (443 if url.scheme == "https" else 80)
    except ValueError:  # an unclosed [ipv6], a port that is not a number or out of range
        raise InputInvalid(problem) from None
    if url.scheme not in ("http", "https") or not url.hostname or " " in api:
        raise InputInvalid(problem)
    host = f"[{url.hostname}]" if ":" in url.hostname else url.hostname
    return f"{url.scheme}://{host}:{port}"


def _multiaddr_url(addr: str, problem: str) -> str:
    parts = addr.strip("/").split("/")
    if len(parts) not in (4, 5) or parts[2] != "tcp" or (len(parts) == 5 and parts[4] not in ("http", "https")):
        raise InputInvalid(problem)
    proto, host, _, port = parts[:4]
    scheme = parts[4] if len(parts) == 5 else "http"
    try:
        if proto in ("ip4", "ip6"):
            ip = ipaddress.ip_address(host)
            if (proto == "ip4") != (ip.version == 4):
                raise ValueError(host)
        elif proto not in ("dns", "dns4", "dns6") or not host:
            raise ValueError(proto)
        if not 0 < int(port) < 65536:
            raise ValueError(port)
    except ValueError:
        raise InputInvalid(problem) from None
    return f"{scheme}://{f'[{host}]' if proto == 'ip6' else host}:{int(port)}"


def is_ipfs_path(api: str) -> bool:
    """Whether `api` names a directory (a Kubo repo, IPFS_PATH) rather than an address."""
    return not api.startswith(("/ip4/", "/ip6/", "/dns")) and Path(api).expanduser().is_dir()


def resolve_api(api: str) -> str:
    """The URL to call now: an IPFS_PATH's `api` file is read on every call, so a daemon
    restarted on another port (Kubo's `test` profile picks one at random) is found again."""
    if not is_ipfs_path(api):
        return api_url(api)
    api_file = Path(api).expanduser() / "api"
    try:
        written = api_file.read_text(encoding="utf-8").strip()
    except (FileNotFoundError, UnicodeDecodeError, OSError):
        raise IpfsApiFileMissing(f"no Kubo daemon runs on the repo {api}: it has no readable "
                                 f"{api_file} (the daemon writes it while it runs)",
                                 api=api, repo=api) from None
    try:
        return api_url(written)
    except InputInvalid:
        raise IpfsApiFileMissing(f"{api_file} holds {written[:80]!r}, not an API address",
                                 api=api, repo=api) from None


class Part:
    """One entry of a multipart add: a file's bytes (an open binary file) or a directory."""

    def __init__(self, name: str, file=None):
        self.name = name  # the path under the added root, '/'-separated, the root's own name first
        self.file = file  # None: a directory


def _multipart(parts: Iterable[Part], check) -> Iterator[bytes]:
    """Kubo's multipart/form-data for `add`: each part named by its URL-escaped path, directories
    as application/x-directory, file bytes streamed in 1 MiB pieces (`check` between them)."""
    for part in parts:
        kind = "application/x-directory" if part.file is None else "application/octet-stream"
        yield (f"--{_BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; "
               f"filename=\"{quote(part.name, safe='')}\"\r\nContent-Type: {kind}\r\n\r\n").encode()
        if part.file is not None:
            while chunk := part.file.read(_SEND_CHUNK):
                check()
                yield chunk
        yield b"\r\n"
    yield f"--{_BOUNDARY}--\r\n".encode()


class KuboRpc:
    """Calls to the Kubo RPC API at `api` (URL, multiaddr or IPFS_PATH), each within `timeout` s."""

    def __init__(self, api: str | os.PathLike, timeout: float = 120):
        api = os.fspath(api)
        if not is_ipfs_path(api):
            api_url(api)  # a bad address is refused before anything else happens
        self.api = api
        self.timeout = timeout

    def call(self, endpoint: str, *args: str, parts: Iterable[Part] | None = None,
             **params) -> list:
        """POST /api/v0/<endpoint>; every JSON object of the answer, in order."""
        with self._open(endpoint, args, params, parts) as answer:
            return list(answer.json_lines())

    def stream(self, endpoint: str, *args: str, **params) -> "_Answer":
        """The answer's raw bytes, read in pieces: `with rpc.stream(...) as a: a.chunks()`."""
        return self._open(endpoint, args, params, None)

    def _open(self, endpoint, args, params, parts) -> "_Answer":
        deadline = time.monotonic() + self.timeout
        base = resolve_api(self.api)
        url = urlsplit(base)
        query = urlencode([("arg", a) for a in args] + [(k.replace("_", "-"), _text(v))
                                                          for k, v in params.items()])
        what = f"{endpoint}" + (f" of {args[0]}" if args and endpoint != "add" else "")
        answer = _Answer(self, what, deadline)
        conn_type = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        conn = conn_type(url.hostname, url.port, timeout=answer.left())
        answer.conn = conn
        try:
            try:
                conn.connect()
            except ConnectionRefusedError:
                raise IpfsRefused(f"nothing listens at {base}, the IPFS API{self._named()} "
                                  f"({what}): connection refused",
                                  api=self.api) from None
            except (socket.gaierror, OSError) as e:
                if isinstance(e, TimeoutError | socket.timeout):
                    raise
                raise IpfsRefused(f"cannot connect to the IPFS API at {base}{self._named()} "
                                  f"({what}): {e.strerror or e}", api=self.api) from None
            headers = {"Accept": "application/json"}
            path = f"/api/v0/{endpoint}?{query}"
            if parts is None:
                conn.request("POST", path, headers=headers)
            else:
                headers["Content-Type"] = f"multipart/form-data; boundary={_BOUNDARY}"
                conn.putrequest("POST", path)
                for k, v in {**headers, "Transfer-Encoding": "chunked"}.items():
                    conn.putheader(k, v)
                conn.endheaders()
                for piece in _multipart(parts, answer.left):
                    answer.deadline += len(piece) / _MOVING
                    conn.sock.settimeout(answer.left())
                    for buffer in (b"%x\r\n" % len(piece), piece, b"\r\n"):  # no copy of the MiB
                        conn.sock.sendall(buffer)
                conn.send(b"0\r\n\r\n")
            answer.sock = conn.sock  # getresponse() drops conn.sock when the server will close
            answer.sock.settimeout(answer.left())
            answer.response = conn.getresponse()
        except BaseException as e:
            conn.close()
            raise answer.translated(e) from None
        answer.check_status()
        return answer

    def _named(self) -> str:
        return f" (read from {self.api}/api)" if is_ipfs_path(self.api) else ""


def _text(value) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


class _Answer:
    """An answer being read: every read within the call's deadline, every failure named."""

    def __init__(self, rpc: KuboRpc, what: str, deadline: float):
        self.rpc, self.what, self.deadline = rpc, what, deadline
        self.conn: http.client.HTTPConnection | None = None
        self.response: http.client.HTTPResponse | None = None
        self.sock: socket.socket | None = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.response.close()
        self.conn.close()

    def left(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        return left

    def translated(self, e: BaseException) -> BaseException:
        """The library error for an exception met while talking to the daemon."""
        api, t = self.rpc.api, self.rpc.timeout
        if isinstance(e, (IpfsRefused, IpfsApiFileMissing, IpfsAnswerInvalid, IpfsCallRejected)):
            return e
        if isinstance(e, TimeoutError | socket.timeout):
            return IpfsTimeout(f"the IPFS API at {api} did not finish {self.what} within "
                               f"{t:g} s", api=api, timeout=f"{t:g}")
        if isinstance(e, ConnectionRefusedError):
            return IpfsRefused(f"nothing listens at the IPFS API {api} ({self.what}): connection "
                               "refused", api=api)
        if isinstance(e, (ConnectionError, http.client.IncompleteRead, http.client.RemoteDisconnected,
                          BrokenPipeError)):
            return IpfsDropped(f"the IPFS daemon at {api} closed the connection in the middle of "
                               f"{self.what} ({type(e).__name__})", api=api)
        if isinstance(e, (http.client.HTTPException, UnicodeDecodeError, ValueError)):
            return IpfsAnswerInvalid(f"{api} answered {self.what} with something that is not "
                                     f"Kubo's RPC ({type(e).__name__}: {str(e)[:120]})", api=api)
        if isinstance(e, OSError):
            return IpfsDropped(f"the IPFS daemon at {api} failed during {self.what}: "
                               f"{e.strerror or e}", api=api)
        return e

    def _read(self, n: int) -> bytes:
        try:
            self.sock.settimeout(self.left())
            chunk = self.response.read1(n)
            self.deadline += len(chunk) / _MOVING
            return chunk
        except BaseException as e:
            raise self.translated(e) from None

    def check_status(self) -> None:
        status = self.response.status
        if status == 200:
            return
        body = b""
        while len(body) < 4096 and (chunk := self._read(4096)):
            body += chunk
        self.conn.close()
        try:
            message = loads_outside(body, what=f"the answer of {self.rpc.api}")
            if not isinstance(message, dict) or message.get("Type") != "error":
                raise ValueError
        except ValueError:
            raise IpfsAnswerInvalid(f"{self.rpc.api} answered {self.what} with HTTP {status} "
                                    f"{body[:80]!r}, not as Kubo's RPC does", api=self.rpc.api) from None
        raise IpfsCallRejected(f"the Kubo daemon at {self.rpc.api} refused {self.what}: "
                               f"{str(message.get('Message'))[:300]}", api=self.rpc.api)

    def chunks(self) -> Iterator[bytes]:
        while chunk := self._read(_READ_CHUNK):
            yield chunk

    def json_lines(self) -> Iterator[dict]:
        if not self.response.getheader("Content-Type", "").startswith("application/json"):
            kind = self.response.getheader("Content-Type", "no content type")
            raise IpfsAnswerInvalid(f"{self.rpc.api} answered {self.what} with {kind}, not the JSON "
                                    "Kubo's RPC sends", api=self.rpc.api)
        pending = b""
        for chunk in self.chunks():
            pending += chunk
            *lines, pending = pending.split(b"\n")
            if len(pending) > _MAX_JSON_LINE:
                raise IpfsAnswerInvalid(f"{self.rpc.api} answered {self.what} with a line over "
                                        f"{_MAX_JSON_LINE} bytes", api=self.rpc.api)
            yield from (self._object(line) for line in lines if line.strip())
        if pending.strip():
            yield self._object(pending)

    def _object(self, line: bytes) -> dict:
        try:
            value = loads_outside(line, what=f"the answer of {self.rpc.api}")
        except ValueError as e:
            raise self.translated(e) from None
        if not isinstance(value, dict):
            raise IpfsAnswerInvalid(f"{self.rpc.api} answered {self.what} with {line[:80]!r}, "
                                    "not a JSON object", api=self.rpc.api)
        return value


def file_parts(path: Path, open_file, follow_symlinks: bool) -> Iterator[Part]:
    """The parts of `path` (a file, or a directory and everything under it, hidden files and
    empty directories included) for `add`, parents before their entries."""
    if not path.is_dir():
        with open_file(path) as f:
            yield Part(path.name, f)
        return

    def walk(dir_path: Path, name: str) -> Iterator[Part]:
        yield Part(name)
        for entry in sorted(os.scandir(dir_path), key=lambda e: e.name):
            child = Path(entry.path)
            if entry.is_dir(follow_symlinks=follow_symlinks):
                yield from walk(child, f"{name}/{entry.name}")
            else:
                with open_file(child) as f:
                    yield Part(f"{name}/{entry.name}", f)

    yield from walk(path, path.name)
