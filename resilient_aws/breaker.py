"""Circuit breaker for one endpoint (service, region, URL): closed, open, half-open.

Why: when an endpoint is down, every attempt costs the caller a timeout and the endpoint a
connection it cannot serve. The breaker turns a dead endpoint into an immediate local answer (fail
fast, or move the call to another region) and lets exactly one probe at a time find out when it is
back.

- closed: every attempt goes; failures and successes are counted over a sliding window; the breaker
  opens when the window holds at least ``min_calls`` results and the failure share reaches
  ``failure_ratio``.
- open: nothing goes until ``open_until``; the open time is jittered (±``open_jitter``) so a fleet
  of processes does not probe in step, and doubles after each failed probe up to
  ``max_open_time``.
- half-open: exactly one probe in flight, whatever the thread count; ``probes`` successes in a row
  close it, one failure re-opens it.

``state`` is a plain attribute read without a lock on the hot path: a stale read costs at most one
attempt admitted just as the breaker opened, which is then counted as usual. The lock guards only
integer updates, never the network call.

With shared state (``fleet``, an :class:`~resilient_aws.fleet.EndpointLink`), the breaker is one
member of the fleet's: its failures are reported to the fleet's window, its opening opens every
process's, it *follows* what the fleet publishes (:meth:`follow`), and when its open time is up it
probes only if it wins the fleet's probe lease (one probe at a time for the whole fleet; the lease
runs out after ``open_time`` if its holder dies). The open time is then ``open_time`` without
doubling: the lease already bounds the fleet's probes to one per ``open_time``, so doubling would
only delay the recovery. While the store is unreachable, everything here works as without it.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import _fork
from .policy import BreakerPolicy
from .window import RollingCounts

if TYPE_CHECKING:  # pragma: no cover
    from .fleet.shared import EndpointLink
    from .fleet.store import View

logger = logging.getLogger("resilient_aws")

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"

# admit() answers
REJECT = 0
ADMIT = 1
PROBE = 2

SUCCESSES = 0
FAILURES = 1

StateListener = Callable[[str, str, dict[str, Any]], None]
#: A state change to report once the lock is released: (old state, new state, detail).
_Change = tuple[str, str, dict[str, Any]]


class CircuitBreaker:
    __slots__ = ("__weakref__", "_counts", "_lease_until", "_leased", "_lock", "_on_change", "_open_count",
                 "_probe_in_flight", "_probe_successes", "_uniform", "fleet", "name", "open_until", "policy", "state",
                 "transitions")

    def __init__(self, policy: BreakerPolicy, *, name: str = "", now: float,
                 lock: threading.Lock | None = None, on_change: StateListener | None = None,
                 uniform: Callable[[float, float], float] = random.uniform) -> None:
        self.policy = policy
        self.name = name
        self.state = CLOSED
        self.open_until = 0.0
        self.transitions = 0
        self._counts = RollingCounts(policy.window, 2, now)
        self._open_count = 0          # consecutive openings without a close, for the doubling
        self._probe_in_flight = False
        self._probe_successes = 0
        self._on_change = on_change
        self._uniform = uniform
        self.fleet: EndpointLink | None = None
        self._leased = False           # this breaker holds the fleet's probe lease...
        self._lease_until = 0.0        # ...until then (the store gives it to another process after that)
        if lock is None:
            lock = threading.Lock()
            _fork.register(self)
        self._lock = lock

    # -- admission ---------------------------------------------------------------------------
    def admit(self, now: float) -> int:
        """REJECT, ADMIT (closed) or PROBE (the one half-open probe; its result must be reported)."""
        if self.state is CLOSED:
            return ADMIT
        change = None
        with self._lock:
            state = self.state
            if state is CLOSED:
                return ADMIT
            if self._probe_in_flight or (state is OPEN and now < self.open_until):
                return REJECT
            self._probe_in_flight = True
            fleet = self.fleet
            # with a fleet, a probe needs its lease (kept across the probes of one half-open period)
            ask = fleet is not None and (not self._leased or now >= self._lease_until) and fleet.available
            if not ask and state is OPEN:
                change = self._set(HALF_OPEN)
        if ask:
            assert fleet is not None
            return self._claim(fleet, now)  # this thread asks the fleet; others are rejected meanwhile
        if change:
            self._notify(change)
        return PROBE

    def _claim(self, fleet: EndpointLink, now: float) -> int:
        """Probe only with the fleet's lease; the store's answer is awaited with no lock held."""
        answer = fleet.claim()
        change = None
        with self._lock:
            if answer is not None and not answer[0]:  # someone else probes, or the open time is not up
                self._probe_in_flight = False
                self.open_until = now + answer[1].remaining + self._spread()
                if self.state is HALF_OPEN:  # (a released probe): wait like everyone else
                    self.state = OPEN
                return REJECT
            granted = answer is not None
            if self.state is CLOSED:  # closed by a message meanwhile: no probe needed
                self._probe_in_flight = False
                ticket = ADMIT
            else:
                self._leased = granted
                if answer is not None:
                    self._lease_until = now + answer[1].remaining
                if self.state is OPEN:
                    change = self._set(HALF_OPEN)
                ticket = PROBE
        if ticket == ADMIT and granted:
            fleet.released()
        if change:
            self._notify(change)
        return ticket

    def would_admit(self, now: float) -> bool:
        """Would ``admit(now)`` let an attempt through? A look without taking anything, for
        choosing between regions before paying for one (no lock: a stale answer costs one
        ``admit`` that says no)."""
        state = self.state
        if state is CLOSED:
            return True
        if self._probe_in_flight:
            return False
        return state is HALF_OPEN or now >= self.open_until

    def release(self, ticket: int) -> None:
        """An admitted attempt will not be made after all (budget denied, deadline): free the probe."""
        if ticket == PROBE:
            with self._lock:
                self._probe_in_flight = False
                leased, self._leased = self._leased, False
            if leased and self.fleet is not None:
                self.fleet.released()

    # -- results -----------------------------------------------------------------------------
    def on_success(self, now: float, ticket: int) -> None:
        change = None
        tell_fleet = False
        with self._lock:
            if ticket == PROBE:
                self._probe_in_flight = False
                if self.state is HALF_OPEN:
                    self._probe_successes += 1
                    if self._probe_successes >= self.policy.probes:
                        self._counts.clear()
                        self._open_count = 0
                        change = self._set(CLOSED)
                        tell_fleet, self._leased = self._leased, False
            elif self.state is CLOSED:
                self._counts.add(now, SUCCESSES)
        if tell_fleet and self.fleet is not None:
            self.fleet.probe_done(True)
        if change:
            self._notify(change)

    def on_failure(self, now: float, ticket: int) -> None:
        if not self.policy.enabled:
            return
        change = None
        fleet = self.fleet
        tell: str | None = None
        with self._lock:
            if ticket == PROBE:
                self._probe_in_flight = False
                if self.state is HALF_OPEN:
                    change = self._open(now, reason="probe failed")
                    if self._leased:
                        tell = "probe failed"
                self._leased = False
            elif self.state is CLOSED:
                counts = self._counts
                counts.add(now, FAILURES)
                successes, failures = counts.totals(now)
                total = successes + failures
                if total >= self.policy.min_calls and failures >= self.policy.failure_ratio * total:
                    change = self._open(now, reason=f"{failures}/{total} attempts failed")
                    tell = "opened"
                elif total < self.policy.min_calls:
                    tell = "failed"  # too little history here to decide: the fleet's window counts it
            # results of attempts admitted before the breaker opened are ignored: they say nothing new
        if fleet is not None and tell is not None:
            if tell == "failed":
                fleet.failed()
            elif tell == "opened":
                fleet.opened()
            else:
                fleet.probe_done(False)
        if change:
            self._notify(change)

    def on_neutral(self, ticket: int) -> None:
        """The endpoint answered, but with something that is not a health signal (throttling). A
        fleet lease is kept (it runs out after ``open_time``): giving it back would let the next
        process probe a throttling endpoint at once, and the next, and so on."""
        if ticket == PROBE:
            with self._lock:
                self._probe_in_flight = False

    # -- the fleet -----------------------------------------------------------------------------
    def follow(self, view: View, now: float, owner: str, *, from_message: bool) -> None:
        """Do what the fleet says. ``open``/``probing``: stay open until the fleet's time is up (plus
        a jitter of up to ``open_jitter * open_time``, so that the process that claims the lease has
        published it before most others look); ``closed`` from a message: a probe succeeded
        elsewhere. A reply's ``closed`` only means "the fleet has not opened": it never closes."""
        change = None
        with self._lock:
            if view.state == CLOSED:
                if from_message and self.state is not CLOSED and not self._leased:
                    self._counts.clear()
                    self._open_count = 0
                    change = self._set(CLOSED)
                    change[2]["reason"] = "a probe succeeded elsewhere in the fleet"
            elif view.holder != owner and not (self.state is HALF_OPEN and self._probe_in_flight):
                until = now + view.remaining + self._spread()
                if self.state is CLOSED:
                    self.state = OPEN
                    self.transitions += 1
                    self._probe_successes = 0
                    change = (CLOSED, OPEN, {"reason": "opened by the fleet", "open_for": round(until - now, 3)})
                elif self.state is HALF_OPEN:  # between probes; our lease, if any, is someone else's now
                    self.state = OPEN
                    self._leased = False
                self.open_until = until
        if change:
            self._notify(change)

    def success_total(self, now: float) -> tuple[int, int]:
        """Successes counted while closed: ever, and in the window (for the fleet's window)."""
        with self._lock:
            in_window = self._counts.totals(now)[SUCCESSES]
            return self._counts.retired[SUCCESSES] + in_window, in_window

    def _spread(self) -> float:
        return self._uniform(0.0, self.policy.open_jitter * self.policy.open_time)

    # -- internals ---------------------------------------------------------------------------
    def _open(self, now: float, reason: str) -> _Change:
        """Open for ``base`` (``open_time`` doubled per failed probe, capped) jittered within the cap.

        The jitter window is ``base * [1 - open_jitter, 1 + open_jitter]`` with its upper end cut at
        ``max_open_time``: once the doubling reaches the cap, openings are spread uniformly over
        ``[max_open_time * (1 - open_jitter), max_open_time]``. Clamping an already jittered value
        instead would put half the fleet exactly on the cap, probing in step. The draw is clamped
        into its window too (``random.uniform`` may round past ``high``; an injected draw may be
        anything), so ``open_time * (1 - open_jitter) <= duration <= max_open_time`` always, and the
        floor is positive because the policy requires ``open_time >= 0.001`` and ``open_jitter <= 0.9``.
        """
        p = self.policy
        cap = p.max_open_time
        base = min(cap, p.open_time * (2 ** min(self._open_count, 30)))
        low = 1.0 - p.open_jitter
        high = min(1.0 + p.open_jitter, cap / base)   # cap / base >= 1: base never exceeds the cap
        factor = min(max(self._uniform(low, high), low), high)
        duration = min(cap, base * factor)              # base * (cap / base) may round one ulp past the cap
        self._open_count += 1
        self.open_until = now + duration
        self._probe_successes = 0
        old = self.state
        self.state = OPEN
        self.transitions += 1
        return (old, OPEN, {"reason": reason, "open_for": round(duration, 3)})

    def _set(self, new: str) -> _Change:
        old = self.state
        self.state = new
        self.transitions += 1
        if new is HALF_OPEN:
            self._probe_successes = 0
        return (old, new, {})

    def _notify(self, change: _Change) -> None:
        old, new, detail = change
        # WARNING once per episode (it opened; it closed again), DEBUG for the steps in between
        if new is OPEN and old is CLOSED:
            logger.warning("circuit %s opened (%s; open for %.2fs)", self.name, detail.get("reason"),
                           detail.get("open_for", 0.0))
        elif new is OPEN:
            logger.debug("circuit %s %s -> open (%s; open for %.2fs)",
                         self.name, old, detail.get("reason"), detail.get("open_for", 0.0))
        elif new is CLOSED:
            logger.warning("circuit %s closed again", self.name)
        else:
            logger.debug("circuit %s half-open, probing", self.name)
        if self._on_change is not None:
            self._on_change(old, new, detail)

    def snapshot(self, now: float) -> dict[str, Any]:
        with self._lock:
            successes, failures = self._counts.totals(now)
            return {"state": self.state, "window_successes": successes, "window_failures": failures,
                    "transitions": self.transitions}

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._probe_in_flight = False  # the probing thread does not exist in the child
        self._leased = False
