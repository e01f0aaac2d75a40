"""KuboRpcTestDouble: a test double standing in for a Kubo daemon, which cannot be installed here.

It serves the handful of Kubo RPC endpoints registry.kubo uses, with Kubo's response shapes
(newline-delimited JSON, errors as HTTP 500 {"Message", "Code", "Type": "error"}), backed by
the embedded blockstore and our own UnixFS builder. Like a Kubo daemon with default Import
settings, it takes the chunker, raw-leaves, cid-version and max-file-links from each add
request (Kubo 0.42 does).

Modes, to test the client's errors: "kubo" (behaves), "wrong-cid" (add answers another CID),
"ignores-max-links" (an older Kubo: max-file-links from its own configuration, 174),
"garbage" (every answer is an HTML page), "corrupt-export" (dag/export flips a block byte),
"slow-drip" (a daemon under load: 200, then one byte of JSON whitespace every 0.2 s, without end),
"endless-export" (dag/export streams bytes without end, as fast as they are read), "slow-export"
(dag/export sends a few bytes every tenth of a second, without end). Hostile DAGs (lying sizes,
duplicate names, deep nesting) are served by putting their blocks in `store` first.
"""

import dataclasses
import io
import itertools
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from modelreg.errors import ModelregError
from modelreg.ipfs import unixfs
from modelreg.ipfs.car import encode_car
from modelreg.ipfs.embedded import EmbeddedIpfs

KUBO_VERSION = "0.38.1"


def _bool(params: dict, name: str, default: bool) -> bool:
    return params.get(name, [str(default)])[0].lower() in ("true", "1")


class KuboRpcTestDouble:
    """Serve Kubo's RPC on 127.0.0.1:<free port>; use as a context manager."""

    def __init__(self, home: Path, mode: str = "kubo", file_max_links: int = 174):
        self.store = EmbeddedIpfs(home)
        self.mode = mode
        self.file_max_links = file_max_links
        self.requests: list[tuple[str, dict]] = []  # (endpoint, params), for assertions
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def __enter__(self):
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()

    # --- endpoints: each returns (status, content type, body bytes) --------------------
    def version(self, params, body):
        return self._json({"Version": KUBO_VERSION, "Commit": "", "Repo": "16", "System": "",
                           "Golang": "go1.24"})

    def add(self, params, body):
        name, data = _multipart_file(body)
        chunker = params.get("chunker", ["size-262144"])[0]
        profile = dataclasses.replace(
            unixfs.V0_2015, name="kubo-request", chunk_size=int(chunker.removeprefix("size-")),
            raw_leaves=_bool(params, "raw-leaves", False),
            cid_version=int(params.get("cid-version", ["0"])[0]),
            max_links=self.file_max_links if self.mode == "ignores-max-links"
            else int(params.get("max-file-links", [self.file_max_links])[0]))
        ipfs = EmbeddedIpfs(self.store.store.root.parent, profile)
        cid = ipfs.add_bytes(data, pin=_bool(params, "pin", True))
        if self.mode == "wrong-cid":
            cid = str(unixfs.make_cid(data + b"!", "raw", 1))
        return self._json({"Name": name, "Hash": cid, "Size": str(len(data))})

    def dag_export(self, params, body):
        if self.mode == "endless-export":
            return 200, "application/vnd.ipld.car", itertools.repeat(b"\x00" * (1 << 16))
        if self.mode == "slow-export":
            return 200, "application/vnd.ipld.car", _dripping()
        root = unixfs.parse_cid(params["arg"][0])
        car = bytearray(b"".join(encode_car([root], self.store.store.walk(root))))
        if self.mode == "corrupt-export":
            car[-1] ^= 0xFF
        return 200, "application/vnd.ipld.car", bytes(car)

    def dag_import(self, params, body):
        path = self.store.store.root / "incoming.car"
        path.write_bytes(_multipart_file(body)[1])
        (root,) = self.store.import_car(path)
        return self._json({"Root": {"Cid": {"/": root}, "PinErrorMsg": ""}})

    def pin_add(self, params, body):
        self.store.pin(params["arg"][0])
        return self._json({"Pins": params["arg"]})

    def pin_rm(self, params, body):
        if params["arg"][0] not in self.store.pins():
            return self._error("not pinned or pinned indirectly")
        self.store.unpin(params["arg"][0])
        return self._json({"Pins": params["arg"]})

    def pin_ls(self, params, body):
        return self._json({"Keys": {c: {"Type": "recursive"} for c in self.store.pins()}})

    def repo_gc(self, params, body):
        before = set(self.store.store.cids())
        self.store.gc()
        removed = before - set(self.store.store.cids())
        lines = [json.dumps({"Key": {"/": str(c)}}) for c in sorted(removed, key=str)]
        return 200, "application/json", ("\n".join(lines) + "\n").encode()

    # --- plumbing ----------------------------------------------------------------------
    @staticmethod
    def _json(obj):
        return 200, "application/json", (json.dumps(obj) + "\n").encode()

    @staticmethod
    def _error(message: str):
        body = json.dumps({"Message": message, "Code": 0, "Type": "error"}).encode()
        return 500, "application/json", body

    def _handler(self):
        double = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):
                url = urlsplit(self.path)
                endpoint = url.path.removeprefix("/api/v0/").replace("/", "_")
                params = parse_qs(url.query)
                double.requests.append((endpoint, params))
                body = self._body()
                if double.mode == "slow-drip":
                    return self._drip()
                if double.mode == "garbage":
                    status, ctype, out = 200, "text/html", b"<html>not kubo</html>"
                elif not hasattr(double, endpoint) or endpoint.startswith("_"):
                    status, ctype, out = double._error(f"unknown command: {url.path}")
                else:
                    try:
                        status, ctype, out = getattr(double, endpoint)(params, body)
                    except ModelregError as e:
                        status, ctype, out = double._error(str(e))
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                if isinstance(out, bytes):
                    self.send_header("Content-Length", str(len(out)))
                    self.end_headers()
                    self.wfile.write(out)
                    return
                self.send_header("Transfer-Encoding", "chunked")  # a stream without a declared end
                self.end_headers()
                try:
                    for chunk in out:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                except (BrokenPipeError, ConnectionResetError):  # the client gave up: what it should do
                    pass

            def _drip(self):
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                try:
                    for _ in range(300):  # a minute at most, should a client never give up
                        self.wfile.write(b" ")
                        self.wfile.flush()
                        time.sleep(0.2)
                except OSError:  # the client gave up: what the test waits for
                    pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    out = io.BytesIO()
                    while size := int(self.rfile.readline().split(b";")[0], 16):
                        out.write(self.rfile.read(size))
                        self.rfile.readline()
                    self.rfile.readline()
                    return out.getvalue()
                return self.rfile.read(int(self.headers.get("Content-Length", 0)))

        return Handler


def _dripping():
    while True:
        time.sleep(0.1)
        yield b"\x00" * 64


def _multipart_file(body: bytes) -> tuple[str, bytes]:
    """The first file part of a multipart/form-data body: (filename, bytes)."""
    boundary = body.split(b"\r\n", 1)[0]
    for part in body.split(boundary)[1:]:
        head, _, content = part.partition(b"\r\n\r\n")
        if b"filename=" in head:
            name = head.split(b'filename="', 1)[1].split(b'"', 1)[0].decode()
            return name, content.removesuffix(b"\r\n")
    raise ValueError("no file part in the multipart body")
