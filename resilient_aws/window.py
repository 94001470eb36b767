"""A sliding time window of counters, as a ring of buckets.

Both the retry budget (deposits, withdrawals) and the circuit breaker (successes, failures) need
"how many in the last N seconds". A ring of ``buckets`` fixed-width buckets answers that with no
allocation, unlike a deque of timestamps. Counts leave the window whole buckets at a time, so an
event is counted for between ``window - width`` and ``window`` seconds.

Adding is the hot path (every successful call adds to two windows), so an add is an edge check
and one increment of the current bucket (``cur``); sums are computed only when read, which happens
on the failure path.

Not thread-safe on its own: callers hold their own lock (the endpoint's), which lets one lock cover
several windows on the hot path.
"""

from __future__ import annotations


class RollingCounts:
    __slots__ = ("_buckets", "_index", "_n", "_width", "cur", "edge", "retired")

    def __init__(self, window: float, fields: int, now: float, buckets: int = 10) -> None:
        self._n = buckets
        self._width = window / buckets
        self._buckets = [[0] * fields for _ in range(buckets)]
        self._index = 0
        self.cur = self._buckets[0]       # the bucket that receives adds now
        self.edge = now + self._width     # when ``cur`` ends
        self.retired = [0] * fields       # counts that left the window (running totals: ``cumulative``)

    def roll(self, now: float) -> None:
        """Expire the buckets that ended at or before ``now``; call before touching ``cur``."""
        if now < self.edge:
            return
        steps = int((now - self.edge) // self._width) + 1
        self.edge += steps * self._width
        for _ in range(min(steps, self._n)):
            self._index = (self._index + 1) % self._n
            bucket = self._buckets[self._index]
            for i in range(len(bucket)):
                self.retired[i] += bucket[i]
                bucket[i] = 0
        self.cur = self._buckets[self._index]

    def add(self, now: float, field: int, amount: int = 1) -> None:
        if now >= self.edge:
            self.roll(now)
        self.cur[field] += amount

    def totals(self, now: float) -> list[int]:
        """Sums over the window ending at ``now``."""
        self.roll(now)
        return [sum(column) for column in zip(*self._buckets, strict=True)]

    def cumulative(self, now: float) -> list[int]:
        """Everything ever added (what left the window included), and the window's sums."""
        window = self.totals(now)
        return [r + w for r, w in zip(self.retired, window, strict=True)]

    def clear(self) -> None:
        for bucket in self._buckets:
            for i in range(len(bucket)):
                self.retired[i] += bucket[i]
                bucket[i] = 0
