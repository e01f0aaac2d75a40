"""FaultInjectingRpcProxy: a JSON-RPC proxy in front of a real node that misbehaves as public endpoints do.

Nothing real rate-limits, resets or lags on demand, so this test double does, and its name says so:
every request is forwarded to the real node (anvil, geth, the devnet) unless a fault is due. Faults:
HTTP 429 or 5xx answers, connection resets, delays, an answer dripped a byte at a time, and a head
held some blocks behind. Random faults (`chance`) are drawn from a seeded generator.
"""

import json
import random
import socket
import struct
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FaultInjectingRpcProxy:
    """Listens on 127.0.0.1 (a port the OS picks) and forwards to `upstream`; a context manager."""

    def __init__(self, upstream: str, *, seed: int = 0):
        self.upstream = upstream
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.queued: list[str] = []  # faults for the next requests, in order: "429", "503", "reset"
        self.chance: dict[str, float] = {}  # fault -> probability per request ("429", "503", "reset")
        self.delay = 0.0  # seconds before each answer
        self.drip = 0.0  # seconds between the bytes of each answer (a slow-drip endpoint)
        self.lag = 0  # blocks subtracted from eth_blockNumber
        self.injected: dict[str, int] = {}
        self.requests = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                proxy._handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FaultInjectingRpcProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def queue(self, *faults: str) -> None:
        with self.lock:
            self.queued.extend(faults)

    def _next_fault(self) -> str | None:
        with self.lock:
            self.requests += 1
            if self.queued:
                fault = self.queued.pop(0)
            else:
                fault = next((f for f, p in self.chance.items() if self.rng.random() < p), None)
            if fault:
                self.injected[fault] = self.injected.get(fault, 0) + 1
            return fault

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length", 0)))
        fault = self._next_fault()
        if fault == "reset":
            # SO_LINGER 0: closing sends a TCP RST, as a load balancer dropping the connection does.
            handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            handler.connection.close()
            handler.close_connection = True
            return
        if fault is not None:
            handler.send_response(int(fault))
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        if self.delay:
            time.sleep(self.delay)
        request = urllib.request.Request(self.upstream, body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = response.read()
        if self.lag:
            answer = self._lagged(body, answer)
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(answer)))
        handler.end_headers()
        try:
            if self.drip:
                for i in range(len(answer)):
                    handler.wfile.write(answer[i:i + 1])
                    handler.wfile.flush()
                    time.sleep(self.drip)
            else:
                handler.wfile.write(answer)
        except OSError:
            pass  # the client gave up: what it should do with a slow endpoint

    def _lagged(self, body: bytes, answer: bytes) -> bytes:
        request, reply = json.loads(body), json.loads(answer)
        if isinstance(request, dict) and request.get("method") == "eth_blockNumber" and "result" in reply:
            reply["result"] = hex(max(0, int(reply["result"], 16) - self.lag))
            return json.dumps(reply).encode()
        return answer
