"""python -m tinygan.lab [--port N] [--host ADDRESS] [--no-browser] [--verbose]

Starts the lab's web server on 127.0.0.1 (a free port unless --port is given), prints its
address and opens it in the web browser.  Ctrl-C (or SIGTERM) stops it.
"""
from __future__ import annotations

import argparse
import errno
import signal
import sys
import webbrowser

from .server import LabServer, is_loopback
from .session import use_one_core


def port_number(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(
            f"expected a port number from 0 to 65535 (0: a free one), got {text!r}")
    return int(text)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tinygan.lab",
                                description="Watch a GAN learn in the browser, trained by tinygan.")
    p.add_argument("--port", type=port_number, default=0, help="port to listen on (default: a free one)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--no-browser", action="store_true", help="print the address but do not open a browser")
    p.add_argument("--verbose", action="store_true", help="log every request")
    args = p.parse_args(argv)

    use_one_core()
    try:
        server = LabServer((args.host, args.port), verbose=args.verbose)
    except OSError as e:
        hint = ("choose another --port (or leave it out for a free one)" if e.errno == errno.EADDRINUSE
                else "check --host (an address of this machine, e.g. 127.0.0.1) and --port")
        print(f"error: cannot listen on {args.host}:{args.port}: {e.strerror or e}; {hint}", file=sys.stderr)
        return 1
    if not is_loopback(args.host):
        print(f"warning: listening on {args.host}, not only on this machine: anyone who can reach "
              "it can use the lab", file=sys.stderr)
    print(f"tinygan lab: {server.url}   (Ctrl-C stops it)", flush=True)
    if not args.no_browser and not webbrowser.open(server.url):
        print("no web browser found: open the address above in one", flush=True)

    def stop(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped", flush=True)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
