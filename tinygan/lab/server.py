"""The lab's web server: the standard library's ThreadingHTTPServer, serving three static files
and a small JSON API around one LabSession.

    GET  /api/options    choices, limits, defaults and presets (the page builds its controls)
    GET  /api/state      what the page draws (see LabSession.state)
    POST /api/reset      {setting: value, ...}: start again with these changes (seed included)
    POST /api/settings   {lr_g, lr_d, optimizer, g_loss, freeze_d}: change between steps
    POST /api/step       {"steps": n}: train n steps, answer the new state

Nothing else is served: the static files come from a fixed table (no path is ever joined with
the request), so "/../" leads nowhere.  A bad value is answered with HTTP 400 and
{"error": "<what was wrong and what was expected>"}; bodies must be JSON objects of at most
MAX_BODY bytes.  Bound to a loopback address, the server also refuses requests whose Host header
names another machine (a web page cannot reach it by DNS rebinding), and refuses POSTs from
other origins; the page's Content-Security-Policy lets it load and fetch only from the server.
"""
from __future__ import annotations

import ipaddress
import json
import socket
import sys
import threading
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import urlsplit

from ..errors import ConfigError
from . import datasets, settings
from .session import LabSession

MAX_BODY = 64 * 1024          # a drawing of MAX_DRAWN points is about 20 kB of JSON
STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/lab.js": ("lab.js", "text/javascript; charset=utf-8"),
    "/lab.css": ("lab.css", "text/css; charset=utf-8"),
}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "img-src 'self'; connect-src 'self'; base-uri 'none'; "
                               "form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
POST_ACTIONS = {
    "/api/reset": lambda session, body: session.reset(body),
    "/api/settings": lambda session, body: session.update(body),
    "/api/step": lambda session, body: session.train(settings.check_steps(body)),
}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def options() -> dict:
    """Everything the page needs to build its controls, from the server's own tables."""
    return {
        "defaults": settings.DEFAULTS,
        "presets": settings.PRESETS,
        "choices": {"dataset": datasets.NAMES, "optimizer": settings.OPTIMIZERS, "g_loss": settings.G_LOSSES},
        "limits": {"lr": settings.LR_RANGE, "seed": [0, settings.SEED_MAX], "width": settings.WIDTH_RANGE,
                   "steps": [1, settings.MAX_STEPS], "d_head_start": [0, settings.MAX_HEAD_START],
                   "points": settings.MAX_DRAWN, "extent": datasets.EXTENT},
        "live": settings.LIVE,
        "reset_only": settings.RESET_ONLY,
    }


class HTTPError(Exception):
    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status


class LabHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"             # keep-alive: a frame is one request, not one connection
    # Headers and body go out in two writes; with Nagle's algorithm the second waits for the
    # client's (delayed, up to 40 ms) acknowledgement of the first: half the frame rate.
    disable_nagle_algorithm = True

    def version_string(self) -> str:
        return "tinygan-lab"

    # -- responses -------------------------------------------------------------------------------
    def _send(self, status, body: bytes, content_type: str) -> None:
        if self.command not in ("GET", "HEAD") and not self._body_read:
            self.close_connection = True        # an unread body must not be taken for the next request
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in SECURITY_HEADERS.items():
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj, status=HTTPStatus.OK) -> None:
        body = json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()
        self._send(status, body, "application/json")

    def _error(self, status: HTTPStatus, message: str) -> None:
        self._json({"error": message}, status)

    def log_message(self, format, *args):
        if self.server.verbose:
            super().log_message(format, *args)

    # -- checks ----------------------------------------------------------------------------------
    def _check_host(self) -> None:
        if not self.server.loopback:
            return
        host = urlsplit("//" + self.headers.get("Host", "")).hostname
        if host not in LOCAL_NAMES:
            raise HTTPError(HTTPStatus.FORBIDDEN,
                            f"this lab answers only requests for localhost, not {host!r}")

    def _read_json(self):
        origin = self.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc != self.headers.get("Host"):
            raise HTTPError(HTTPStatus.FORBIDDEN, f"requests from {origin} are not allowed")
        ctype = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise HTTPError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "the body must be JSON "
                            f"(Content-Type: application/json), got {ctype or 'none'!r}")
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            raise HTTPError(HTTPStatus.LENGTH_REQUIRED, "a Content-Length header is required")
        if int(length) > MAX_BODY:
            raise HTTPError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                            f"the body is {int(length)} bytes; at most {MAX_BODY} are accepted")
        raw = self.rfile.read(int(length))
        self._body_read = True
        try:
            return json.loads(raw or b"{}")
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise HTTPError(HTTPStatus.BAD_REQUEST, f"the body is not valid JSON: {e}") from None

    # -- routing ---------------------------------------------------------------------------------
    def _handle(self, method: str) -> None:
        self._body_read = False
        try:
            self._check_host()
            path = urlsplit(self.path).path
            if method == "HEAD":
                method = "GET"                  # the same answer without its body (see _send)
            if method == "GET" and path in STATIC:
                name, ctype = STATIC[path]
                self._send(HTTPStatus.OK, self.server.static(name), ctype)
            elif method == "GET" and path == "/api/options":
                self._json(options())
            elif method == "GET" and path == "/api/state":
                self._json(self.server.call(lambda session: None))
            elif method == "POST" and path in POST_ACTIONS:
                body, action = self._read_json(), POST_ACTIONS[path]
                self._json(self.server.call(lambda session: action(session, body)))
            elif path in STATIC or path in POST_ACTIONS or path in ("/api/options", "/api/state"):
                allowed = "POST" if path in POST_ACTIONS else "GET"
                raise HTTPError(HTTPStatus.METHOD_NOT_ALLOWED, f"{path} takes {allowed}, not {method}")
            else:
                raise HTTPError(HTTPStatus.NOT_FOUND,
                                f"no such page: {path[:200]}; the lab serves / and /api/...")
        except HTTPError as e:
            self._error(e.status, str(e))
        except ConfigError as e:
            self._error(HTTPStatus.BAD_REQUEST, str(e))
        except ConnectionError:                 # the browser went away mid-answer (a closed tab)
            self.close_connection = True
        except Exception as e:                  # a bug, not the user's mistake: say so, keep serving
            traceback.print_exc(file=sys.stderr)
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR,
                        f"internal error in the lab: {type(e).__name__}: {e}")

    def do_GET(self):
        self._handle("GET")

    def do_HEAD(self):
        self._handle("HEAD")

    def do_POST(self):
        self._handle("POST")

    def do_PUT(self):
        self._handle("PUT")

    def do_DELETE(self):
        self._handle("DELETE")

    def do_PATCH(self):
        self._handle("PATCH")


class LabServer(ThreadingHTTPServer):
    """``LabServer((host, port))`` -- port 0 picks a free one (``server_address`` tells which)."""

    daemon_threads = True

    def __init__(self, address, session: LabSession | None = None, verbose: bool = False):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, LabHandler)
        self.session = session or LabSession()
        self.loopback = is_loopback(address[0])
        self.verbose = verbose
        self._lock = threading.Lock()            # one training step or state at a time
        self._static: dict = {}

    @property
    def url(self) -> str:
        """The page's address; on all interfaces (0.0.0.0, ::), the one this machine's browser uses."""
        host, port = self.server_address[:2]
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
        return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"

    def static(self, name: str) -> bytes:
        if name not in self._static:
            self._static[name] = (resources.files(__package__) / "static" / name).read_bytes()
        return self._static[name]

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], ConnectionError):
            return                              # the browser closed the connection: nothing to report
        super().handle_error(request, client_address)

    def call(self, action) -> dict:
        """Run ``action(session)`` under the lock; answer the session's state afterwards."""
        with self._lock:
            action(self.session)
            return self.session.state()
