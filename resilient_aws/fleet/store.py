"""What the fleet's shared store does, as a contract with two implementations.

Every operation on shared state is one atomic step on the store's side (a Lua script on Redis, see
``redis_store.py``; a method under a lock in :class:`MemoryStore`), timed by the *store's* clock:
processes on different hosts disagree about the wall clock, so the store answers in durations
("open for 830 ms more"), which each process adds to its own monotonic clock.

Per endpoint (its key: service, region, URL) the store keeps

- a breaker record: absent (closed), ``open`` until a time, or ``probing`` by one owner until a time
  (the probe *lease*: if its holder dies, the lease runs out and the next process may claim);
- a failure window: successes and failures reported by processes in ``window / 10`` buckets, so the
  fleet opens once the fleet, not each process, has seen ``min_calls`` results with the failure share;
- a reserve: the retry budget's floor (``min_per_second``) as one token bucket for the whole fleet;

and per DNS name the last good addresses and when they were answered.

Every change to a breaker record is published to every process (Redis pub/sub), which is how an
opening reaches the fleet in milliseconds without any process polling.

:class:`MemoryStore` is the in-memory stand-in used by the fleet simulation and unit tests; the
contract tests (``tests/fleet/test_store_contract.py``) run the same cases on it and on a real
``redis-server``, so the simulation measures the behaviour the Redis scripts have.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

logger = logging.getLogger("resilient_aws.fleet")

CLOSED = "closed"
OPEN = "open"
PROBING = "probing"
STATES = (CLOSED, OPEN, PROBING)

#: The longest duration a record may claim (a day, the policies' bound): anything longer is corrupt.
MAX_REMAINING = 86400.0
#: The window buckets of the fleet's failure counts (like the local ``RollingCounts``).
BUCKETS = 10
#: Reserve requests the whole fleet should make per second at most when the reserve is empty: a
#: denied process waits ``denials this second / ASK_RATE`` seconds (at least the refill time).
ASK_RATE = 500.0
#: Failure reports the whole fleet should send per second at most: a report's reply says how many
#: reports the store took this second, and the process waits ``that / REPORT_RATE`` seconds before
#: its next one (failures in between are added up, not lost). When a second's reports reach
#: ``PACE_AT`` the store also publishes how fast they came, and every process spreads its next report
#: over ``rate / REPORT_RATE`` seconds: the first wave of a large fleet is paced too.
REPORT_RATE = 1000.0
PACE_AT = 100
_MAX_HOLDER = 128
_MAX_ADDRESSES = 64


@dataclass(frozen=True)
class View:
    """What the fleet says of one endpoint: ``state``, seconds until a probe may be claimed
    (``remaining``), and the probe lease's holder (``""`` when none)."""

    state: str
    remaining: float = 0.0
    holder: str = ""


NO_OPINION = View(CLOSED)


@dataclass(frozen=True)
class Message:
    """A published message about one endpoint: its breaker's new ``view``; or ``kind`` "floor": the
    fleet's retry floor is empty for ``wait`` seconds; or ``kind`` "pace": spread failure reports over
    ``wait`` seconds."""

    key: str
    view: View | None
    kind: str = "breaker"
    wait: float = 0.0


class Store(Protocol):
    """The operations; ``key`` names an endpoint, ``owner`` a process. Times are in seconds."""

    def report(self, key: str, owner: str, successes: int, failures: int, *, min_calls: int,
               failure_ratio: float, window: float, open_time: float) -> tuple[View, int]:
        """Add to the fleet's window (opening it if the window says so); the view, and how many
        reports the store took this second (for the reporters' pacing)."""

    def open(self, key: str, owner: str, *, open_time: float) -> View: ...

    def claim(self, key: str, owner: str, *, lease: float) -> tuple[bool, View]: ...

    def probe_done(self, key: str, owner: str, ok: bool, *, open_time: float) -> View: ...

    def release(self, key: str, owner: str) -> View: ...

    def read(self, key: str) -> View | None: ...

    def reserve(self, key: str, *, rate: float, capacity: float) -> tuple[bool, float]: ...

    def dns_put(self, name: str, addresses: Sequence[str], *, max_stale: float) -> None: ...

    def dns_get(self, name: str) -> list[Any] | None:
        """``[entry, age_ms]`` as stored, unchecked (see :func:`dns_from`), or None."""


