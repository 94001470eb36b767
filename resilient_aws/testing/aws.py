"""Loopback AWS endpoints with fault injection: moto's real HTTP server behind a switch.

Why a real server: the failures this library exists for happen below botocore's API — a 503 on the
wire, a refused TCP connection, a pooled keep-alive connection that dies, a slow response. A mocked
client (``moto.mock_aws``) never opens a socket, so it cannot show any of them, and it cannot count
what a server really received. :class:`LoopbackEndpoint` serves moto's WSGI application with
werkzeug on a loopback address, wrapped in a small middleware that can

- answer every request with an AWS-shaped error (``fail_with(503)``: botocore raises a
  ``ClientError`` with that HTTP status),
- add latency (``slow(0.5)``),
- stop listening (``unreachable()``: new connections are refused, open ones are cut) and listen
  again on the same address and port (``reachable()``),

and counts every request *at the server side*: in all, per mode, per operation (``X-Amz-Target``),
per HTTP status, per signing region, per ``Host`` name and per second. Those counts are the ground
truth a drill compares clients by; a client's own statistics are claims.

Regions: moto keeps one backend per (account, region) in the process and picks it from the request's
SigV4 signing region, so a request signed for us-west-2 lands in us-west-2's data whichever endpoint
received it. The drill runs us-east-1 on 127.0.0.1 and us-west-2 on 127.0.0.2 with the same port
(:func:`start_region_endpoints`), which is what lets one DNS name per region point at a different
address while the URLs keep one port.

    with LoopbackEndpoint() as ep:
        ddb = plain_client("dynamodb", "us-east-1", ep.url)
        create_table(ddb, "t", items=[{"pk": {"S": "1"}}])
        ep.fail_with(503)
        ...
        ep.counts().total

Only loopback addresses are accepted; every wait is bounded.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "TAG_HEADER",
    "TEST_CREDENTIALS",
    "EndpointCounts",
    "LoopbackEndpoint",
    "PortInUseError",
    "create_table",
    "loopback_endpoints",
    "plain_client",
    "put_items",
    "seed_regions",
    "start_region_endpoints",
]

#: Credentials moto accepts; they map to moto's default account, so every client shares the data.
TEST_CREDENTIALS: dict[str, str] = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}

HEALTHY = "healthy"
FAILING = "failing"
SLOW = "slow"
MODES = (HEALTHY, FAILING, SLOW)

#: A request header a test may set to label its requests; the server counts by its value
#: (``EndpointCounts.by_tag``). The drill uses it to attribute each retry to the call that made it.
TAG_HEADER = "X-Loopback-Tag"
_TAG_ENVIRON = "HTTP_X_LOOPBACK_TAG"

#: Seconds of per-second history kept (older seconds are dropped so a long run stays bounded).
TIMELINE_SECONDS = 3600
_POLL = 0.05  # seconds; how quickly a serving loop notices shutdown()

_DEFAULT_CODES = {
    400: "ThrottlingException",
    429: "TooManyRequestsException",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}


class PortInUseError(OSError):
    """The requested ``host:port`` is taken by another socket; the message names both."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(errno.EADDRINUSE, f"port {port} on {host} is already in use; "
                                           f"choose another port (or 0 for a free one)")
        self.host = host
        self.port = port


# ---------------------------------------------------------------------------------------------
# moto's application, shared: its backends are process-wide anyway, one dispatcher is enough.
_app_lock = threading.Lock()
_moto_app: Any = None


def _shared_moto_app() -> Any:
    global _moto_app
    with _app_lock:
        if _moto_app is None:
            from moto.server import DomainDispatcherApplication, create_backend_app

            _moto_app = DomainDispatcherApplication(create_backend_app)
        return _moto_app


def _check_loopback(host: str) -> None:
    try:
        ok = ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"loopback endpoints listen on a loopback IP address only (127.0.0.0/8, ::1), not {host!r}")


