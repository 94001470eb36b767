"""A sliding time window of counters, as a ring of buckets.

Both the retry budget (deposits, withdrawals) and the circuit breaker (successes, failures) need
"how many in the last N seconds". A ring of ``buckets`` fixed-width buckets answers that in O(1)
per event with no allocation, unlike a deque of timestamps. Counts leave the window whole buckets
at a time, so an event is counted for between ``window - width`` and ``window`` seconds.

Not thread-safe on its own: callers hold their own lock (the budget's or the breaker's), which lets
one lock cover several windows on the hot path.
"""

from __future__ import annotations


class RollingCounts:
    __slots__ = ("_buckets", "_edge", "_index", "_n", "_width", "totals")

    def __init__(self, window: float, fields: int, now: float, buckets: int = 10) -> None:
        self._n = buckets
        self._width = window / buckets
        self._buckets = [[0] * fields for _ in range(buckets)]
        self.totals = [0] * fields
        self._index = 0
        self._edge = now + self._width  # end of the current bucket

    def roll(self, now: float) -> None:
        """Expire the buckets that ended before ``now``."""
        if now < self._edge:
            return
        steps = int((now - self._edge) // self._width) + 1
        self._edge += steps * self._width
        totals = self.totals
        if steps >= self._n:
            for bucket in self._buckets:
                for i in range(len(bucket)):
                    bucket[i] = 0
            for i in range(len(totals)):
                totals[i] = 0
            return
        for _ in range(steps):
            self._index = (self._index + 1) % self._n
            bucket = self._buckets[self._index]
            for i, value in enumerate(bucket):
                if value:
                    totals[i] -= value
                    bucket[i] = 0

    def add(self, now: float, field: int, amount: int = 1) -> None:
        if now >= self._edge:
            self.roll(now)
        self._buckets[self._index][field] += amount
        self.totals[field] += amount

    def clear(self) -> None:
        for bucket in self._buckets:
            for i in range(len(bucket)):
                bucket[i] = 0
        for i in range(len(self.totals)):
            self.totals[i] = 0
