"""A tiny real HTTP server on loopback that counts requests at the server side.

Why: "how many requests did the client really send" is the ground truth of the storm and concurrency
tests; a client's own statistics are claims.
"""

from __future__ import annotations


class CountingServer:
    """A tiny real HTTP server on loopback that answers every request the same way and counts them
    at the server side: the ground truth for "how many requests did the client really send"."""

    def __init__(self, status: int = 200, body: bytes = b"{}", delay: float = 0.0) -> None:
        import http.server
        import threading
        import time

        self.status = status
        self.body = body
        self.delay = delay
        self.requests = 0
        self.in_flight = 0
        self.peak_in_flight = 0
        lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body go out in two writes; without TCP_NODELAY the client's delayed ACK
            # adds ~40 ms to every keep-alive response
            disable_nagle_algorithm = True

            def do_POST(self):
                length = int(self.headers.get("content-length") or 0)
                self.rfile.read(length)
                with lock:
                    outer.requests += 1
                    outer.in_flight += 1
                    outer.peak_in_flight = max(outer.peak_in_flight, outer.in_flight)
                try:
                    if outer.delay:
                        time.sleep(outer.delay)
                    body = outer.body if outer.status < 400 else (
                        b'{"__type":"com.amazonaws.dynamodb.v20120810#ServiceUnavailableException",'
                        b'"message":"unavailable"}')
                    self.send_response(outer.status)
                    self.send_header("content-type", "application/x-amz-json-1.0")
                    self.send_header("content-length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                finally:
                    with lock:
                        outer.in_flight -= 1

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 128

        self._server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
