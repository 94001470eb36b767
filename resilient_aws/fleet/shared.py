"""Shared state: what one process learns reaches the fleet, and Redis is never a new way to fail.

:class:`SharedState` ties a process's breakers, retry budgets and DNS cache to a
:class:`~resilient_aws.fleet.store.Store`. It decides *when* to talk to the store; the store decides
*what* the fleet knows. Three rules shape it:

- **Never on the success path.** A successful call touches no shared state at all. The store hears of
  failures, breaker openings, probe claims and results, reserve withdrawals and new DNS answers: all
  failure-path or once-per-minute events. It tells the process of changes by publishing them
  (pub/sub), so no process polls, and a process that starts reads nothing until it has a failure.
- **Flat as the fleet grows.** Failures are reported only by a process whose own window holds fewer
  than ``min_calls`` results (one with more decides on its own, and its opening opens the fleet), one
  report in flight at a time, paced by the store's count of reports this second (``REPORT_RATE``); an
  empty floor is published once, so the fleet waits for it without asking.
- **Redis down is local, not an outage.** Every call to the store goes through :meth:`SharedState.call`:
  one attempt bounded by ``timeout``; on any error the process marks the store down (one WARNING),
  makes no further call until a background reconnect succeeds (one WARNING), and meanwhile each
  mechanism uses its local rules (the breaker probes on its own, the budget's floor shrinks to
  ``fallback_min_per_second``, the DNS cache keeps its own answers).
- **A shared store is input.** Every reply and message is validated (``store.py``); what fails is
  ignored with a WARNING (at most one a minute per kind), never acted on.

Why the retry budget shares only its floor: the ratio part (``ratio`` x first attempts) adds up, so
each process enforcing it on its own traffic keeps the fleet within ``ratio`` x the fleet's traffic
with no shared counting at all, and no process can spend tokens another process's traffic earned.
The floor (``min_per_second``) is what multiplies with the number of processes, so that part is one
token bucket in the store, taken one token at a time, and only when a process's own ratio tokens are
spent.

This base class runs every store operation in the caller's thread (:meth:`submit` calls at once),
which is what unit tests and the fleet simulation need; :class:`~resilient_aws.fleet.redis_state.RedisState`
moves them to a background thread.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from .. import _fork
from ..errors import ConfigError
from ..timing import Timing, coerce_timing
from .store import REPORT_RATE, Invalid, Store, Unavailable, View, dns_from, message_from

if TYPE_CHECKING:  # pragma: no cover
    from ..breaker import CircuitBreaker
    from ..budget import RetryBudget
    from ..policy import DnsPolicy

logger = logging.getLogger("resilient_aws.fleet")

T = TypeVar("T")
#: A kind of warning (invalid data, a failing operation) is logged at most this often.
_WARN_EVERY = 60.0


def new_owner() -> str:
    """A process's name in the store: host, pid and a random part (a pid is reused; a fork is new)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"


