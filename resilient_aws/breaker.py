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
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from typing import Any

from . import _fork
from .policy import BreakerPolicy
from .window import RollingCounts

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
    __slots__ = ("__weakref__", "_counts", "_lock", "_on_change", "_open_count", "_probe_in_flight",
                 "_probe_successes", "_uniform", "name", "open_until", "policy", "state", "transitions")

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
            if self._probe_in_flight:
                return REJECT
            if state is OPEN:
                if now < self.open_until:
                    return REJECT
                change = self._set(HALF_OPEN)
            self._probe_in_flight = True
        if change:
            self._notify(change)
        return PROBE

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

    # -- results -----------------------------------------------------------------------------
    def on_success(self, now: float, ticket: int) -> None:
        change = None
        with self._lock:
            if ticket == PROBE:
                self._probe_in_flight = False
                if self.state is HALF_OPEN:
                    self._probe_successes += 1
                    if self._probe_successes >= self.policy.probes:
                        self._counts.clear()
                        self._open_count = 0
                        change = self._set(CLOSED)
            elif self.state is CLOSED:
                self._counts.add(now, SUCCESSES)
        if change:
            self._notify(change)

    def on_failure(self, now: float, ticket: int) -> None:
        if not self.policy.enabled:
            return
        change = None
        with self._lock:
            if ticket == PROBE:
                self._probe_in_flight = False
                if self.state is HALF_OPEN:
                    change = self._open(now, reason="probe failed")
            elif self.state is CLOSED:
                counts = self._counts
                counts.add(now, FAILURES)
                successes, failures = counts.totals(now)
                total = successes + failures
                if total >= self.policy.min_calls and failures >= self.policy.failure_ratio * total:
                    change = self._open(now, reason=f"{failures}/{total} attempts failed")
            # results of attempts admitted before the breaker opened are ignored: they say nothing new
        if change:
            self._notify(change)

    def on_neutral(self, ticket: int) -> None:
        """The endpoint answered, but with something that is not a health signal (throttling)."""
        self.release(ticket)

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
