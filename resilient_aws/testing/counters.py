"""What a loopback endpoint received, counted at the server side.

Why a module of its own: these counts are the ground truth a drill compares clients by (a client's own
statistics are claims), so they are kept apart from the code that serves or breaks requests, and read
through one immutable snapshot type, :class:`EndpointCounts`. Standard library only.

Every request is counted once when it arrives, whatever then happens to it (served, delayed, answered
with an injected error): in all, per fault mode, per operation (``X-Amz-Target``), per HTTP status
answered, per SigV4 signing region, per ``Host`` name, per :data:`TAG_HEADER` value and per second.
TCP connections accepted are counted too.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["TAG_HEADER", "TIMELINE_SECONDS", "EndpointCounts", "RequestCounters", "request_facts"]

#: A request header a test may set to label its requests; the server counts by its value
#: (``EndpointCounts.by_tag``). The drill uses it to attribute each retry to the call that made it.
TAG_HEADER = "X-Loopback-Tag"
_TAG_ENVIRON = "HTTP_" + TAG_HEADER.upper().replace("-", "_")

#: Seconds of per-second history kept (older seconds are dropped so a long run stays bounded).
TIMELINE_SECONDS = 3600


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


@dataclass(frozen=True)
class RequestFacts:
    """What the counters key a request by, read from its WSGI environ."""

    operation: str
    region: str
    host: str
    tag: str | None


def request_facts(environ: Mapping[str, Any]) -> RequestFacts:
    return RequestFacts(_operation(environ), _signing_region(environ), _host(environ), environ.get(_TAG_ENVIRON))


class RequestCounters:
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

    def arrived(self, mode: str, facts: RequestFacts) -> None:
        with self._lock:
            if facts.tag is not None:
                self._by_tag[facts.tag] += 1
            second = int(time.monotonic() - self._t0)
            self._total += 1
            self._by_mode[mode] += 1
            self._by_op[facts.operation] += 1
            self._by_region[facts.region] += 1
            self._by_host[facts.host] += 1
            if second not in self._per_second and len(self._per_second) >= TIMELINE_SECONDS:
                self._prune(second)
            self._per_second[second] += 1
            self._per_second_host[(second, facts.host)] += 1

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
    target: str | None = environ.get("HTTP_X_AMZ_TARGET")
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
