"""The HTTP side of the devnet: JSON-RPC 2.0 requests and batches on 127.0.0.1, answered by a Devnet."""

import json
import sys
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from modelreg._json import loads_outside
from modelreg.errors import JsonInvalid

from . import rpc
from .chain import Devnet
from .rpc import RpcError

MAX_REQUEST_BYTES = 8 * 1024 * 1024  # far above any contract deployment; refuses memory bombs
MAX_BATCH = 1000


def handle_body(devnet: Devnet, body: bytes) -> object | None:
    """The JSON answer to one HTTP body: an object, a list for a batch, None for notifications."""
    try:
        request = loads_outside(body, what="the body", max_bytes=MAX_REQUEST_BYTES)
    except JsonInvalid as e:  # too deep or too large included: refused before the parser recurses
        return _error(None, RpcError(rpc.PARSE_ERROR, f"parse error: {e}"))
    if isinstance(request, list):
        if not request:
            return _error(None, RpcError(rpc.INVALID_REQUEST, "invalid request: empty batch"))
        if len(request) > MAX_BATCH:
            return _error(None, RpcError(rpc.INVALID_REQUEST,
                                         f"invalid request: batch of {len(request)} calls, "
                                         f"the limit is {MAX_BATCH}"))
        answers = [handle_call(devnet, r) for r in request]
        return [a for a in answers if a is not None] or None
    return handle_call(devnet, request)


def handle_call(devnet: Devnet, request) -> dict | None:
    if not isinstance(request, dict) or request.get("jsonrpc") != "2.0" \
            or not isinstance(request.get("method"), str):
        return _error(request.get("id") if isinstance(request, dict) else None,
                      RpcError(rpc.INVALID_REQUEST, 'invalid request: expected an object with '
                               '"jsonrpc": "2.0", a string "method" and an "id"'))
    call_id = request.get("id")
    try:
        result = devnet.call(request["method"], request.get("params"))
    except RpcError as e:
        return _error(call_id, e)
    except Exception as e:  # a bug in the devnet: answer it, keep serving; state was rolled back
        traceback.print_exc(file=sys.stderr)
        return _error(call_id, RpcError(rpc.INTERNAL_ERROR,
                                        f"internal error: {type(e).__name__}: {e}"))
    if "id" not in request:
        return None
    return {"jsonrpc": "2.0", "id": call_id, "result": result}


def _error(call_id, error: RpcError) -> dict:
    return {"jsonrpc": "2.0", "id": call_id, "error": error.to_json()}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: web3's session reuses one connection
    server_version = "modelreg-devnet"
    # Headers and body go out as two writes; with Nagle on, the second waits ~40 ms for the
    # client's delayed ACK on every request.
    disable_nagle_algorithm = True

    def do_POST(self):
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            return self._send(411, _error(None, RpcError(
                rpc.INVALID_REQUEST, "invalid request: a Content-Length header is required")))
        if length > MAX_REQUEST_BYTES:
            self.close_connection = True  # the unread body must not be parsed as a next request
            return self._send(413, _error(None, RpcError(
                rpc.INVALID_REQUEST, f"invalid request: {length} bytes, the limit is "
                                     f"{MAX_REQUEST_BYTES}")))
        answer = handle_body(self.server.devnet, self.rfile.read(length))
        self._send(200, answer)

    def do_GET(self):
        self._send(405, _error(None, RpcError(rpc.INVALID_REQUEST,
                                              "invalid request: send JSON-RPC with POST")))

    def _send(self, status: int, answer) -> None:
        body = b"" if answer is None else json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # one line per request is noise for a devnet
        pass


class DevnetServer(ThreadingHTTPServer):
    """A threaded HTTP server on 127.0.0.1 whose requests all go to one Devnet."""

    daemon_threads = True

    def __init__(self, devnet: Devnet, port: int = 8545, host: str = "127.0.0.1"):
        self.devnet = devnet
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"