# -- validation: a shared store is input like any other ---------------------------------------------
class Invalid(ValueError):
    """Data from the store that this process refuses to act on."""


class Unavailable(Exception):
    """The store could not be used for this call (refused, timed out, closed, restarted...)."""


def view_from(raw: object) -> View:
    """A script's reply ``[state, remaining_ms, holder]`` as a :class:`View`, or :class:`Invalid`."""
    if not isinstance(raw, (list, tuple)) or len(raw) != 3:
        raise Invalid(f"breaker reply is not [state, ms, holder]: {raw!r:.200}")
    state, remaining_ms, holder = (_text(raw[0]), raw[1], _text(raw[2]))
    return _view(state, remaining_ms, holder)


def _view(state: object, remaining_ms: object, holder: object) -> View:
    if state not in STATES:
        raise Invalid(f"unknown breaker state {state!r:.60}")
    if isinstance(remaining_ms, bool) or not isinstance(remaining_ms, (int, float)):
        raise Invalid(f"breaker remaining time is not a number: {remaining_ms!r:.60}")
    remaining = float(remaining_ms) / 1000.0
    if not (math.isfinite(remaining) and 0.0 <= remaining <= MAX_REMAINING):
        raise Invalid(f"breaker remaining time out of range: {remaining_ms!r:.60} ms")
    if not isinstance(holder, str) or len(holder) > _MAX_HOLDER:
        raise Invalid(f"probe holder is not a short string: {holder!r:.60}")
    return View(str(state), remaining, holder)


def message_from(data: object, namespace: str) -> Message:
    """A published message (JSON ``{"ns", "e", "st", "rem", "h"}``) as a :class:`Message`."""
    try:
        item = json.loads(_text(data))
    except (ValueError, TypeError) as exc:
        raise Invalid(f"message is not JSON: {exc}") from None
    if not isinstance(item, dict):
        raise Invalid("message is not a JSON object")
    if item.get("ns") != namespace:
        raise Invalid(f"message from another namespace ({item.get('ns')!r:.60})")
    key = item.get("e")
    if not isinstance(key, str) or not key or len(key) > 1024:
        raise Invalid("message names no endpoint")
    kind = item.get("k", "breaker")
    if kind in ("floor", "pace"):
        wait = item.get("w")
        if isinstance(wait, bool) or not isinstance(wait, (int, float)) or not 0 <= wait <= MAX_REMAINING * 1000:
            raise Invalid(f"{kind} wait out of range: {wait!r:.60}")
        return Message(key, None, kind, float(wait) / 1000.0)
    if kind != "breaker":
        raise Invalid(f"unknown message kind {kind!r:.60}")
    return Message(key, _view(item.get("st"), item.get("rem"), item.get("h", "")))


def dns_from(raw: object, namespace: str, max_stale: float) -> tuple[list[str], float] | None:
    """A DNS entry's reply ``[json, age_ms]``: the addresses and their age, or :class:`Invalid`.
    None when there is no entry, or when it is too old to serve."""
    if raw is None:
        return None
    if not isinstance(raw, (list, tuple)) or len(raw) != 2:
        raise Invalid(f"DNS reply is not [entry, age]: {raw!r:.200}")
    try:
        item = json.loads(_text(raw[0]))
    except (ValueError, TypeError) as exc:
        raise Invalid(f"DNS entry is not JSON: {exc}") from None
    if not isinstance(item, dict) or item.get("ns") != namespace:
        raise Invalid("DNS entry from another namespace")
    age_ms = raw[1]
    if isinstance(age_ms, bool) or not isinstance(age_ms, (int, float)) or not math.isfinite(age_ms) or age_ms < 0:
        raise Invalid(f"DNS entry age is not a duration: {age_ms!r:.60}")
    addresses = item.get("a")
    if not isinstance(addresses, list) or not addresses or len(addresses) > _MAX_ADDRESSES:
        raise Invalid("DNS entry holds no address list")
    for address in addresses:
        if not isinstance(address, str):
            raise Invalid(f"DNS address is not a string: {address!r:.60}")
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise Invalid(f"DNS address is not an IP address: {address!r:.60}") from None
    age = float(age_ms) / 1000.0
    if age >= max_stale:
        return None
    return list(addresses), age


