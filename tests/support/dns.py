"""Helpers shared by the DNS tests: the test names, a plain botocore client, a keep-alive JSON server,
and the two fakes the unit tests drive ``DnsCache`` with: a resolver answering from a table and a
clock moved by hand.

Why fakes for the unit tests: the cache's rules are about time (TTL, refresh ahead, re-check, jitter,
``max_stale``) and about which lookups happen. A hand-moved clock makes a TTL pass without sleeping;
a table-driven resolver counts every lookup the cache really made (the count is the resolver's, not
the cache's own statistics) and can hang on purpose until the test lets it go, which shows whether a
caller waited without timing anybody. What only real packets can show (how each failure looks on
the wire, timeouts, the TCP fallback) stays with the loopback DNS server and BIND, in the tests
marked ``integration``.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable

from resilient_aws.dns import Answer, DnsCache, LookupFailure

ZONE = "resilient.test"
NAME = f"dynamodb.us-east-1.{ZONE}"

#: What ``FakeResolver.set_mode`` accepts: "answer", each failure kind of the real resolver, and
#: "crash" (the resolver raises something that is not a ``LookupFailure``: a bug).
FAKE_MODES = ("answer", "empty", "nxdomain", "servfail", "timeout", "unreachable", "error", "crash")


def ips(infos: list[tuple]) -> list[str]:
    return [info[4][0] for info in infos]


class FakeClock:
    """A clock the test moves by hand (``monotonic`` or ``wall_clock`` of a cache or a store)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeResolver:
    """Stands in for ``resilient_aws.dns.Resolver``: ``lookup(host)`` answers from a table, or raises
    the ``LookupFailure`` its mode names; a name not in the table is NXDOMAIN.

    Counts lookups per name (``count``) and records the thread each one ran on (``threads``).
    ``hold()`` makes every lookup block until ``release()``, as a server that does not answer: a
    lookup that is still blocked shows that nobody waited for it. The block is bounded by
    ``hold_timeout`` (``held_too_long`` then says so) so that a broken cache fails a test, not hangs it.
    """

    def __init__(self, hold_timeout: float = 10.0) -> None:
        self.hold_timeout = hold_timeout
        self.held_too_long = False
        self.threads: list[threading.Thread] = []
        self._records: dict[str, tuple[tuple[tuple[int, str], ...], float, str]] = {}
        self._modes: dict[str, str] = {}
        self._lookups: Counter[str] = Counter()
        self._in_flight = 0
        self._open = threading.Event()
        self._open.set()
        self._changed = threading.Condition()

    # -- the table ------------------------------------------------------------------------------
    def set(self, name: str, addresses: Iterable[str], ttl: float = 60.0, source: str = "dns") -> None:
        """Answer ``name`` with these addresses (mode back to "answer")."""
        found = tuple((socket.AF_INET6 if ":" in ip else socket.AF_INET, ip) for ip in addresses)
        with self._changed:
            self._records[name] = (found, float(ttl), source)
            self._modes[name] = "answer"

    def set_mode(self, name: str, mode: str) -> None:
        if mode not in FAKE_MODES:
            raise ValueError(f"mode must be one of {FAKE_MODES}, got {mode!r}")
        with self._changed:
            self._modes[name] = mode

    def restore(self, name: str) -> None:
        self.set_mode(name, "answer")

    # -- hanging on purpose ---------------------------------------------------------------------
    def hold(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def wait_in_flight(self, n: int = 1, timeout: float = 5.0) -> bool:
        """Bounded wait until ``n`` lookups are running (blocked, when held)."""
        with self._changed:
            return self._changed.wait_for(lambda: self._in_flight >= n, timeout)

    @property
    def in_flight(self) -> int:
        with self._changed:
            return self._in_flight

    def count(self, name: str | None = None) -> int:
        """Lookups made for ``name`` (or for every name) so far."""
        with self._changed:
            return self._lookups[name] if name is not None else sum(self._lookups.values())

    # -- what the cache calls -------------------------------------------------------------------
    def lookup(self, host: str) -> Answer:
        with self._changed:
            self._lookups[host] += 1
            self.threads.append(threading.current_thread())
            self._in_flight += 1
            self._changed.notify_all()
        try:
            if not self._open.wait(self.hold_timeout):
                self.held_too_long = True
            with self._changed:
                record = self._records.get(host)
                mode = self._modes.get(host, "answer")
            if mode == "crash":
                raise RuntimeError("resolver bug")
            if mode != "answer":
                raise LookupFailure(host, mode, f"fake {mode}", 1)
            if record is None or not record[0]:
                raise LookupFailure(host, "nxdomain", "no such name", 1)
            addresses, ttl, source = record
            return Answer(addresses, ttl, source, 1)
        finally:
            with self._changed:
                self._in_flight -= 1
                self._changed.notify_all()


def settle(cache: DnsCache, host: str, timeout: float = 5.0) -> None:
    """Bounded wait until the lookup in flight for ``host`` (a background refresh or re-check), if
    any, has finished and the cache has recorded its outcome."""
    entry = cache._entries.get(host)
    event = entry.inflight if entry is not None else None
    if event is not None:
        assert event.wait(timeout), f"the lookup of {host} is still running after {timeout} s"


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, interval: float = 0.02) -> bool:
    """Poll ``predicate`` until true or ``timeout`` seconds (bounded): for integration tests, which wait
    on real servers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def make_client(url: str, verify: bool | str | None = None, **config: object):
    """A plain botocore DynamoDB client (retries off) for ``url``; no resilient_aws wrapper."""
    import botocore.session
    from botocore.config import Config

    return botocore.session.get_session().create_client(
        "dynamodb", region_name="us-east-1", endpoint_url=url, aws_access_key_id="x", aws_secret_access_key="x",
        verify=verify, config=Config(retries={"total_max_attempts": 1}, connect_timeout=2, read_timeout=5, **config))


def resolve_in_threads(cache: DnsCache, host: str, threads: int = 32, calls: int = 20) -> list[list[str]]:
    """``calls`` resolutions of ``host`` in each of ``threads`` threads released together; the IPs each got."""
    from support.threads import run_in_threads

    results: list[list[list[str]]] = [[] for _ in range(threads)]

    def worker(i: int) -> None:
        for _ in range(calls):
            results[i].append(ips(cache.resolve(host, 443)))

    run_in_threads(threads, worker, timeout=30)
    return [got for per_thread in results for got in per_thread]
