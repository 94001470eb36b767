"""Loopback AWS endpoints you can break: moto behind a switch, one per region, all on one port.

Why a real server: the failures this library exists for happen below botocore's API — a 503 on the
wire, a refused TCP connection, a pooled keep-alive connection that dies, a slow response. A mocked
client (``moto.mock_aws``) never opens a socket, so it cannot show any of them, and it cannot count
what a server really received. A :class:`LoopbackEndpoint` listens on a loopback address, counts every
request at the server side (:mod:`~resilient_aws.testing.counters`), passes it through the fault
injector (:mod:`~resilient_aws.testing.faults`) and on to moto's HTTP server
(:mod:`~resilient_aws.testing.moto_backend`). It can

- answer every request with an AWS-shaped error (``fail_with(503)``: botocore raises a
  ``ClientError`` with that HTTP status),
- add latency (``slow(0.5)``),
- stop listening (``unreachable()``: new connections are refused, open ones are cut) and listen
  again on the same address and port (``reachable()``).

Regions: moto picks a backend from the request's SigV4 signing region, so a request signed for
us-west-2 lands in us-west-2's data whichever endpoint received it. The drill runs us-east-1 on
127.0.0.1 and us-west-2 on 127.0.0.2 with the same port (:func:`start_region_endpoints`), which is what
lets one DNS name per region point at a different address while the URLs keep one port.

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
import socket
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from .counters import EndpointCounts, RequestCounters
from .faults import DEFAULT_CODES, DEFAULT_MESSAGE, FAILING, HEALTHY, SLOW, FaultInjector
from .net import check_loopback, free_port

__all__ = ["LoopbackEndpoint", "PortInUseError", "loopback_endpoints", "start_region_endpoints"]

_POLL = 0.05  # seconds; how quickly a serving loop notices shutdown()


class PortInUseError(OSError):
    """The requested ``host:port`` is taken by another socket; the message names both."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(errno.EADDRINUSE, f"port {port} on {host} is already in use; "
                                           f"choose another port (or 0 for a free one)")
        self.host = host
        self.port = port


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
        check_loopback(host, "a loopback endpoint")
        self.host = host
        self.port = port
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._counters = RequestCounters()
        self._injector: FaultInjector | None = None
        self._tracker: Any = None
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._placeholder: socket.socket | None = None
        self._started = False

    # -- life cycle ----------------------------------------------------------------------------
    def start(self) -> LoopbackEndpoint:
        """Listen and serve. Raises :class:`PortInUseError` naming the port if it is taken, and
        ``ImportError`` saying what to install when moto's server is missing."""
        with self._lock:
            if self._started:
                return self
            from .front import ConnectionTracker
            from .moto_backend import MotoForwarder, moto_address

            self._injector = FaultInjector(MotoForwarder(moto_address()), self._counters, self._stopping)
            self._tracker = ConnectionTracker(on_open=self._counters.connected)
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

    def fail_with(self, status: int = 503, code: str | None = None, message: str = DEFAULT_MESSAGE) -> None:
        """Answer every request with ``status`` and an AWS-shaped error body (JSON for JSON
        protocols such as DynamoDB's, XML otherwise), so botocore raises a ``ClientError`` whose
        ``Error.Code`` is ``code`` and whose HTTP status is ``status``."""
        if not 400 <= int(status) <= 599:
            raise ValueError(f"status must be an HTTP error status (400-599), got {status!r}")
        inj = self._require()
        inj.status, inj.message = int(status), message
        inj.code = code or DEFAULT_CODES.get(int(status), "ServiceError")
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
    def _require(self) -> FaultInjector:
        if self._injector is None:
            raise RuntimeError("LoopbackEndpoint is not started; call start() or use it as a context manager")
        return self._injector

    def _set(self, mode: str, latency: float) -> None:
        inj = self._require()
        inj.latency = latency
        inj.mode = mode

    def _listen(self, sock: socket.socket) -> None:
        from .front import serve

        self.port = sock.getsockname()[1]
        self._server, self._thread = serve(sock, self._require(), self._tracker, _POLL,
                                           name=f"loopback-aws-{self.host}:{self.port}")

    def _stop_serving(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()  # returns within _POLL
            server.server_close()
        if thread is not None:
            thread.join(timeout=5.0)
        if self._tracker is not None:
            self._tracker.cut_all()  # a dead server does not answer on open connections either

    def __repr__(self) -> str:
        state = "unreachable" if self._started and self._server is None else (
            self._injector.mode if self._injector else "stopped")
        return f"<LoopbackEndpoint {self.url} {state}>"


def start_region_endpoints(regions: Sequence[str], port: int = 0, *, hosts: Sequence[str] | None = None,
                           attempts: int = 20) -> dict[str, LoopbackEndpoint]:
    """One started endpoint per region, all on the same port: ``127.0.0.1`` for the first region,
    ``127.0.0.2`` for the second, and so on (or ``hosts``).

    Why one port: then a region's URL differs only by the address its DNS name resolves to, the
    way real regional endpoints do. With ``port=0`` a port free on every host is chosen
    (:func:`~resilient_aws.testing.net.free_port`; at most ``attempts`` tries, as another program may
    take it first); with a fixed port a taken one raises :class:`PortInUseError`.
    """
    hosts = list(hosts) if hosts is not None else [f"127.0.0.{i + 1}" for i in range(len(regions))]
    if len(hosts) < len(regions):
        raise ValueError("need one host per region")
    hosts = hosts[:len(regions)]
    for _ in range(max(1, attempts)):
        chosen = port or free_port(*hosts)
        started: list[LoopbackEndpoint] = []
        try:
            for host in hosts:
                started.append(LoopbackEndpoint(host, chosen).start())
            return dict(zip(regions, started, strict=True))
        except BaseException as e:
            for ep in started:
                ep.stop()
            if port or not isinstance(e, PortInUseError):
                raise
    raise PortInUseError(hosts[0], port)


@contextlib.contextmanager
def loopback_endpoints(regions: Sequence[str], port: int = 0) -> Iterator[dict[str, LoopbackEndpoint]]:
    """Context manager form of :func:`start_region_endpoints` that stops every endpoint on exit."""
    endpoints = start_region_endpoints(regions, port)
    try:
        yield endpoints
    finally:
        for ep in endpoints.values():
            ep.stop()
