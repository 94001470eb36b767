"""A fault-injecting HTTP/1.1 reverse proxy on loopback, for retry-contract tests.

Why it exists: the claims this project makes about retries are claims about the wire. Every attempt of
one call carries the same idempotency token; an S3 body is sent again in full on a retry (not empty
because the first attempt already read the stream); a DynamoDB response whose ``x-amz-crc32`` does not
match its body is not trusted; ``amz-sdk-request`` counts the attempts. A stubber or a patched
``send()`` sits inside botocore and sees what botocore says it sent. This proxy sits between a real
botocore client and a real server (moto's ``ThreadedMotoServer``), injects the faults where real ones
happen - an error answer, a connection closed without an answer, a corrupted checksum, a slow answer,
a refused connection - and records every request it received, counted at the server side: the ground
truth of how many requests went out and what was in them.

Standard library only: ``http.server`` faces the client (keep-alive, ``Expect: 100-continue``, chunked
request bodies), ``http.client`` talks to the upstream server, one fresh connection per request.

    with FaultProxy(moto_url) as proxy:
        proxy.fail_next(1, status=503, match=target("PutItem"))
        client = session.create_client("dynamodb", endpoint_url=proxy.url, ...)
        client.put_item(...)
        assert proxy.count(target("PutItem")) == 2
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import http.server
import json
import socket
import socketserver
import sys
import threading
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

from resilient_aws.testing.net import check_loopback

__all__ = ["CORRUPT_CRC", "DELAY", "DROP", "FAIL", "FaultProxy", "Matcher", "RecordedRequest", "target"]

Matcher = Callable[["RecordedRequest"], bool]

# The value of RecordedRequest.fault for each kind of fault.
FAIL = "fail"
DROP = "drop"
CORRUPT_CRC = "corrupt_crc"
DELAY = "delay"

# Hop-by-hop fields (RFC 9110 7.6.1) are not forwarded, nor are the ones the Connection field names.
# Expect is answered here: the client gets its "100 Continue" from this proxy, upstream gets a complete
# request. Content-Length is set again from the body as forwarded (a chunked body goes on with one).
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "expect"})
_MAX_LINE = 65537


def target(name: str) -> Matcher:
    """A matcher for requests whose ``X-Amz-Target`` is ``name`` or ends in ``.name``: ``target("GetItem")``
    matches DynamoDB's ``DynamoDB_20120810.GetItem``."""

    def match(request: RecordedRequest) -> bool:
        return request.target is not None and (request.target == name or request.target.endswith("." + name))

    return match


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the proxy received it: header names lower-cased, the body as bytes (de-chunked if
    it came with ``Transfer-Encoding: chunked``), and the fault applied to it, if any."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes = field(repr=False)
    fault: str | None = None
    body_md5: str = field(init=False)
    target: str | None = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "body_md5", hashlib.md5(self.body, usedforsecurity=False).hexdigest())
        object.__setattr__(self, "target", self.headers.get("x-amz-target"))

    def header(self, name: str) -> str | None:
        """The value of header ``name`` (any case), or None."""
        return self.headers.get(name.lower())

    @property
    def attempt(self) -> int | None:
        """The attempt number from botocore's ``amz-sdk-request: attempt=2; max=3``, or None."""
        for part in self.headers.get("amz-sdk-request", "").split(";"):
            key, _, number = part.strip().partition("=")
            if key == "attempt" and number.isdigit():
                return int(number)
        return None

    def json(self) -> Any:
        """The body parsed as JSON, or None when it is empty or not JSON."""
        if not self.body:
            return None
        try:
            return json.loads(self.body)
        except ValueError:
            return None


@dataclass(frozen=True)
class _Fault:
    kind: str
    match: Matcher | None = None
    status: int = 503
    code: str = "ServiceUnavailable"
    seconds: float = 0.0


def _check_loopback(host: str) -> None:
    check_loopback(host, "FaultProxy")


