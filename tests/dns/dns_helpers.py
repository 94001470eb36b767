"""Helpers shared by the DNS tests (plain module, imported by name: no ``from conftest import``,
which would depend on which ``conftest`` pytest imported last)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

ZONE = "resilient.test"
NAME = f"dynamodb.us-east-1.{ZONE}"

def make_client(url: str, verify: bool | str | None = None, **config: object):
    """A plain botocore DynamoDB client (retries off) for ``url``; no resilient_aws wrapper."""
    import botocore.session
    from botocore.config import Config

    return botocore.session.get_session().create_client(
        "dynamodb", region_name="us-east-1", endpoint_url=url, aws_access_key_id="x", aws_secret_access_key="x",
        verify=verify, config=Config(retries={"total_max_attempts": 1}, connect_timeout=2, read_timeout=5, **config))


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, interval: float = 0.02) -> bool:
    """Poll ``predicate`` until true or ``timeout`` seconds (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def ips(infos: list[tuple]) -> list[str]:
    return [info[4][0] for info in infos]


def free_port(*hosts: str, attempts: int = 20) -> int:
    """A TCP port free on every one of ``hosts`` (loopback addresses)."""
    for _ in range(attempts):
        probe = socket.socket()
        probe.bind((hosts[0], 0))
        port = probe.getsockname()[1]
        probe.close()
        ok = True
        for host in hosts:
            s = socket.socket()
            try:
                s.bind((host, port))
            except OSError:
                ok = False
            finally:
                s.close()
        if ok:
            return port
    raise RuntimeError("no common free port")


class JsonServer:
    """A keep-alive HTTP/1.1 server on loopback that answers every POST with one JSON body (what
    DynamoDB ListTables returns), optionally over TLS. Counts connections and requests."""

    def __init__(self, host: str = "127.0.0.1", body: bytes = b'{"TableNames": []}', ssl_context=None) -> None:
        import http.server
        import threading

        self.connections = 0
        self.requests = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                outer.connections += 1
                super().setup()

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                outer.requests += 1
                self.send_response(200)
                self.send_header("content-type", "application/x-amz-json-1.0")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        if ssl_context is not None:
            self.server.socket = ssl_context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
                                        daemon=True)

    def __enter__(self) -> JsonServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
