"""Counters of one resilient client and the ``stats()`` snapshot built from them.

Why apart from the client: the counts are written from three places (the hot path's inlined success
bookkeeping, the retry handler inside botocore's loop, the planner) and read by ``stats()``; keeping
the counters, their lock and the snapshot in one module keeps "what is counted where" in one place.
The hot path does not come here: it increments ``lane.fast_ok`` under the endpoint's lock, and the
snapshot adds those in.
"""

from __future__ import annotations

import threading
from typing import Any

from . import _fork
from .classify import Verdict
from .regions import RegionLane

_COUNTERS = ("slow_calls", "slow_ok", "failed", "attempts", "retries", "retries_denied_by_budget",
             "failovers", "circuit_open_rejections", "deadline_stops", "throttled", "caller_errors", "cancelled")


class CallCounters:
    """Counts of calls that left the hot path, and of every attempt made off it. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(_COUNTERS, 0)
        _fork.register(self)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()

    def count(self, **deltas: int) -> None:
        with self._lock:
            c = self._counts
            for key, value in deltas.items():
                c[key] += value

    def attempt_made(self, lane: RegionLane, *, retry: bool) -> None:
        """One attempt off the hot path (a planner's call, or a retry botocore makes for us)."""
        with self._lock:
            lane.attempts += 1
            self._counts["attempts"] += 1
            if retry:
                self._counts["retries"] += 1

    def cancelled_on_hot_path(self, lane: RegionLane) -> None:
        """An asyncio call cancelled during its first attempt on the hot path: one call, one attempt."""
        with self._lock:
            lane.attempts += 1
            c = self._counts
            c["attempts"] += 1
            c["slow_calls"] += 1
            c["cancelled"] += 1

    def attempt_failed(self, lane: RegionLane, verdict: Verdict) -> None:
        with self._lock:
            lane.failures += 1
            if verdict.throttle:
                self._counts["throttled"] += 1

    def finish(self, *, ok: bool, caller_error: bool, failovers: int = 0, cancelled: bool = False) -> None:
        """A call that left the hot path ended (its attempts were counted as they were made). A cancelled
        call (asyncio's ``CancelledError``, a ``KeyboardInterrupt``) is a call, neither ok nor failed."""
        with self._lock:
            c = self._counts
            c["slow_calls"] += 1
            if ok:
                c["slow_ok"] += 1
            elif cancelled:
                c["cancelled"] += 1
            else:
                c["failed"] += 1
            if caller_error:
                c["caller_errors"] += 1
            c["failovers"] += failovers

    def snapshot(self, service: str, lanes: tuple[RegionLane, ...], now: float, dns: Any) -> dict[str, Any]:
        """A JSON-serializable snapshot. Counts finished calls; a call in flight is not counted yet."""
        fast_ok = 0
        fast_by_lane = []
        for lane in lanes:
            with lane.health.lock:
                fast_by_lane.append(lane.fast_ok)
            fast_ok += fast_by_lane[-1]
        with self._lock:
            c = dict(self._counts)
            lane_counts = [(lane.attempts, lane.failures) for lane in lanes]
        regions = {}
        for lane, fast, (attempts, failures) in zip(lanes, fast_by_lane, lane_counts, strict=True):
            health = lane.health.snapshot(now)
            regions[lane.region] = {
                "attempts": fast + attempts,
                "failed_attempts": failures,
                "breaker": health.pop("state"),
                **health,
                "endpoint_url": lane.health.endpoint_url,
                "client_created": lane.created,
            }
        return {
            "service": service,
            "primary_region": lanes[0].region,
            "calls": fast_ok + c["slow_calls"],
            "succeeded": fast_ok + c["slow_ok"],
            "failed": c["failed"],
            "cancelled": c["cancelled"],
            "attempts": fast_ok + c["attempts"],
            "retries": c["retries"],
            "retries_denied_by_budget": c["retries_denied_by_budget"],
            "failovers": c["failovers"],
            "circuit_open_rejections": c["circuit_open_rejections"],
            "deadline_stops": c["deadline_stops"],
            "throttled_attempts": c["throttled"],
            "caller_errors": c["caller_errors"],
            "regions": regions,
            "dns": dns.stats() if dns is not None else None,
            "shared_state": fleet.shared.stats() if (fleet := lanes[0].health.fleet) is not None else None,
        }