class FaultProxy:
    """A reverse proxy on ``host:port`` (port 0: a free one) in front of ``upstream_url`` that injects the
    scripted faults and records every request. Thread-safe; ``start()``/``stop()`` or ``with``."""

    upstream_timeout: float = 30.0
    join_timeout: float = 5.0

    def __init__(self, upstream_url: str, host: str = "127.0.0.1", port: int = 0) -> None:
        _check_loopback(host)
        parts = urlsplit(upstream_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream_url must be an http:// URL, not {upstream_url!r}")
        self.upstream_url = upstream_url
        self.host = host
        self._upstream_host = parts.hostname
        self._upstream_port = parts.port or 80
        self._upstream_base = parts.path.rstrip("/")
        self._port = port
        self._family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._lock = threading.Lock()  # the script, the records, the open connections
        self._faults: list[_Fault] = []
        self._records: list[RecordedRequest] = []
        self._connections: dict[socket.socket, threading.Event] = {}
        self._life = threading.Lock()  # start/stop/refuse/accept
        self._started = False
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stop_serving = threading.Event()

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        """Listen and serve; returns self."""
        with self._life:
            if self._started:
                raise RuntimeError("FaultProxy already started")
            self._listen()
            self._started = True
        return self

    def stop(self) -> None:
        """Stop listening and close every client connection. Idempotent."""
        with self._life:
            if self._started:
                self._unlisten()
                self._started = False

    def refuse(self) -> None:
        """Close the listening socket (new connections are refused) and every open client connection."""
        with self._life:
            self._require_started()
            if self._server is not None:
                self._unlisten()

    def accept(self) -> None:
        """Listen again, on the same port, after ``refuse()``."""
        with self._life:
            self._require_started()
            if self._server is None:
                self._listen()

    @property
    def refusing(self) -> bool:
        return self._started and self._server is None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("FaultProxy not started: no port yet")
        return self._port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def _require_started(self) -> None:
        if not self._started:
            raise RuntimeError("FaultProxy not started")

    def _listen(self) -> None:
        server = _Server((self.host, self._port), self)
        self._port = server.server_address[1]
        stop = threading.Event()
        thread = threading.Thread(target=_serve, args=(server, stop), name=f"fault-proxy-{self._port}", daemon=True)
        self._server, self._thread, self._stop_serving = server, thread, stop
        thread.start()

    def _unlisten(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        self._stop_serving.set()
        if thread is not None:
            thread.join(self.join_timeout)  # handle_request() polls every 0.05 s
        if server is not None:
            server.server_close()
        with self._lock:
            for sock, severed in self._connections.items():
                severed.set()
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    # --- script ----------------------------------------------------------------------------------

    def fail_next(
        self, n: int = 1, status: int = 503, code: str = "ServiceUnavailable", match: Matcher | None = None
    ) -> None:
        """Answer the next ``n`` (matching) requests with an AWS-shaped error, without forwarding them: JSON
        ``{"__type": code, "message": ...}`` when the request has ``X-Amz-Target``, else S3's XML."""
        if status < 400:
            raise ValueError(f"an error status is 400 or more, not {status}")
        self._script(n, _Fault(FAIL, match, status=status, code=code))

    def drop_next(self, n: int = 1, match: Matcher | None = None) -> None:
        """Read the next ``n`` (matching) requests in full, then close the connection without an answer."""
        self._script(n, _Fault(DROP, match))

    def corrupt_crc_next(self, n: int = 1, match: Matcher | None = None) -> None:
        """Forward the next ``n`` (matching) requests, then give the answer an ``x-amz-crc32`` that does not
        match its body (added when upstream sent none)."""
        self._script(n, _Fault(CORRUPT_CRC, match))

    def delay_next(self, seconds: float, n: int = 1, match: Matcher | None = None) -> None:
        """Wait ``seconds`` before forwarding the next ``n`` (matching) requests."""
        if seconds < 0:
            raise ValueError(f"seconds must be >= 0, not {seconds}")
        self._script(n, _Fault(DELAY, match, seconds=seconds))

    def clear_faults(self) -> None:
        """Forget the faults not applied yet."""
        with self._lock:
            self._faults.clear()

    @property
    def pending_faults(self) -> int:
        """How many scripted faults are not applied yet."""
        with self._lock:
            return len(self._faults)

    def _script(self, n: int, fault: _Fault) -> None:
        if n < 0:
            raise ValueError(f"n must be >= 0, not {n}")
        with self._lock:
            self._faults.extend([fault] * n)

    # --- records ---------------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received since the start or the last ``reset()``, in order of arrival (a copy)."""
        with self._lock:
            return list(self._records)

    def count(self, match: Matcher | None = None) -> int:
        """How many requests (matching ``match``) were received."""
        with self._lock:
            return sum(1 for r in self._records if match is None or match(r))

    def reset(self) -> None:
        """Forget the recorded requests (not the script)."""
        with self._lock:
            self._records.clear()

    # --- used by the server and its handlers -----------------------------------------------------

    def _admit(self, request: RecordedRequest) -> _Fault | None:
        """Take the first scripted fault ``request`` matches and record the request with it, atomically."""
        with self._lock:
            chosen = None
            for i, fault in enumerate(self._faults):
                if fault.match is None or fault.match(request):
                    chosen = self._faults.pop(i)
                    break
            self._records.append(replace(request, fault=chosen.kind) if chosen else request)
            return chosen

    def _register(self, sock: socket.socket) -> None:
        with self._lock:
            self._connections[sock] = threading.Event()

    def _unregister(self, sock: socket.socket) -> None:
        # before the socket is closed, under the lock _unlisten() shuts sockets down with: never a closed one
        with self._lock:
            self._connections.pop(sock, None)

    def _severed(self, sock: socket.socket) -> threading.Event:
        with self._lock:
            return self._connections.get(sock) or threading.Event()


def _serve(server: _Server, stop: threading.Event) -> None:
    # handle_request() returns after server.timeout when nobody connects: the loop sees `stop` in time,
    # unlike serve_forever()/shutdown(), whose wait has no bound
    while not stop.is_set():
        server.handle_request()


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    timeout = 0.05

    def __init__(self, address: tuple[str, int], proxy: FaultProxy) -> None:
        self.address_family = proxy._family
        self.proxy = proxy
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind() asks socket.getfqdn(), a reverse DNS lookup; nothing here needs it
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        self.proxy._register(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        self.proxy._unregister(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return  # the client went away, or refuse()/stop() cut the connection: expected here
        super().handle_error(request, client_address)


class _ClientGone(Exception):
    pass


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # headers and body go out in two writes; without TCP_NODELAY the client's delayed ACK adds ~40 ms
    disable_nagle_algorithm = True
    timeout = 30  # an idle keep-alive connection is closed after this
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.severed = self.server.proxy._severed(self.request)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def handle_any(self) -> None:
        proxy = self.server.proxy
        try:
            body = self._read_body()
        except _ClientGone:
            self.close_connection = True
            return
        except ValueError as e:
            self.close_connection = True
            self.send_error(400, f"FaultProxy: bad request framing: {e}")
            return
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        request = RecordedRequest(self.command, self.path, headers, body)
        fault = proxy._admit(request)
        if fault is not None and fault.kind == DROP:
            self._drop()
            return
        if fault is not None and fault.kind == FAIL:
            self._reply(fault.status, None, *_error_answer(fault.status, fault.code, request))
            return
        if fault is not None and fault.kind == DELAY and self.severed.wait(fault.seconds):
            self._drop()  # refuse()/stop() during the delay
            return
        try:
            status, reason, answer_headers, answer = self._forward(body)
        except (OSError, http.client.HTTPException) as e:
            self.close_connection = True
            self._reply(502, None, *_error_answer(502, "BadGateway", request, f"FaultProxy: upstream failed: {e!r}"))
            return
        if fault is not None and fault.kind == CORRUPT_CRC:
            wrong = (zlib.crc32(answer) + 1) & 0xFFFFFFFF
            answer_headers = [(n, v) for n, v in answer_headers if n.lower() != "x-amz-crc32"]
            answer_headers.append(("x-amz-crc32", str(wrong)))
        self._reply(status, reason, answer_headers, answer)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = handle_any

    def _read_body(self) -> bytes:
        coding = self.headers.get("transfer-encoding")
        if coding is not None:
            if coding.split(",")[-1].strip().lower() != "chunked":
                raise ValueError(f"Transfer-Encoding {coding!r} does not end in chunked")
            return self._read_chunked()
        length = self.headers.get("content-length")
        if length is None:
            return b""
        if not length.strip().isdigit():
            raise ValueError(f"Content-Length {length!r}")
        return self._read_exactly(int(length))

    def _read_exactly(self, size: int) -> bytes:
        data = self.rfile.read(size)
        if len(data) != size:
            raise _ClientGone
        return data

    def _read_line(self) -> bytes:
        line = self.rfile.readline(_MAX_LINE)
        if not line:
            raise _ClientGone
        if len(line) >= _MAX_LINE:
            raise ValueError("line too long")
        return line

    def _read_chunked(self) -> bytes:
        chunks = []
        while True:
            size_field = self._read_line().split(b";", 1)[0].strip()  # chunk extensions are ignored
            try:
                size = int(size_field, 16)
            except ValueError:
                raise ValueError(f"chunk size {size_field!r}") from None
            if size < 0:
                raise ValueError(f"chunk size {size_field!r}")
            if size == 0:
                break
            chunks.append(self._read_exactly(size))
            if self._read_line().strip():
                raise ValueError("chunk data not followed by CRLF")
        while self._read_line().strip():  # trailer fields, up to the empty line: not forwarded
            pass
        return b"".join(chunks)

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _hop_by_hop(self) -> set[str]:
        names = set(_HOP_BY_HOP)
        for value in self.headers.get_all("connection") or ():
            names.update(token.strip().lower() for token in value.split(","))
        return names

    def _forward(self, body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
        proxy = self.server.proxy
        path = self.path
        if not path.startswith("/"):  # absolute-form, as sent to a forward proxy
            parts = urlsplit(path)
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        skip = self._hop_by_hop() | {"content-length"}
        conn = http.client.HTTPConnection(proxy._upstream_host, proxy._upstream_port, timeout=proxy.upstream_timeout)
        try:
            # the Host header goes on as the client sent it: SigV4 signs it
            has_host = "host" in self.headers
            conn.putrequest(self.command, proxy._upstream_base + path, skip_host=has_host,
                            skip_accept_encoding=True)
            for name, value in self.headers.items():
                if name.lower() not in skip and not name.lower().startswith("proxy-"):
                    conn.putheader(name, value)
            if body or "content-length" in self.headers or "transfer-encoding" in self.headers:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body or None)
            response = conn.getresponse()
            return response.status, response.reason, response.getheaders(), response.read()
        finally:
            conn.close()

    def _reply(self, status: int, reason: str | None, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response_only(status, reason)
        length: str | None = str(len(body))
        for name, value in headers:
            key = name.lower()
            if key == "content-length":
                if self.command == "HEAD":
                    length = value  # a HEAD answer tells the length of the GET answer
                continue
            if key in _HOP_BY_HOP or key.startswith("proxy-"):
                continue
            self.send_header(name, value)
        if status in (204, 304) or 100 <= status < 200:
            length = None
        if length is not None:
            self.send_header("Content-Length", length)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and length is not None and body:
            self.wfile.write(body)


def _error_answer(
    status: int, code: str, request: RecordedRequest, message: str | None = None
) -> tuple[list[tuple[str, str]], bytes]:
    """An error shaped the way the service of ``request`` shapes its errors, so botocore parses it."""
    message = message or f"{code}: injected by FaultProxy"
    request_id = str(uuid.uuid4())
    if request.target is not None:  # JSON protocol (DynamoDB)
        body = json.dumps({"__type": code, "message": message}).encode()
        return [("Content-Type", "application/x-amz-json-1.0"), ("x-amzn-RequestId", request_id),
                ("x-amz-crc32", str(zlib.crc32(body)))], body
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{escape(code)}</Code>'
            f"<Message>{escape(message)}</Message><RequestId>{request_id}</RequestId></Error>").encode()
    return [("Content-Type", "application/xml"), ("x-amz-request-id", request_id)], body