def _bind(host: str, port: int, *, listen: bool) -> socket.socket:
    """A TCP socket bound to ``host:port`` with SO_REUSEADDR, listening or not.

    A bound socket that does not listen makes the kernel refuse connections to that port (RST)
    while keeping the port reserved: that is ``unreachable()`` without losing the port to another
    program in the meantime.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        if listen:
            sock.listen(128)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise PortInUseError(host, port) from e
        raise
    return sock


# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EndpointCounts:
    """A snapshot of what one endpoint received since it started or since ``reset_counts()``.

    ``per_second`` maps whole seconds since that moment to the requests that arrived in it;
    ``connections`` counts TCP connections accepted; ``by_tag`` counts requests by the value of
    their :data:`TAG_HEADER` header.
    """

    total: int = 0
    by_mode: dict[str, int] = field(default_factory=dict)
    by_operation: dict[str, int] = field(default_factory=dict)
    by_status: dict[int, int] = field(default_factory=dict)
    by_region: dict[str, int] = field(default_factory=dict)
    by_host: dict[str, int] = field(default_factory=dict)
    per_second: dict[int, int] = field(default_factory=dict)
    connections: int = 0
    by_tag: dict[str, int] = field(default_factory=dict)

    @property
    def peak_per_second(self) -> int:
        """The most requests that arrived within one whole second."""
        return max(self.per_second.values(), default=0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable form (status codes and seconds become strings)."""
        return {
            "total": self.total,
            "by_mode": dict(self.by_mode),
            "by_operation": dict(self.by_operation),
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "by_region": dict(self.by_region),
            "by_host": dict(self.by_host),
            "per_second": {str(k): v for k, v in sorted(self.per_second.items())},
            "peak_per_second": self.peak_per_second,
            "connections": self.connections,
            "by_tag": dict(self.by_tag),
        }


