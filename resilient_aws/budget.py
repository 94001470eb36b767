"""Token-bucket retry budget (Finagle's RetryBudget, in tokens of one retry).

Why a budget and not only a retry count: a per-call limit of 3 attempts still triples the load on
a failing service, from every client at once — that is how the 2025-10-20 storms grew. A budget
bounds retries to a fraction of *traffic*: each first attempt deposits ``ratio`` tokens, each retry
withdraws one, and both expire after ``window`` seconds. A reserve of ``min_per_second * window``
tokens lets a quiet client retry at all. So over any window, retries <= ratio * first attempts +
reserve, whatever the thread count.

One budget is shared per endpoint (service, region, URL) by all clients of a session. Thread-safe; the lock is
held only for a few integer updates.
"""

from __future__ import annotations

import threading
import time

from . import _fork
from .policy import BudgetPolicy
from .window import RollingCounts

DEPOSITS = 0
WITHDRAWALS = 1
_EPSILON = 1e-9  # 0.1 * 30 is 3.0000000000000004 in binary floating point


class RetryBudget:
    __slots__ = ("__weakref__", "_counts", "_lock", "enabled", "ratio", "reserve")

    def __init__(self, policy: BudgetPolicy, *, lock: threading.Lock | None = None,
                 now: float | None = None) -> None:
        self.enabled = policy.enabled
        self.ratio = policy.ratio
        self.reserve = policy.min_per_second * policy.window
        self._counts = RollingCounts(policy.window, 2, time.monotonic() if now is None else now)
        if lock is None:  # an owner that passes its lock also re-creates it after fork
            lock = threading.Lock()
            _fork.register(self)
        self._lock = lock

    def deposit(self, now: float) -> None:
        """A first attempt was made."""
        with self._lock:
            self._counts.add(now, DEPOSITS)

    def try_withdraw(self, now: float) -> bool:
        """Take one retry token; False means the retry must not happen."""
        if not self.enabled:
            return True
        with self._lock:
            counts = self._counts
            deposits, withdrawals = counts.totals(now)
            if withdrawals + 1 <= self.ratio * deposits + self.reserve + _EPSILON:
                counts.add(now, WITHDRAWALS)
                return True
            return False

    def available(self, now: float) -> float:
        """Retry tokens left now (for stats)."""
        with self._lock:
            deposits, withdrawals = self._counts.totals(now)
            return max(0.0, self.ratio * deposits + self.reserve - withdrawals)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