class SharedState:
    """A process's link to the fleet's shared store (see the module docstring)."""

    def __init__(self, store: Store, *, namespace: str = "resilient_aws", timeout: float = 0.05,
                 fallback_min_per_second: float = 0.1, timing: Timing | None = None) -> None:
        check_settings(namespace, timeout, fallback_min_per_second)
        self.store = store
        self.namespace = namespace
        self.timeout = float(timeout)
        self.fallback_min_per_second = float(fallback_min_per_second)
        self.timing = coerce_timing(timing)
        self.owner = new_owner()
        self.up = True
        self._lock = threading.Lock()
        self._links: dict[str, weakref.WeakSet[EndpointLink]] = {}
        self._warned: dict[str, float] = {}
        self.counters = dict.fromkeys(("calls", "unavailable", "invalid", "messages", "outages", "recoveries"), 0)
        _fork.register(self)

    # -- how operations run (RedisState overrides submit) ---------------------------------------
    def submit(self, op: Callable[[], object]) -> None:
        """Run ``op`` (which talks to the store through :meth:`call`) soon, off the caller's path."""
        op()

    def call(self, fn: Callable[[], T]) -> T | None:
        """One store operation, or None when the store is down or answers nonsense. Never raises."""
        if not self.up:
            return None
        self.counters["calls"] += 1
        try:
            return fn()
        except Unavailable as exc:
            self.mark_down(exc)
        except Invalid as exc:
            self.invalid(exc)
        except Exception as exc:  # a bug here must not fail the caller's AWS call
            self.counters["unavailable"] += 1
            self._warn("error", "shared state operation raised %r; using local state for it", exc)
        return None

    def mark_down(self, exc: BaseException) -> None:
        with self._lock:
            if not self.up:
                return
            self.up = False
            self.counters["outages"] += 1
        self.counters["unavailable"] += 1
        logger.warning("shared state unreachable (%s); this process uses its local breakers, budgets and "
                       "DNS answers until it is back", exc)
        self._on_down()

    def mark_up(self) -> None:
        with self._lock:
            if self.up:
                return
            self.up = True
            self.counters["recoveries"] += 1
        logger.warning("shared state reachable again; sharing resumes")
        self.resync()

    def _on_down(self) -> None:
        """Hook: start reconnecting (RedisState)."""

    def invalid(self, exc: BaseException) -> None:
        self.counters["invalid"] += 1
        self._warn("invalid", "ignored invalid shared state: %s", exc)

    def _warn(self, kind: str, message: str, *args: object) -> None:
        now = self.timing.monotonic()
        if now - self._warned.get(kind, -_WARN_EVERY) >= _WARN_EVERY:
            self._warned[kind] = now
            logger.warning(message, *args)

    # -- what the fleet publishes ---------------------------------------------------------------
    def deliver(self, data: object) -> None:
        """A published message arrived: apply it to every local breaker of that endpoint."""
        try:
            message = message_from(data, self.namespace)
        except Invalid as exc:
            self.invalid(exc)
            return
        self.counters["messages"] += 1
        for link in self._links_of(message.key):
            if message.view is not None:
                link.follow(message.view, from_message=True)
            elif message.kind == "floor":
                link.floor_empty(message.wait)
            else:
                link.pace(message.wait)

    def resync(self) -> None:
        """After (re)connecting: tell the fleet what we know (our open breakers). Nothing is read: what
        changes from now on is published, and a store that restarted empty learns from the processes."""
        for link in self._all_links():
            link.resync()

    def _links_of(self, key: str) -> list[EndpointLink]:
        with self._lock:  # a WeakSet changes size when another thread attaches an endpoint
            links = self._links.get(key)
            return list(links) if links else []

    def _all_links(self) -> list[EndpointLink]:
        with self._lock:
            return [link for links in self._links.values() for link in links]

    # -- what the mechanisms ask for ---------------------------------------------------------------
    def endpoint(self, key: str, breaker: CircuitBreaker, budget: RetryBudget) -> EndpointLink:
        """Attach one endpoint's breaker and budget to the fleet."""
        link = EndpointLink(self, key, breaker, budget)
        with self._lock:
            self._links.setdefault(key, weakref.WeakSet()).add(link)
        breaker.fleet = link
        budget.attach(link, self.fallback_min_per_second)
        return link

    def dns(self, policy: DnsPolicy) -> DnsLink:
        return DnsLink(self, policy)

    def stats(self) -> dict[str, Any]:
        return {"up": self.up, "owner": self.owner, **self.counters}

    def close(self) -> None:
        """Stop background work (RedisState)."""

    def _after_fork(self) -> None:
        self.owner = new_owner()
        self._lock = threading.Lock()


