"""Last-known-good DNS cache: a name that resolved before keeps its addresses until it resolves again.

Why: on 2025-10-20 the servers behind ``dynamodb.us-east-1.amazonaws.com`` were healthy while the name
answered NOERROR with no records. RFC 8767 serve-stale treats that authoritative empty answer as a
fresh answer, so it would not have helped. Here only a *non-empty* answer replaces the addresses a name
had; an empty answer, NXDOMAIN, SERVFAIL, a timeout or an unreachable nameserver keeps the last good
ones for up to ``DnsPolicy.max_stale`` seconds past their TTL (Envoy's DNS cache and AWS CRT behave
the same way). See ``docs/dns.md``.

Shape of the work:

- **hit** (the common case, no lock): one dict read, one clock read, one comparison, a list copy;
- **refresh ahead**: once ``1 - refresh_ahead`` of the TTL has passed, the next caller starts a
  background refresh and returns the cached addresses at once: a healthy name never makes a caller
  wait on DNS;
- **single flight**: at most one lookup per name at a time, whatever the thread count; callers that
  must wait (a name with no usable answer yet) wait on that one lookup;
- **episodes**: while lookups fail, the name is re-checked at most every ``recheck_interval``
  seconds (+0 to 25 % jitter so a fleet does not query in step), logged once when the episode starts and
  once when it ends, and reported as ``DNS_STALE`` / ``DNS_RECOVERED`` events;
- **no history**: a name that never resolved raises :class:`DnsLookupError` (the connection hook turns
  it into urllib3's ``NameResolutionError``, i.e. botocore's ``EndpointConnectionError``, which the
  core fails over). Such a failure is remembered for ``recheck_interval`` seconds, so a dead name does
  not turn every connection attempt into a query;
- **bounded**: at most ``max_names`` names (``cachetools.LRUCache``; recency is updated on every
  refresh, i.e. once per TTL for a name in use, not on every hit, to keep the hit path lock-free).

No lock is ever held around a DNS query, a socket or a file write.

**asyncio** (``resolve_async``, what ``resilient_aws.aio.resolver.CachedResolver`` calls): the same
rules and the same entries, in the same methods: ``_plan`` decides (under the lock, which only ever
guards a few assignments, so taking it on the loop costs microseconds), ``_record`` books the outcome,
``_answer_for`` answers. Only the lookup differs: it runs as an asyncio task awaiting
``dns.asyncresolver``, which *is* the name's one flight (``e.inflight`` is set as for a thread), so a
thread and a task never query the same name at once. Tasks of the task's loop wait on it with
``asyncio.wait`` (a waiter cancelled leaves the lookup running for the others); a thread, or a task
of another loop, waits on ``e.inflight`` (in a worker thread, for a task). What may block (the
persisted file, the fleet's store) is booked in a worker thread when configured.

Why the clocks are parameters: every rule above is a rule about time (TTL, refresh ahead, re-check
interval, jitter, ``max_stale``). Tests pass their own ``monotonic`` and ``random`` (or a
:class:`~resilient_aws.timing.Timing`) and move time by hand, so an expiry or a re-check is checked
exactly, without sleeping. The clock is an attribute bound at construction, fetched and then called
on the hit path, which costs it nothing measurable. ``wait`` is how a caller with nothing to
serve waits for the lookup in flight: ``threading.Event.wait`` with a bound, replaceable so a test can
see the bound without waiting it out. The lookup itself runs on real network time.

This module is the state machine only. What the persisted file holds and how far its times are
trusted is ``persist.py``'s job; here an entry is only marked as worth saving and handed over.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import cachetools

from .. import _fork
from ..events import DNS_FAILURE, DNS_RECOVERED, DNS_STALE, Emitter, Event
from ..policy import DnsPolicy
from ..timing import Timing, coerce_timing
from .persist import AnswerStore, StoredName, restore, save_due, stored
from .resolver import HOSTS_PATH, Address, Answer, HostsFile, LookupFailure, Resolver

if TYPE_CHECKING:  # pragma: no cover
    from ..fleet import DnsLink

logger = logging.getLogger("resilient_aws.dns")

#: How long a caller with nothing to serve waits for the lookup in flight, beyond the DNS timeout.
_WAIT_MARGIN = 1.0


class DnsLookupError(OSError):
    """A name with no usable last-known-good answer could not be resolved (``kind`` says how)."""

    def __init__(self, host: str, kind: str, message: str) -> None:
        super().__init__(f"cannot resolve {host!r} ({kind}): {message}")
        self.host = host
        self.kind = kind


#: One address as ``socket.getaddrinfo`` gives it: (family, type, proto, canonname, sockaddr), the sockaddr
#: being ``(ip, port)`` for IPv4 and ``(ip, port, flowinfo, scope_id)`` for IPv6.
AddrInfo = tuple[int, int, int, str, tuple[str, int] | tuple[str, int, int, int]]


class _Entry:
    """Mutable state of one host name. Written under ``DnsCache._lock``; read without it (each field
    is replaced by one assignment, so a reader sees an old or a new value, never a torn one)."""

    __slots__ = ("addresses", "answered_at", "expires", "failing_since", "failure_kind", "host",
                 "inflight", "infos", "next_check", "persistable", "refresh_at", "saved_at", "stale_until",
                 "task")

    def __init__(self, host: str) -> None:
        self.host = host
        self.addresses: tuple[Address, ...] = ()      # last good answer, in connection order
        self.infos: dict[int, list[AddrInfo]] = {}   # port -> getaddrinfo-style tuples (memo)
        self.refresh_at = 0.0       # hit path is valid while now < refresh_at
        self.expires = 0.0          # end of the TTL of the last good answer
        self.stale_until = 0.0      # last good answer may be served until then (expires + max_stale)
        self.answered_at = 0.0      # wall clock of the last good answer (for persistence)
        self.failing_since: float | None = None  # monotonic start of the current failure episode
        self.failure_kind: str | None = None
        self.next_check = 0.0       # earliest next lookup while failing
        self.inflight: threading.Event | None = None
        self.task: asyncio.Task[None] | None = None  # the lookup in flight when an asyncio task runs it
        self.persistable = False
        self.saved_at = 0.0


class _Plan(NamedTuple):
    """What a caller outside the hit path does, decided under the lock: start the lookup (in the
    background or waiting for it), wait for the one in flight (``wait_for``), or neither."""

    entry: _Entry
    start: bool
    background: bool
    wait_for: threading.Event | None


class _BoundedIndex(cachetools.LRUCache[str, bool]):
    """The LRU bound. Evicting a name here removes it from the lock-free lookup dict too."""

    def __init__(self, maxsize: int, on_evict: Callable[[str], object]) -> None:
        super().__init__(maxsize)
        self._on_evict = on_evict

    def popitem(self) -> tuple[str, bool]:
        key, value = super().popitem()
        self._on_evict(key)
        return key, value


class DnsCache:
    """Last-known-good DNS answers for the connections of every client of one session.

    ``resolve(host, port)`` returns ``[(family, type, proto, canonname, sockaddr), ...]`` like
    ``socket.getaddrinfo``, in the order to try them; ``report_failure(host, ip)`` moves an address
    that refused a connection to the back. Thread-safe; fork-safe (answers survive in the child).

    ``resolver`` / ``hosts_path`` exist for tests. So do the clocks (see the module docstring):

    - ``monotonic()``: every time of the state machine (TTL, re-check, ``max_stale``) and the hosts
      file's re-read check; ``random()``: the re-check jitter. Both default to ``timing``'s, and
      ``timing`` to the real ones (``time.monotonic``, ``random.random``); a Session passes its own.
    - ``wall_clock()``: the times in the persisted file (``time.time``), so a test can play a machine
      whose clock is wrong.
    - ``wait(event, seconds)``: how a caller with nothing to serve waits for the lookup in flight
      (``threading.Event.wait``); returns whether the lookup finished.
    """

    def __init__(self, policy: DnsPolicy, emitter: Emitter | None = None, *,
                 resolver: Resolver | None = None, hosts_path: str | None = None,
                 timing: Timing | None = None,
                 monotonic: Callable[[], float] | None = None,
                 wall_clock: Callable[[], float] = time.time,
                 random: Callable[[], float] | None = None,
                 wait: Callable[[threading.Event, float], bool] = threading.Event.wait,
                 fleet: DnsLink | None = None) -> None:
        timing = coerce_timing(timing)
        self.policy = policy
        self._emitter = emitter
        self._monotonic = monotonic or timing.monotonic  # bound once: the hit path reads it
        self._wall_clock = wall_clock
        self._random = random or timing.random
        self._wait = wait
        self._fleet = fleet
        self._resolver = resolver or Resolver(policy, HostsFile(hosts_path or HOSTS_PATH, monotonic=self._monotonic))
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._index = _BoundedIndex(policy.max_names, self._entries.pop)
        self._closed = False
        self._tasks: set[asyncio.Task[None]] = set()  # strong references to the asyncio lookups
        self._counters = dict.fromkeys(
            ("lookups", "queries", "answers", "answers_changed", "refreshes_ahead", "rechecks", "failures",
             "cold_failures", "stale_served", "stale_episodes", "stale_expired", "recoveries",
             "connect_failures", "persisted_loads", "persist_writes", "persist_errors", "fleet_loads"), 0)
        self._failures_by_kind: dict[str, int] = {}
        self._store = AnswerStore(policy.persist_path, max_stale=policy.max_stale,
                                  wall_clock=wall_clock) if policy.persist_path else None
        if self._store is not None:
            self._load()
        _fork.register(self)

    # -- the hot path --------------------------------------------------------------------------
    def resolve(self, host: str, port: int) -> list[AddrInfo]:
        """Addresses to connect to, in order. Raises :class:`DnsLookupError` when there are none."""
        e = self._entries.get(host)
        if e is not None:
            # Fetched, then called: ``self._monotonic()`` in one go is a method-call lookup that CPython
            # does not specialize for an instance attribute (~10 ns more than the old module global).
            clock = self._monotonic
            if clock() < e.refresh_at and e.failing_since is None:
                infos = e.infos.get(port)
                if infos is not None:
                    return list(infos)
        return self._resolve_slow(host, port)

    # -- everything else -----------------------------------------------------------------------
    def _resolve_slow(self, host: str, port: int) -> list[AddrInfo]:
        e, start, background, wait_for = self._plan(host)
        if start:
            if background:
                self._spawn(host, e)
            else:
                self._refresh(host, e)
        elif wait_for is not None:
            self._wait(wait_for, self._wait_bound())
        return self._answer_for(host, e, port)

    def _wait_bound(self) -> float:
        return self.policy.timeout * 2 + _WAIT_MARGIN

    def _plan(self, host: str) -> _Plan:
        """The rules for a caller the hit path did not serve. When ``start`` is true the caller owns
        ``entry.inflight`` and must run one lookup and then :meth:`_finish` it."""
        now = self._monotonic()
        wait_for: threading.Event | None = None
        start = start_in_background = expired = False
        with self._lock:
            e = self._entries.get(host)
            if e is None:
                e = _Entry(host)
                self._entries[host] = e
                self._index[host] = True
            usable = bool(e.addresses) and now < e.stale_until
            if not usable and e.addresses:
                self._expire_stale(e)
                expired = True
            if e.inflight is not None:
                if not usable:
                    wait_for = e.inflight
            elif e.failing_since is not None or not usable:
                # Failing (stale or cold): look again only when the re-check time has come.
                if now >= e.next_check:
                    start = True
            elif now >= e.refresh_at:
                start = True
            if start:
                e.inflight = threading.Event()
                # Past the TTL (an idle name) and not in an episode: the caller waits for one lookup,
                # like any resolver would; within the TTL the refresh runs behind the caller's back.
                if not usable or (now >= e.expires and e.failing_since is None):
                    wait_for = e.inflight
                    start_in_background = False
                else:
                    start_in_background = True
                    self._counters["rechecks" if e.failing_since is not None else "refreshes_ahead"] += 1
        if expired:
            logger.warning("last-known-good DNS answer for %s expired (max_stale %.0f s); "
                           "the name fails until it resolves again", host, self.policy.max_stale)
            self._emit(DNS_FAILURE, host, {"kind": "stale_expired", "max_stale": self.policy.max_stale})
        return _Plan(e, start, start_in_background, None if start else wait_for)

    def _answer_for(self, host: str, e: _Entry, port: int) -> list[AddrInfo]:
        """After a lookup (or not): the last good addresses if they may be served, else the error."""
        now = self._monotonic()
        addresses = e.addresses
        if addresses and now < e.stale_until:
            if now >= e.expires and e.failing_since is not None:
                with self._lock:
                    self._counters["stale_served"] += 1
            infos = e.infos.get(port)
            if infos is None:
                infos = _infos(addresses, port)
                with self._lock:
                    if e.addresses is addresses:  # not reordered or replaced meanwhile
                        e.infos = {**e.infos, port: infos}
            return list(infos)
        kind = e.failure_kind or "timeout"
        with self._lock:
            self._counters["cold_failures"] += 1
        raise DnsLookupError(host, kind, "no answer and no last-known-good address")

    def _spawn(self, host: str, e: _Entry) -> None:
        try:
            threading.Thread(target=self._refresh, args=(host, e), name=f"resilient-dns-{host}",
                             daemon=True).start()
        except RuntimeError:  # interpreter shutting down: no background work then
            self._finish(e)

    def _finish(self, e: _Entry) -> None:
        with self._lock:
            event, e.inflight = e.inflight, None
        if event is not None:
            event.set()

    def _refresh(self, host: str, e: _Entry) -> None:
        """One lookup for ``host`` (this thread owns ``e.inflight``); no lock held while it runs."""
        try:
            try:
                answer: Answer | LookupFailure = self._resolver.lookup(host)
            except LookupFailure as failure:
                answer = failure
            except Exception as exc:  # a resolver bug must not leave the name in flight forever
                logger.exception("DNS lookup of %s raised", host)
                answer = LookupFailure(host, "error", repr(exc))
            self._record(host, e, answer)
        finally:
            self._finish(e)

    def _record(self, host: str, e: _Entry, outcome: Answer | LookupFailure) -> None:
        """Book a lookup's outcome: the rules of a good answer or of a failure. Blocks only where
        :attr:`_record_may_block` says so (the persisted file, the fleet's store)."""
        if isinstance(outcome, Answer):
            self._on_answer(host, e, outcome)
        else:
            self._on_failure(host, e, outcome)

    @property
    def _record_may_block(self) -> bool:
        return self._store is not None or self._fleet is not None

    # -- asyncio -------------------------------------------------------------------------------
    def peek(self, host: str, port: int) -> list[AddrInfo] | None:
        """The fresh addresses for ``host`` (within the TTL, not failing) or None: the hit path of
        :meth:`resolve` alone, which never waits, never queries and takes no lock, so an event loop
        can call it directly."""
        e = self._entries.get(host)
        if e is not None and self._monotonic() < e.refresh_at and e.failing_since is None:
            infos = e.infos.get(port)
            if infos is not None:
                return list(infos)
        return None

    async def resolve_async(self, host: str, port: int) -> list[AddrInfo]:
        """:meth:`resolve` for an event loop, with the same rules and the same entries; never blocks
        the loop. The lookup is a task (``dns.asyncresolver``) that every task of this loop needing
        the name awaits; cancelling one of them does not cancel it. Raises :class:`DnsLookupError`."""
        infos = self.peek(host, port)
        if infos is not None:
            return infos
        e, start, background, wait_for = self._plan(host)
        if start:
            task = asyncio.get_running_loop().create_task(self._refresh_async(host, e),
                                                          name=f"resilient-dns-{host}")
            e.task = task
            self._tasks.add(task)
            task.add_done_callback(self._task_done)
            if not background:
                await asyncio.wait((task,), timeout=self._wait_bound())
        elif wait_for is not None:
            flight = e.task
            if flight is not None and flight.get_loop() is asyncio.get_running_loop():
                # asyncio.wait neither cancels the task when this waiter is cancelled or times out, nor
                # raises what the task raised: the lookup stays shared.
                await asyncio.wait((flight,), timeout=self._wait_bound())
            else:  # a thread's lookup, or another loop's: wait on its event, off this loop
                await asyncio.to_thread(self._wait, wait_for, self._wait_bound())
        return self._answer_for(host, e, port)

    async def _refresh_async(self, host: str, e: _Entry) -> None:
        """:meth:`_refresh` as a task of the loop (it owns ``e.inflight``). A resolver without
        ``lookup_async`` (a test's fake) is called in a worker thread."""
        try:
            lookup_async = getattr(self._resolver, "lookup_async", None)
            try:
                if lookup_async is not None:
                    answer: Answer | LookupFailure = await lookup_async(host)
                else:
                    answer = await asyncio.to_thread(self._resolver.lookup, host)
            except LookupFailure as failure:
                answer = failure
            except Exception as exc:  # a resolver bug must not leave the name in flight forever
                logger.exception("DNS lookup of %s raised", host)
                answer = LookupFailure(host, "error", repr(exc))
            if self._record_may_block:
                # shielded: a cancelled task (its loop shutting down) still lets the booking finish
                await asyncio.shield(asyncio.to_thread(self._record, host, e, answer))
            else:
                self._record(host, e, answer)
        finally:
            e.task = None
            self._finish(e)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("DNS lookup task %s failed", task.get_name(), exc_info=task.exception())

    def _on_answer(self, host: str, e: _Entry, answer: Answer) -> None:
        now = self._monotonic()
        ttl = max(answer.ttl, self.policy.min_ttl)
        recovered_after: float | None = None
        with self._lock:
            c = self._counters
            c["lookups"] += 1
            c["queries"] += answer.queries
            c["answers"] += 1
            changed = set(answer.addresses) != set(e.addresses)
            if changed:
                if e.addresses:
                    c["answers_changed"] += 1
                e.addresses = answer.addresses
                e.infos = {}
            e.expires = now + ttl
            e.stale_until = e.expires + self.policy.max_stale
            e.refresh_at = now + ttl * (1.0 - self.policy.refresh_ahead)
            e.answered_at = self._wall_clock()
            e.failure_kind = None
            e.next_check = 0.0
            if e.failing_since is not None:
                recovered_after = now - e.failing_since
                e.failing_since = None
                c["recoveries"] += 1
            e.persistable = answer.source == "dns"
            persist = self._store is not None and e.persistable and save_due(changed, e.answered_at, e.saved_at)
            if persist:
                e.saved_at = e.answered_at
            if host in self._entries:
                self._index[host] = True  # refresh recency (and enforce the bound)
        if recovered_after is not None:
            logger.warning("DNS for %s answers again after %.1f s (%s); now %s", host,
                           recovered_after, "new addresses" if changed else "same addresses",
                           ", ".join(a[1] for a in answer.addresses))
            self._emit(DNS_RECOVERED, host, {"after_seconds": round(recovered_after, 3), "changed": changed,
                                             "addresses": [a[1] for a in answer.addresses]})
        elif changed and e.answered_at and logger.isEnabledFor(logging.DEBUG):
            logger.debug("DNS %s -> %s", host, ", ".join(a[1] for a in answer.addresses))
        if persist:
            self._save()
        if self._fleet is not None and answer.source == "dns":
            self._fleet.publish(host, tuple(a[1] for a in answer.addresses), now)

    def _on_failure(self, host: str, e: _Entry, failure: LookupFailure) -> None:
        now = self._monotonic()
        started = False
        with self._lock:
            c = self._counters
            c["lookups"] += 1
            c["queries"] += failure.queries
            c["failures"] += 1
            self._failures_by_kind[failure.kind] = self._failures_by_kind.get(failure.kind, 0) + 1
            e.failure_kind = failure.kind
            e.next_check = now + self.policy.recheck_interval * (1.0 + 0.25 * self._random())
            e.refresh_at = e.next_check
            has_good = bool(e.addresses) and now < e.stale_until
            if has_good and e.failing_since is None:
                e.failing_since = now
                c["stale_episodes"] += 1
                started = True
        if not has_good and self._fleet is not None:
            has_good = started = self._from_fleet(host, e, now)
        if started:
            logger.warning("DNS for %s failed (%s); serving last-known-good %s until it "
                           "answers again (at most %.0f s more)", host, failure.kind,
                           ", ".join(a[1] for a in e.addresses), max(0.0, e.stale_until - now))
            self._emit(DNS_STALE, host, {"kind": failure.kind, "addresses": [a[1] for a in e.addresses]})
        elif not has_good:
            self._emit(DNS_FAILURE, host, {"kind": failure.kind, "error": str(failure)})

    def _from_fleet(self, host: str, e: _Entry, now: float) -> bool:
        """A name with no good answer of ours: the fleet's last good one, served as stale (it is
        already past its TTL, so every re-check still asks DNS; only a non-empty answer replaces it)."""
        assert self._fleet is not None
        found = self._fleet.lookup(host)
        if found is None:
            return False
        ips, age = found
        addresses = tuple((socket.AF_INET6 if ipaddress.ip_address(ip).version == 6 else socket.AF_INET, ip)
                          for ip in ips)
        with self._lock:
            if e.addresses and now < e.stale_until:  # an answer of our own arrived meanwhile
                return False
            e.addresses = addresses
            e.infos = {}
            e.expires = now
            e.stale_until = now + max(0.0, self.policy.max_stale - age)
            e.answered_at = self._wall_clock() - age
            e.persistable = False
            e.failing_since = now
            self._counters["fleet_loads"] += 1
            self._counters["stale_episodes"] += 1
        return True

    def _expire_stale(self, e: _Entry) -> None:
        """Called under the lock when the last good answer is older than ``max_stale``: forget it."""
        self._counters["stale_expired"] += 1
        e.addresses = ()
        e.infos = {}
        e.failing_since = None
        e.persistable = False
        if e.failure_kind is None:
            e.failure_kind = "timeout"

    def report_failure(self, host: str, ip: str) -> None:
        """A connection to ``ip`` for ``host`` was refused or timed out: try the others first next time."""
        with self._lock:
            self._counters["connect_failures"] += 1
            e = self._entries.get(host)
            if e is None or len(e.addresses) < 2:
                return
            bad = tuple(a for a in e.addresses if a[1] == ip)
            if not bad or e.addresses[-len(bad):] == bad:
                return
            e.addresses = tuple(a for a in e.addresses if a[1] != ip) + bad
            e.infos = {}

    def _emit(self, kind: str, host: str, detail: dict[str, Any]) -> None:
        if self._emitter is not None:
            self._emitter.emit(Event(kind, detail={"host": host, **detail}))

    # -- persistence (what the file says and how far it is trusted: persist.py) --------------------
    def _snapshot(self) -> dict[str, StoredName]:
        with self._lock:
            now = self._monotonic()
            wall = self._wall_clock()
            return {host: stored(e.addresses, e.answered_at, e.expires, now, wall)
                    for host, e in self._entries.items()
                    if e.persistable and e.addresses and now < e.stale_until}

    def _save(self) -> None:
        assert self._store is not None
        ok = self._store.save(self._snapshot())
        with self._lock:
            self._counters["persist_writes" if ok else "persist_errors"] += 1

    def _load(self) -> None:
        assert self._store is not None
        loaded = self._store.load()
        if loaded is None:
            with self._lock:
                self._counters["persist_errors"] += int(self._store.failed)
            return
        restored = restore(loaded, self._monotonic(), self._wall_clock(), self.policy.max_stale)
        count = 0
        with self._lock:
            for host, item in restored.items():
                if host in self._entries:
                    continue
                e = _Entry(host)
                e.addresses = item.addresses
                e.expires = item.expires  # already expired: the first use looks the name up again
                e.stale_until = item.stale_until
                e.answered_at = e.saved_at = item.answered_at
                e.persistable = True
                self._entries[host] = e
                self._index[host] = True
                count += 1
            self._counters["persisted_loads"] += count
        if count:
            logger.debug("loaded last-known-good DNS answers for %d name(s) from %s",
                        count, self.policy.persist_path)

    # -- introspection, life cycle -------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """JSON-serializable counters (cumulative) and the current state of the cache."""
        now = self._monotonic()
        with self._lock:
            data: dict[str, Any] = dict(self._counters)
            data["failures_by_kind"] = dict(self._failures_by_kind)
            data["names_cached"] = sum(1 for e in self._entries.values() if e.addresses)
            data["names_stale"] = sorted(h for h, e in self._entries.items()
                                         if e.failing_since is not None and e.addresses)
            data["oldest_stale_seconds"] = round(max(
                (now - e.failing_since for e in self._entries.values() if e.failing_since is not None),
                default=0.0), 3)
        return data

    def addresses(self, host: str) -> list[str]:
        """The IPs currently known for ``host`` (no lookup), for diagnostics and tests."""
        e = self._entries.get(host)
        return [ip for _, ip in e.addresses] if e is not None else []

    def _after_fork(self) -> None:
        """In a forked child: fresh locks, no lookups in flight (their threads did not survive)."""
        self._lock = threading.Lock()
        for e in list(self._entries.values()):
            e.inflight = None
            e.task = None
        self._tasks = set()
        if self._store is not None:
            self._store._after_fork()

    def close(self) -> None:
        """Write the answers one last time (when persisting). Safe to call twice. Call it when the
        cache's owner goes away (a Session closing, a process shutting down): a name whose answer did
        not change is otherwise written at most once a minute, so the file may lag by that much. The
        cache still answers afterwards."""
        if self._closed:
            return
        self._closed = True
        if self._store is not None:
            self._save()

    def __enter__(self) -> DnsCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"DnsCache(names={len(self._entries)}, nameservers={self.policy.nameservers})"


def _infos(addresses: tuple[Address, ...], port: int) -> list[AddrInfo]:
    out: list[AddrInfo] = []
    for family, ip in addresses:
        sockaddr: tuple[str, int] | tuple[str, int, int, int]
        sockaddr = (ip, port, 0, 0) if family == socket.AF_INET6 else (ip, port)
        out.append((family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr))
    return out


__all__ = ["DnsCache", "DnsLookupError"]
