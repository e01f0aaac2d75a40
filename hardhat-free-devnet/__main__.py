"""`python -m modelreg.devnet --home H --port P`: run the devnet server in the foreground until SIGTERM or Ctrl-C."""

import argparse
import fcntl
import signal
import sys
import threading

from modelreg.home import resolve_home

from . import manager
from .accounts import HD_PATH, MNEMONIC
from .chain import CHAIN_ID, Devnet
from .server import DevnetServer, _Handler


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modelreg.devnet", description=__doc__)
    parser.add_argument("--home", help="data directory (default: $MODELREG_HOME or ~/.modelreg)")
    parser.add_argument("--port", type=int, default=manager.DEFAULT_PORT,
                        help=f"port on 127.0.0.1, 0 for any free one (default {manager.DEFAULT_PORT})")
    parser.add_argument("--idle-timeout", type=float, default=0.0,
                        help="stop after this many seconds without a request (default 0: never)")
    args = parser.parse_args(argv)
    directory = resolve_home(args.home).devnet
    directory.mkdir(parents=True, exist_ok=True)
    # Two servers over one chain would each extend their own in-memory head: a fork on disk.
    guard = open(directory / "server.lock", "w")  # noqa: SIM115 - held until the process exits
    try:
        fcntl.flock(guard, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"Error: another devnet already serves {directory}; stop it with "
              "`modelreg devnet down` or use another --home", file=sys.stderr)
        return 1
    try:
        # Bind before opening the chain: a second server on the same port stops here, untouched.
        server = DevnetServer(None, args.port)
    except OSError as e:
        print(f"Error: cannot listen on 127.0.0.1:{args.port} ({e.strerror}); "
              "pass another --port", file=sys.stderr)
        return 1
    server.devnet = devnet = Devnet(directory)

    def stop(*_):
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    head = int(devnet.call("eth_blockNumber", []), 16)
    print(f"modelreg devnet: chain id {CHAIN_ID}, {head} block(s) in {directory}")
    print(f"Dev accounts (keys from the public mnemonic \"{MNEMONIC}\", path {HD_PATH}):")
    for i, account in enumerate(devnet.accounts):
        print(f"  ({i}) {account.address}")
    server.RequestHandlerClass = _WatchedHandler
    server.watch = manager.IdleWatch(stop, args.idle_timeout)
    threading.Thread(target=server.watch.run, name="idle-watch", daemon=True).start()
    manager.write_server_file(directory, server.server_address[1], args.idle_timeout)
    print(f"Listening on {server.url}" + (f"; stopping after {args.idle_timeout:g} s without a request"
                                          if args.idle_timeout else ""), flush=True)
    try:
        server.serve_forever()
    finally:
        manager.remove_server_file(directory)
        server.server_close()
        devnet.close()
    return 0


class _WatchedHandler(_Handler):
    """The devnet's request handler, telling the server's `IdleWatch` when each request starts and ends.

    Per request, not per connection: web3 keeps an idle connection open for as long as its process
    lives, and a notebook that connected once must not keep the devnet up forever.
    """

    _counted = False

    def parse_request(self):
        if self.server.watch is not None and not self._counted:
            self.server.watch.opened()
            self._counted = True
        return super().parse_request()

    def handle_one_request(self):
        try:
            super().handle_one_request()
        finally:
            if self._counted:
                self._counted = False
                self.server.watch.closed()


if __name__ == "__main__":
    sys.exit(main())