def check_settings(namespace: object, timeout: object, fallback_min_per_second: object) -> None:
    if not isinstance(namespace, str) or not namespace or len(namespace) > 64 or any(
            c in namespace for c in "{}\n\r\t "):
        raise ConfigError("RedisState.namespace",
                          f"must be 1-64 characters without spaces or braces, got {namespace!r}")
    for name, value, high in (("timeout", timeout, 5.0), ("fallback_min_per_second", fallback_min_per_second, 1e6)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= high:
            raise ConfigError(f"RedisState.{name}", f"must be a number in [0, {high}], got {value!r}")
    if timeout == 0:
        raise ConfigError("RedisState.timeout", "must be > 0 (a call to Redis must be bounded)")


class EndpointLink:
    """One endpoint's breaker and budget, as the fleet sees them."""

    __slots__ = ("__weakref__", "_failures", "_lock", "_next_report_at", "_pending", "_reported",
                 "_reserve_wait_until", "breaker", "budget", "key", "shared")

    def __init__(self, shared: SharedState, key: str, breaker: CircuitBreaker, budget: RetryBudget) -> None:
        self.shared = shared
        self.key = key
        self.breaker = breaker
        self.budget = budget
        self._lock = threading.Lock()
        self._failures = 0          # counted locally, not yet reported
        self._pending = False       # a report is queued
        self._next_report_at = 0.0  # pacing: no report before then (failures meanwhile are added up)
        self._reported = breaker.success_total(shared.timing.monotonic())[0]
        self._reserve_wait_until = 0.0

    @property
    def available(self) -> bool:
        return self.shared.up

    # -- breaker -----------------------------------------------------------------------------------
    def failed(self) -> None:
        """The local breaker counted a failure while closed, with too little history to decide alone:
        report it to the fleet's window (coalesced, paced; see the module docstring)."""
        with self._lock:
            self._failures += 1
            if self._pending or self.shared.timing.monotonic() < self._next_report_at:
                return
            self._pending = True
        self.shared.submit(self._report)

    def _report(self) -> None:
        with self._lock:
            failures, self._failures = self._failures, 0
            self._pending = False
        if not failures:
            return
        now = self.shared.timing.monotonic()
        total, in_window = self.breaker.success_total(now)
        successes = max(0, min(total - self._reported, in_window))
        self._reported = total
        p = self.breaker.policy
        reply = self.shared.call(lambda: self.shared.store.report(
            self.key, self.shared.owner, successes, failures, min_calls=p.min_calls,
            failure_ratio=p.failure_ratio, window=p.window, open_time=p.open_time))
        if reply is None:
            return
        view, reports = reply
        if reports > REPORT_RATE / 10:  # a busy second: space this process's reports out
            self._next_report_at = now + reports / REPORT_RATE * (0.5 + self.shared.timing.random())
        self.follow(view, from_message=False)

    def pace(self, spread: float) -> None:
        """The fleet reports fast: send this process's next report at a random time within ``spread``."""
        with self._lock:
            self._next_report_at = max(self._next_report_at,
                                       self.shared.timing.monotonic() + spread * self.shared.timing.random())

    def opened(self) -> None:
        """The local breaker opened on its own window: open the fleet's."""
        open_time = self.breaker.policy.open_time
        self.shared.submit(lambda: self._follow_reply(
            lambda: self.shared.store.open(self.key, self.shared.owner, open_time=open_time)))

    def claim(self) -> tuple[bool, View] | None:
        """Ask for the fleet's probe lease (in the caller's thread, bounded by the timeout)."""
        lease = self.breaker.policy.open_time
        return self.shared.call(lambda: self.shared.store.claim(self.key, self.shared.owner, lease=lease))

    def probe_done(self, ok: bool) -> None:
        open_time = self.breaker.policy.open_time
        self.shared.submit(lambda: self._follow_reply(
            lambda: self.shared.store.probe_done(self.key, self.shared.owner, ok, open_time=open_time)))

    def released(self) -> None:
        self.shared.submit(lambda: self._follow_reply(
            lambda: self.shared.store.release(self.key, self.shared.owner)))

    def _follow_reply(self, fn: Callable[[], View]) -> None:
        view = self.shared.call(fn)
        if view is not None:
            self.follow(view, from_message=False)

    def follow(self, view: View, *, from_message: bool) -> None:
        self.breaker.follow(view, self.shared.timing.monotonic(), self.shared.owner, from_message=from_message)

    def resync(self) -> None:
        if self.shared.up and self.breaker.state != "closed":
            self.opened()  # the store may have forgotten (restarted); the reply tells us what it knows

    # -- budget ------------------------------------------------------------------------------------
    def floor_empty(self, wait: float) -> None:
        """The fleet's floor is empty for ``wait`` seconds (published): do not ask before then."""
        self._defer_reserve(self.shared.timing.monotonic(), wait)

    def _defer_reserve(self, now: float, wait: float) -> None:
        """No floor request before ``wait`` x [1, 2) from ``now`` (jittered, so the fleet does not ask in step);
        never sooner than an earlier deferral said."""
        self._reserve_wait_until = max(self._reserve_wait_until, now + wait * (1.0 + self.shared.timing.random()))

    def reserve(self, now: float) -> bool | None:
        """One token of the fleet's floor: True, False (empty), or None (store unavailable)."""
        if now < self._reserve_wait_until:
            return False
        p = self.budget.policy
        got = self.shared.call(lambda: self.shared.store.reserve(
            self.key, rate=p.min_per_second, capacity=p.min_per_second * p.window))
        if got is None:
            return None
        granted, wait = got
        if not granted:  # never shorter than what the fleet was told (a "floor" message may be here first)
            self._defer_reserve(now, wait)
        return granted


class DnsLink:
    """The fleet's last-known-good DNS answers, for a process's DNS cache."""

    def __init__(self, shared: SharedState, policy: DnsPolicy) -> None:
        self.shared = shared
        self.max_stale = policy.max_stale
        self.max_names = policy.max_names
        #: An unchanged answer is published again at most this often (it keeps the entry young).
        self.republish = min(60.0, policy.max_stale / 2)
        self._published: dict[str, tuple[tuple[str, ...], float]] = {}

    def publish(self, host: str, addresses: tuple[str, ...], now: float) -> None:
        last = self._published.get(host)
        if last is not None and last[0] == addresses and now - last[1] < self.republish:
            return
        if len(self._published) >= self.max_names:
            self._published.clear()
        self._published[host] = (addresses, now)
        store, max_stale = self.shared.store, self.max_stale
        self.shared.submit(lambda: self.shared.call(lambda: store.dns_put(host, addresses, max_stale=max_stale)))

    def lookup(self, host: str) -> tuple[list[str], float] | None:
        """The fleet's last good addresses for ``host`` and their age, or None (in the caller's thread)."""
        raw = self.shared.call(lambda: self.shared.store.dns_get(host))
        if raw is None:
            return None
        try:
            return dns_from(raw, self.shared.namespace, self.max_stale)
        except Invalid as exc:
            self.shared.invalid(exc)
            return None
