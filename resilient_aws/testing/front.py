"""The listening side of a loopback endpoint: werkzeug's threaded WSGI server, told about connections.

Why a module of its own: it is the only code of the endpoint that needs werkzeug, so the rest stays
importable without the ``drill`` extra; and it keeps the one thing an endpoint needs from a server
beyond serving, a :class:`ConnectionTracker` that sees every accepted TCP connection, so that
``unreachable()`` can cut the open ones the way a dead host does. Built on werkzeug's public
``ThreadedWSGIServer`` (through socketserver's documented ``process_request``/``shutdown_request``
hooks) and ``WSGIRequestHandler``.

werkzeug (3.x) answers every request with ``Connection: close``, so each request arrives on a new TCP
connection; see :class:`~resilient_aws.testing.endpoint.LoopbackEndpoint`.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from typing import Any

from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

from .moto_backend import RAW_HEADERS_ENVIRON

__all__ = ["ConnectionTracker", "FrontServer", "serve"]


class ConnectionTracker:
    """The TCP connections a server has open; ``cut_all()`` shuts them down (both directions)."""

    def __init__(self, on_open: Callable[[], None] = lambda: None) -> None:
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._on_open = on_open

    def opened(self, conn: socket.socket) -> None:
        with self._lock:
            self._open.add(conn)
        self._on_open()

    def closed(self, conn: socket.socket) -> None:
        with self._lock:
            self._open.discard(conn)

    def cut_all(self) -> None:
        with self._lock:
            conns = list(self._open)
            self._open.clear()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _QuietHandler(WSGIRequestHandler):
    """werkzeug's handler without a log line per request (drills print their own lines), which also
    hands the header lines as received to the application (see ``RAW_HEADERS_ENVIRON``)."""

    def make_environ(self) -> Any:
        environ = super().make_environ()
        environ[RAW_HEADERS_ENVIRON] = list(self.headers.items())
        return environ

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass

    def log_error(self, *args: Any, **kwargs: Any) -> None:
        pass


class FrontServer(ThreadedWSGIServer):
    """``ThreadedWSGIServer`` that registers each accepted connection with a tracker before its
    thread starts (so a cut never misses one) and unregisters it when the request is done."""

    def __init__(self, host: str, port: int, app: Any, tracker: ConnectionTracker, fd: int | None = None) -> None:
        self.tracker = tracker
        super().__init__(host, port, app, _QuietHandler, fd=fd)

    def process_request(self, request: Any, client_address: Any) -> None:
        self.tracker.opened(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        self.tracker.closed(request)
        super().shutdown_request(request)


def serve(sock: socket.socket, app: Any, tracker: ConnectionTracker, poll: float,
          name: str) -> tuple[FrontServer, threading.Thread]:
    """Serve ``app`` on ``sock`` (bound and listening; closed here, the server keeps a duplicate) in a
    daemon thread that notices ``shutdown()`` within ``poll`` seconds."""
    host, port = sock.getsockname()[:2]
    try:
        server = FrontServer(host, port, app, tracker, fd=sock.fileno())
    finally:
        sock.close()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": poll}, name=name, daemon=True)
    thread.start()
    return server, thread