def dns_entry(addresses: Sequence[str], namespace: str) -> str:
    return json.dumps({"ns": namespace, "a": list(addresses)}, separators=(",", ":"))


def encode_message(namespace: str, key: str, view: View) -> str:
    return json.dumps({"ns": namespace, "e": key, "st": view.state, "rem": round(view.remaining * 1000),
                       "h": view.holder}, separators=(",", ":"))


def encode_wait(namespace: str, key: str, kind: str, wait: float) -> str:
    """A "floor" or "pace" message."""
    return json.dumps({"ns": namespace, "e": key, "k": kind, "w": math.ceil(wait * 1000)}, separators=(",", ":"))


def pace_for(reports: int, elapsed: float) -> float:
    """Over how many seconds the fleet should spread its reports, ``reports`` having come in ``elapsed``."""
    rate = reports / max(elapsed, 0.001)
    return min(60.0, rate / REPORT_RATE)


def _text(value: object) -> Any:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


# -- the in-memory stand-in -------------------------------------------------------------------------
class _Record:
    __slots__ = ("holder", "state", "until")

    def __init__(self, state: str, until: float, holder: str = "") -> None:
        self.state = state
        self.until = until
        self.holder = holder


class MemoryStore:
    """The store's contract in memory, for simulations and unit tests (one process, any number of
    simulated ones). ``clock()`` is the store's clock; ``publish(text)`` receives every message (the
    simulation delivers them to its processes); ``commands`` counts operations as Redis would count
    the scripts' calls (one per operation), ``by_operation`` the same per operation, ``published``
    the messages."""

    def __init__(self, clock: Callable[[], float], *, namespace: str = "resilient_aws",
                 publish: Callable[[str], None] | None = None) -> None:
        self._clock = clock
        self._ns = namespace
        self._publish = publish
        self._lock = threading.Lock()
        self._records: dict[str, _Record] = {}
        self._windows: dict[str, dict[int, list[int]]] = {}
        self._reserves: dict[str, list[float]] = {}      # key -> [tokens, at]
        self._denials: dict[str, list[float]] = {}       # key -> [second, count]
        self._floor_told: dict[str, float] = {}          # key -> until when "floor empty" was published
        self._reports: dict[str, list[float]] = {}       # key -> [second, count, first report's time]
        self._dns: dict[str, tuple[str, float, float]] = {}  # name -> (entry, at, expires)
        self.commands = 0
        self.by_operation: dict[str, int] = {}
        self.published = 0

    # breaker ------------------------------------------------------------------------------------
    def report(self, key: str, owner: str, successes: int, failures: int, *, min_calls: int,
               failure_ratio: float, window: float, open_time: float) -> tuple[View, int]:
        with self._lock:
            self._count("report")
            now = self._clock()
            second = math.floor(now)
            seen = self._reports.get(key)
            if seen is None or seen[0] != second:
                seen = self._reports[key] = [second, 0, now]
            seen[1] += 1
            if seen[1] == PACE_AT:
                self.published += 1
                if self._publish is not None:
                    self._publish(encode_wait(self._ns, key, "pace", pace_for(PACE_AT, now - seen[2])))
            width = window / BUCKETS
            current = math.floor(now / width)
            buckets = self._windows.setdefault(key, {})
            for bucket in [b for b in buckets if b <= current - BUCKETS]:
                del buckets[bucket]
            counts = buckets.setdefault(current, [0, 0])
            counts[0] += successes
            counts[1] += failures
            ok = sum(c[0] for c in buckets.values())
            bad = sum(c[1] for c in buckets.values())
            record = self._records.get(key)
            if record is None and bad >= min_calls and bad >= failure_ratio * (ok + bad):
                record = self._records[key] = _Record(OPEN, now + open_time)
                self._emit(key, record, now)
            return self._view(record, now), int(seen[1])

    def open(self, key: str, owner: str, *, open_time: float) -> View:
        with self._lock:
            self._count("open")
            now = self._clock()
            record = self._records.get(key)
            if record is None:
                record = self._records[key] = _Record(OPEN, now + open_time)
                self._emit(key, record, now)
            return self._view(record, now)

    def claim(self, key: str, owner: str, *, lease: float) -> tuple[bool, View]:
        with self._lock:
            self._count("claim")
            now = self._clock()
            record = self._records.get(key)
            if record is None:  # the fleet is closed: a process still open (it missed the closing) probes alone
                return True, NO_OPINION
            if now < record.until:
                return False, self._view(record, now)
            record = self._records[key] = _Record(PROBING, now + lease, owner)
            self._emit(key, record, now)
            return True, self._view(record, now)

    def probe_done(self, key: str, owner: str, ok: bool, *, open_time: float) -> View:
        with self._lock:
            self._count("probe_done")
            now = self._clock()
            record = self._records.get(key)
            if record is None or record.holder != owner:
                return self._view(record, now)  # the lease ran out and went to someone else
            if ok:
                del self._records[key]
                self._windows.pop(key, None)
                self._emit(key, None, now)
                return NO_OPINION
            record.state, record.until, record.holder = OPEN, now + open_time, ""
            self._emit(key, record, now)
            return self._view(record, now)

    def release(self, key: str, owner: str) -> View:
        with self._lock:
            self._count("release")
            now = self._clock()
            record = self._records.get(key)
            if record is not None and record.holder == owner:
                record.state, record.until, record.holder = OPEN, now, ""
                self._emit(key, record, now)
            return self._view(record, now)

    def read(self, key: str) -> View | None:
        with self._lock:
            self._count("read")
            record = self._records.get(key)
            return None if record is None else self._view(record, self._clock())

    # budget reserve ------------------------------------------------------------------------------
    def reserve(self, key: str, *, rate: float, capacity: float) -> tuple[bool, float]:
        with self._lock:
            self._count("reserve")
            now = self._clock()
            tokens, at = self._reserves.get(key, [capacity, now])
            tokens = min(capacity, tokens + max(0.0, now - at) * rate)
            if tokens >= 1.0:
                self._reserves[key] = [tokens - 1.0, now]
                return True, 0.0
            self._reserves[key] = [tokens, now]
            second = math.floor(now)
            denied = self._denials.get(key)
            if denied is None or denied[0] != second:
                denied = self._denials[key] = [second, 0]
            denied[1] += 1
            wait = max((1.0 - tokens) / rate if rate > 0 else 1.0, denied[1] / ASK_RATE)
            if now >= self._floor_told.get(key, -math.inf):  # tell the fleet once per empty period
                told = max(wait, capacity / rate if rate > 0 else 1.0)  # the time it takes to fill again
                self._floor_told[key] = now + told
                self.published += 1
                if self._publish is not None:
                    self._publish(encode_wait(self._ns, key, "floor", told))
            return False, wait

    # DNS -----------------------------------------------------------------------------------------
    def dns_put(self, name: str, addresses: Sequence[str], *, max_stale: float) -> None:
        with self._lock:
            self._count("dns_put")
            now = self._clock()
            self._dns[name] = (dns_entry(addresses, self._ns), now, now + max_stale)

    def dns_get(self, name: str) -> list[Any] | None:
        with self._lock:
            self._count("dns_get")
            now = self._clock()
            item = self._dns.get(name)
            if item is None or now >= item[2]:
                return None
            return [item[0], round((now - item[1]) * 1000)]

    # for tests of validation: put anything in the store, as a foreign writer could
    def put_raw_dns(self, name: str, entry: str, age: float, ttl: float) -> None:
        now = self._clock()
        self._dns[name] = (entry, now - age, now + ttl)

    # internals -------------------------------------------------------------------------------------
    def _count(self, operation: str) -> None:
        self.commands += 1
        self.by_operation[operation] = self.by_operation.get(operation, 0) + 1

    def _view(self, record: _Record | None, now: float) -> View:
        if record is None:
            return NO_OPINION
        return View(record.state, min(MAX_REMAINING, max(0.0, record.until - now)), record.holder)

    def _emit(self, key: str, record: _Record | None, now: float) -> None:
        self.published += 1
        if self._publish is not None:
            self._publish(encode_message(self._ns, key, self._view(record, now)))