class _Counters:
    """Thread-safe request counters; one lock, held for a few dict updates per request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._t0 = time.monotonic()
            self._total = 0
            self._by_mode: Counter[str] = Counter()
            self._by_op: Counter[str] = Counter()
            self._by_status: Counter[int] = Counter()
            self._by_region: Counter[str] = Counter()
            self._by_host: Counter[str] = Counter()
            self._per_second: Counter[int] = Counter()
            self._per_second_host: Counter[tuple[int, str]] = Counter()
            self._connections = 0
            self._by_tag: Counter[str] = Counter()

    def connected(self) -> None:
        with self._lock:
            self._connections += 1

    def arrived(self, mode: str, operation: str, region: str, host: str, tag: str | None) -> None:
        with self._lock:
            if tag is not None:
                self._by_tag[tag] += 1
            second = int(time.monotonic() - self._t0)
            self._total += 1
            self._by_mode[mode] += 1
            self._by_op[operation] += 1
            self._by_region[region] += 1
            self._by_host[host] += 1
            if second not in self._per_second and len(self._per_second) >= TIMELINE_SECONDS:
                self._prune(second)
            self._per_second[second] += 1
            self._per_second_host[(second, host)] += 1

    def answered(self, status: int) -> None:
        with self._lock:
            self._by_status[status] += 1

    def _prune(self, now_second: int) -> None:
        oldest = now_second - TIMELINE_SECONDS
        for s in [s for s in self._per_second if s <= oldest]:
            del self._per_second[s]
        for key in [k for k in self._per_second_host if k[0] <= oldest]:
            del self._per_second_host[key]

    def snapshot(self) -> EndpointCounts:
        with self._lock:
            return EndpointCounts(self._total, dict(self._by_mode), dict(self._by_op), dict(self._by_status),
                                  dict(self._by_region), dict(self._by_host), dict(self._per_second),
                                  self._connections, dict(self._by_tag))

    def per_second_by_host(self) -> dict[str, dict[int, int]]:
        with self._lock:
            out: dict[str, dict[int, int]] = {}
            for (second, host), n in self._per_second_host.items():
                out.setdefault(host, {})[second] = n
            return out

    @property
    def total(self) -> int:
        with self._lock:
            return self._total


def _operation(environ: Mapping[str, Any]) -> str:
    """``GetItem`` from ``X-Amz-Target: DynamoDB_20120810.GetItem``; else the query ``Action``;
    else ``METHOD /path`` (REST services)."""
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return target.rsplit(".", 1)[-1]
    query = environ.get("QUERY_STRING") or ""
    for part in query.split("&"):
        if part.startswith("Action="):
            return part[len("Action="):]
    return f"{environ.get('REQUEST_METHOD', '?')} {environ.get('PATH_INFO', '/')}"


def _signing_region(environ: Mapping[str, Any]) -> str:
    """The region of the SigV4 credential scope (``Credential=AKID/date/REGION/service/...``)."""
    auth = environ.get("HTTP_AUTHORIZATION") or ""
    try:
        scope = auth.split("Credential=", 1)[1].split(",", 1)[0]
        return scope.split("/")[2]
    except IndexError:
        return "unsigned"


def _host(environ: Mapping[str, Any]) -> str:
    host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME") or "?"
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class _FaultInjector:
    """WSGI middleware: count the request, then pass it to moto, delay it, or answer an error."""

    def __init__(self, app: Any, counters: _Counters, stopping: threading.Event) -> None:
        self.app = app
        self.counters = counters
        self.stopping = stopping
        self.mode = HEALTHY
        self.latency = 0.0
        self.status = 503
        self.code = "ServiceUnavailable"
        self.message = "Service unavailable (loopback fault injection)"

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        mode, latency, status, code = self.mode, self.latency, self.status, self.code  # one consistent view
        self.counters.arrived(mode, _operation(environ), _signing_region(environ), _host(environ),
                              environ.get(_TAG_ENVIRON))

        def counted_start(status_line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            with contextlib.suppress(ValueError, IndexError):
                self.counters.answered(int(status_line.split(" ", 1)[0]))
            return start_response(status_line, headers, exc_info) if exc_info else start_response(status_line, headers)

        if latency > 0:
            self.stopping.wait(latency)  # bounded; cut short when the endpoint stops
        if mode == FAILING:
            return self._error(environ, counted_start, status, code)
        return self.app(environ, counted_start)

    def _error(self, environ: dict[str, Any], start_response: Any, status: int, code: str) -> list[bytes]:
        _drain(environ)  # keep the keep-alive connection usable, as a real server would
        json_protocol = bool(environ.get("HTTP_X_AMZ_TARGET")) or "json" in (environ.get("CONTENT_TYPE") or "")
        if json_protocol:
            import json

            body = json.dumps({"__type": f"com.amazonaws.loopback#{code}", "message": self.message}).encode()
            ctype = environ.get("CONTENT_TYPE") or "application/x-amz-json-1.0"
        else:
            body = (f"<ErrorResponse><Error><Type>Receiver</Type><Code>{code}</Code><Message>{self.message}"
                    f"</Message></Error><RequestId>loopback</RequestId></ErrorResponse>").encode()
            ctype = "text/xml"
        import http

        try:
            reason = http.HTTPStatus(status).phrase
        except ValueError:
            reason = "Error"
        start_response(f"{status} {reason}", [("Content-Type", ctype), ("Content-Length", str(len(body))),
                                              ("x-amzn-RequestId", "loopback"), ("x-amzn-ErrorType", code)])
        return [body]


def _drain(environ: dict[str, Any]) -> None:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return
    stream = environ.get("wsgi.input")
    if length > 0 and stream is not None:
        with contextlib.suppress(OSError, ValueError):
            stream.read(length)


# ---------------------------------------------------------------------------------------------
class LoopbackEndpoint:
    """moto's HTTP server on a loopback address, with faults you switch at run time.

    ``port=0`` picks a free port; ``.url`` is ``http://HOST:PORT`` (clients may use any name that
    resolves to HOST instead, moto does not look at the Host header). Thread-safe: modes can be
    switched and counts read from any thread while requests are served.

    Connections: werkzeug (3.x) answers every request with ``Connection: close``, so each request
    arrives on a new TCP connection and a client without a DNS cache resolves the name for every
    request. Production load balancers keep connections alive for a while and recycle them; the
    loopback endpoint is the pessimistic end of that range, which is what a DNS drill wants.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        _check_loopback(host)
        self.host = host
        self.port = port
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._counters = _Counters()
        self._injector: _FaultInjector | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._placeholder: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        self._started = False

    # -- life cycle ----------------------------------------------------------------------------
    def start(self) -> LoopbackEndpoint:
        """Listen and serve. Raises :class:`PortInUseError` naming the port if it is taken."""
        with self._lock:
            if self._started:
                return self
            self._injector = _FaultInjector(_shared_moto_app(), self._counters, self._stopping)
            self._stopping.clear()
            self._listen(_bind(self.host, self.port, listen=True))
            self._started = True
            return self

    def stop(self) -> None:
        """Stop serving, cut open connections, free the port. Idempotent."""
        with self._lock:
            self._stopping.set()
            self._stop_serving()
            if self._placeholder is not None:
                self._placeholder.close()
                self._placeholder = None
            self._started = False

    close = stop

    def __enter__(self) -> LoopbackEndpoint:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def url_for(self, name: str) -> str:
        """``http://NAME:PORT``: this endpoint's port behind a DNS name (for the DNS drills)."""
        return f"http://{name}:{self.port}"

    # -- faults --------------------------------------------------------------------------------
    def healthy(self) -> None:
        """Serve normally (no error, no added latency); listen again if unreachable."""
        self._set(HEALTHY, 0.0)
        self.reachable()

    def fail_with(self, status: int = 503, code: str | None = None,
                  message: str = "Service unavailable (loopback fault injection)") -> None:
        """Answer every request with ``status`` and an AWS-shaped error body (JSON for JSON
        protocols such as DynamoDB's, XML otherwise), so botocore raises a ``ClientError`` whose
        ``Error.Code`` is ``code`` and whose HTTP status is ``status``."""
        if not 400 <= int(status) <= 599:
            raise ValueError(f"status must be an HTTP error status (400-599), got {status!r}")
        inj = self._require()
        inj.status, inj.message = int(status), message
        inj.code = code or _DEFAULT_CODES.get(int(status), "ServiceError")
        self._set(FAILING, 0.0)

    def slow(self, seconds: float) -> None:
        """Serve normally after ``seconds`` of added latency per request."""
        if not 0 <= seconds <= 300:
            raise ValueError(f"seconds must be within [0, 300], got {seconds!r}")
        self._set(SLOW, float(seconds))

    def unreachable(self) -> None:
        """Refuse new connections (the port stays reserved, not listening) and cut open ones, so
        pooled keep-alive connections fail too. The mode set before is kept for ``reachable()``."""
        with self._lock:
            if self._server is None:
                return
            self._stop_serving()
            self._placeholder = _bind(self.host, self.port, listen=False)

    def reachable(self) -> None:
        """Listen again on the same host and port."""
        with self._lock:
            if not self._started or self._server is not None:
                return
            sock = _bind(self.host, self.port, listen=True)  # allowed next to the non-listening placeholder
            if self._placeholder is not None:
                self._placeholder.close()
                self._placeholder = None
            self._listen(sock)

    @property
    def is_reachable(self) -> bool:
        return self._server is not None

    @property
    def mode(self) -> str:
        """"healthy", "failing" or "slow" (``unreachable`` is :attr:`is_reachable`)."""
        return self._require().mode

    # -- counters ------------------------------------------------------------------------------
    def counts(self) -> EndpointCounts:
        """What this endpoint received since start or ``reset_counts()`` (a consistent snapshot)."""
        return self._counters.snapshot()

    @property
    def requests(self) -> int:
        """Requests received in all since start or ``reset_counts()``."""
        return self._counters.total

    def per_second_by_host(self) -> dict[str, dict[int, int]]:
        """Requests per whole second, split by the ``Host`` name the client used."""
        return self._counters.per_second_by_host()

    def reset_counts(self) -> None:
        self._counters.reset()

    # -- internals -----------------------------------------------------------------------------
    def _require(self) -> _FaultInjector:
        if self._injector is None:
            raise RuntimeError("LoopbackEndpoint is not started; call start() or use it as a context manager")
        return self._injector

    def _set(self, mode: str, latency: float) -> None:
        inj = self._require()
        inj.latency = latency
        inj.mode = mode

    def _listen(self, sock: socket.socket) -> None:
        from moto.server import MotoRequestHandler  # type: ignore[attr-defined]
        from werkzeug.serving import ThreadedWSGIServer

        endpoint = self

        class _Server(ThreadedWSGIServer):
            daemon_threads = True

            def process_request(self, request: Any, client_address: Any) -> None:
                with endpoint._conns_lock:
                    endpoint._conns.add(request)
                endpoint._counters.connected()
                super().process_request(request, client_address)

            def shutdown_request(self, request: Any) -> None:
                with endpoint._conns_lock:
                    endpoint._conns.discard(request)
                super().shutdown_request(request)

        class _Handler(MotoRequestHandler):
            def log_request(self, *args: Any, **kwargs: Any) -> None:  # quiet: drills print their own lines
                pass

            def log_error(self, *args: Any, **kwargs: Any) -> None:
                pass

        try:
            server = _Server(self.host, self.port, self._require(), _Handler, fd=sock.fileno())
        finally:
            sock.close()  # werkzeug dup()ed it
        self.port = server.server_address[1]
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": _POLL},
                                  name=f"loopback-aws-{self.host}:{self.port}", daemon=True)
        thread.start()
        self._server, self._thread = server, thread

    def _stop_serving(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()  # returns within _POLL
            server.server_close()
        if thread is not None:
            thread.join(timeout=5.0)
        with self._conns_lock:
            conns = list(self._conns)
            self._conns.clear()
        for conn in conns:  # cut keep-alive connections: a dead server does not answer on them
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def __repr__(self) -> str:
        state = "unreachable" if self._started and self._server is None else (
            self._injector.mode if self._injector else "stopped")
        return f"<LoopbackEndpoint {self.url} {state}>"


def start_region_endpoints(regions: Sequence[str], port: int = 0, *, hosts: Sequence[str] | None = None,
                           attempts: int = 20) -> dict[str, LoopbackEndpoint]:
    """One started endpoint per region, all on the same port: ``127.0.0.1`` for the first region,
    ``127.0.0.2`` for the second, and so on (or ``hosts``).

    Why one port: then a region's URL differs only by the address its DNS name resolves to, the
    way real regional endpoints do. With ``port=0`` a port free on every host is searched for
    (at most ``attempts`` tries); with a fixed port a taken one raises :class:`PortInUseError`.
    """
    hosts = list(hosts) if hosts is not None else [f"127.0.0.{i + 1}" for i in range(len(regions))]
    if len(hosts) < len(regions):
        raise ValueError("need one host per region")
    for _ in range(max(1, attempts)):
        started: list[LoopbackEndpoint] = []
        try:
            chosen = port
            for host in hosts[:len(regions)]:
                ep = LoopbackEndpoint(host, chosen).start()
                started.append(ep)
                chosen = ep.port
            return dict(zip(regions, started, strict=True))
        except PortInUseError:
            for ep in started:
                ep.stop()
            if port:
                raise
    raise PortInUseError(hosts[0], port)


# ---------------------------------------------------------------------------------------------
def plain_client(service: str, region: str, endpoint_url: str, **config: Any) -> Any:
    """A plain botocore client for loopback servers: test credentials, short timeouts, retries off
    unless ``config`` says otherwise (``retries={"mode": "standard"}``)."""
    import botocore.session
    from botocore.config import Config

    options: dict[str, Any] = {"retries": {"total_max_attempts": 1}, "connect_timeout": 2, "read_timeout": 10}
    options.update(config)
    session = botocore.session.get_session()
    return session.create_client(service, region_name=region, endpoint_url=endpoint_url,
                                 config=Config(**options), **TEST_CREDENTIALS)


def create_table(client: Any, name: str, *, key: str = "pk", items: Iterable[Mapping[str, Any]] = ()) -> None:
    """Create a pay-per-request DynamoDB table with a string hash key (if missing) and put ``items``
    (DynamoDB-typed: ``{"pk": {"S": "1"}, ...}``) through ``client``, a botocore DynamoDB client."""
    with contextlib.suppress(client.exceptions.ResourceInUseException):
        client.create_table(TableName=name, KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
                            AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
                            BillingMode="PAY_PER_REQUEST")
    put_items(client, name, items)


def put_items(client: Any, table: str, items: Iterable[Mapping[str, Any]]) -> int:
    """Write ``items`` in batches of 25; returns how many were written."""
    batch: list[dict[str, Any]] = []
    n = 0
    for item in items:
        batch.append({"PutRequest": {"Item": dict(item)}})
        if len(batch) == 25:
            n += _write(client, table, batch)
            batch = []
    if batch:
        n += _write(client, table, batch)
    return n


def _write(client: Any, table: str, batch: list[dict[str, Any]]) -> int:
    request = {table: batch}
    for _ in range(10):  # bounded; moto does not return unprocessed items, a real service might
        unprocessed = client.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}
        if not unprocessed:
            return len(batch)
        request = unprocessed
    raise RuntimeError(f"could not write {len(batch)} items to {table}")


def seed_regions(endpoints: Mapping[str, LoopbackEndpoint | str], table: str,
                 items: Iterable[Mapping[str, Any]], *, key: str = "pk") -> None:
    """Create ``table`` in every region and write the same ``items`` to each: global-table-like data."""
    items = list(items)
    for region, ep in endpoints.items():
        url = ep.url if isinstance(ep, LoopbackEndpoint) else ep
        create_table(plain_client("dynamodb", region, url), table, key=key, items=items)


@contextlib.contextmanager
def loopback_endpoints(regions: Sequence[str], port: int = 0) -> Iterator[dict[str, LoopbackEndpoint]]:
    """Context manager form of :func:`start_region_endpoints` that stops every endpoint on exit."""
    endpoints = start_region_endpoints(regions, port)
    try:
        yield endpoints
    finally:
        for ep in endpoints.values():
            ep.stop()


