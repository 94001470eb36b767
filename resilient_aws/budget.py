"""Token-bucket retry budget (Finagle's RetryBudget, in tokens of one retry).

Why a budget and not only a retry count: a per-call limit of 3 attempts still triples the load on
a failing service, from every client at once — that is how the 2025-10-20 storms grew. A budget
bounds retries to a fraction of *traffic*: each first attempt deposits ``ratio`` tokens, each retry
withdraws one, and both expire after ``window`` seconds. A reserve of ``min_per_second * window``
tokens lets a quiet client retry at all. So over any window, retries <= ratio * first attempts +
reserve, whatever the thread count.

One budget is shared per endpoint (service, region, URL) by all clients of a session. Thread-safe; the lock is
held only for a few integer updates.

With shared state (:meth:`attach`), the reserve is the fleet's: the ratio part stays per process (it
adds up across a fleet by itself), and a retry beyond it takes one token of the fleet's floor from the
store, with the lock released while it asks. While the store is unreachable the floor is the smaller
local ``fallback_min_per_second``.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from . import _fork
from .policy import BudgetPolicy
from .window import RollingCounts

if TYPE_CHECKING:  # pragma: no cover
    from .fleet.shared import EndpointLink

DEPOSITS = 0
WITHDRAWALS = 1
FROM_RESERVE = 2   # withdrawals paid by the floor, not by the ratio (counted only with a fleet)
_EPSILON = 1e-9  # 0.1 * 30 is 3.0000000000000004 in binary floating point


class RetryBudget:
    __slots__ = ("__weakref__", "_counts", "_lock", "enabled", "fallback_reserve", "fleet", "policy", "ratio",
                 "reserve")

    def __init__(self, policy: BudgetPolicy, *, lock: threading.Lock | None = None,
                 now: float | None = None) -> None:
        self.policy = policy
        self.enabled = policy.enabled
        self.ratio = policy.ratio
        self.reserve = policy.min_per_second * policy.window
        self.fleet: EndpointLink | None = None
        self.fallback_reserve = self.reserve
        self._counts = RollingCounts(policy.window, 3, time.monotonic() if now is None else now)
        if lock is None:  # an owner that passes its lock also re-creates it after fork
            lock = threading.Lock()
            _fork.register(self)
        self._lock = lock

    def deposit(self, now: float) -> None:
        """A first attempt was made."""
        with self._lock:
            self._counts.add(now, DEPOSITS)

    def attach(self, fleet: EndpointLink, fallback_min_per_second: float) -> None:
        """Share the floor with the fleet; ``fallback_min_per_second`` is the floor while it is unreachable."""
        self.fallback_reserve = min(self.reserve, fallback_min_per_second * self.policy.window)
        self.fleet = fleet

    def try_withdraw(self, now: float) -> bool:
        """Take one retry token; False means the retry must not happen."""
        if not self.enabled:
            return True
        fleet = self.fleet
        with self._lock:
            counts = self._counts
            deposits, withdrawals, from_reserve = counts.totals(now)
            if fleet is None:
                if withdrawals + 1 <= self.ratio * deposits + self.reserve + _EPSILON:
                    counts.add(now, WITHDRAWALS)
                    return True
                return False
            if withdrawals - from_reserve + 1 <= self.ratio * deposits + _EPSILON:
                counts.add(now, WITHDRAWALS)  # this process's own traffic pays for it
                return True
            if not fleet.available:
                return self._take_fallback(now, from_reserve)
        granted = fleet.reserve(now)  # the fleet's floor, asked with no lock held
        with self._lock:
            if granted is None:  # the store went away while we asked
                return self._take_fallback(now, self._counts.totals(now)[FROM_RESERVE])
            if granted:
                self._count_from_reserve(now)
            return granted

    def _take_fallback(self, now: float, taken: int) -> bool:
        """Under the lock: one token of the local floor used while the fleet's is out of reach."""
        if taken + 1 <= self.fallback_reserve + _EPSILON:
            self._count_from_reserve(now)
            return True
        return False

    def _count_from_reserve(self, now: float) -> None:
        self._counts.add(now, WITHDRAWALS)
        self._counts.add(now, FROM_RESERVE)

    def available(self, now: float) -> float:
        """Retry tokens left now (for stats): with a fleet, only this process's ratio tokens."""
        with self._lock:
            deposits, withdrawals, from_reserve = self._counts.totals(now)
            if self.fleet is not None:
                return max(0.0, self.ratio * deposits - (withdrawals - from_reserve))
            return max(0.0, self.ratio * deposits + self.reserve - withdrawals)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
