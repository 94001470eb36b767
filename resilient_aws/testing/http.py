"""A tiny real HTTP/1.1 server on loopback that answers every POST alike and counts at the server side.

Why: "how many requests (and connections) did the client really send" is the ground truth of the
storm, concurrency, DNS-hook and benchmark checks; a client's own statistics are claims. One server
serves them all: a fixed JSON body (what DynamoDB ListTables returns) or an AWS-shaped error status,
optional latency, optional TLS; keep-alive, with Nagle off (headers and body go out as two writes,
and a delayed ACK would add ~40 ms to every keep-alive response).
"""

from __future__ import annotations

import http.server
import ssl
import threading
from typing import Any

from .net import check_loopback

__all__ = ["CountingHttpServer"]

_ERROR_BODY = b'{"__type":"com.amazonaws.dynamodb.v20120810#ServiceUnavailableException","message":"unavailable"}'


class CountingHttpServer:
    """``status`` and ``body`` for every POST (an error body when ``status >= 400``), after ``delay``
    seconds. Counts ``requests``, ``connections``, ``in_flight`` and ``peak_in_flight``."""

    def __init__(self, status: int = 200, body: bytes = b'{"TableNames": []}', delay: float = 0.0, *,
                 host: str = "127.0.0.1", ssl_context: ssl.SSLContext | None = None) -> None:
        check_loopback(host, "CountingHttpServer")
        self.status = status
        self.body = body
        self.delay = delay
        self.requests = 0
        self.connections = 0
        self.in_flight = 0
        self.peak_in_flight = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def setup(self) -> None:
                with outer._lock:
                    outer.connections += 1
                super().setup()

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                with outer._lock:
                    outer.requests += 1
                    outer.in_flight += 1
                    outer.peak_in_flight = max(outer.peak_in_flight, outer.in_flight)
                try:
                    if outer.delay:
                        outer._stop.wait(outer.delay)
                    body = outer.body if outer.status < 400 else _ERROR_BODY
                    self.send_response(outer.status)
                    self.send_header("content-type", "application/x-amz-json-1.0")
                    self.send_header("content-length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                finally:
                    with outer._lock:
                        outer.in_flight -= 1

            def log_message(self, *args: Any) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 128

        self.server = Server((host, 0), Handler)
        if ssl_context is not None:
            self.server.socket = ssl_context.wrap_socket(self.server.socket, server_side=True)
        self.host = host
        self.port: int = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def url(self) -> str:
        scheme = "https" if isinstance(self.server.socket, ssl.SSLSocket) else "http"
        return f"{scheme}://{self.host}:{self.port}"

    def start(self) -> CountingHttpServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)

    def __enter__(self) -> CountingHttpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
