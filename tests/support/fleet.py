"""Helpers for the fleet tests: simulated processes over one in-memory store, a store that can be
taken down, injected chance, and bounded waits for the tests that run against a real redis-server.

Why simulated processes: a "process" of the fleet is one :class:`SharedState` with its own owner id,
breaker and budget; N of them over one :class:`MemoryStore` on one hand-moved clock are N processes
whose every interleaving the test chooses. ``SharedState.submit`` runs operations at once, so an
opening, a claim or a probe result reaches the store before the call that caused it returns. What
the store publishes is queued per process (each its own inbox, as pub/sub delivers to every
subscriber) and delivered either at once or when the test says, so a test can also play a message
that arrives late.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from resilient_aws.breaker import ADMIT, CircuitBreaker
from resilient_aws.budget import RetryBudget
from resilient_aws.fleet.shared import EndpointLink, SharedState
from resilient_aws.fleet.store import MemoryStore, Unavailable
from resilient_aws.policy import BreakerPolicy, BudgetPolicy
from resilient_aws.timing import Timing
from support.dns import FakeClock

KEY = "dynamodb|us-east-1|http://127.0.0.1:9"
#: Short, round numbers: open for 1 s (the probe lease is the open time), opened by 4 failures.
BREAKER = BreakerPolicy(min_calls=4, failure_ratio=0.5, window=10.0, open_time=1.0, max_open_time=8.0,
                        open_jitter=0.2)
BUDGET = BudgetPolicy(ratio=0.1, min_per_second=1.0, window=10.0)


def midpoint(low: float, high: float) -> float:
    """A breaker's ``uniform`` that always draws the middle: a jittered duration is known exactly."""
    return (low + high) / 2.0


class Draws:
    """A ``uniform`` that records every (low, high) it was asked for and answers ``pick(low, high)``."""

    def __init__(self, pick: Callable[[float, float], float] = midpoint) -> None:
        self.asked: list[tuple[float, float]] = []
        self.given: list[float] = []
        self._pick = pick

    def __call__(self, low: float, high: float) -> float:
        value = self._pick(low, high)
        self.asked.append((low, high))
        self.given.append(value)
        return value


class Switchable:
    """Wraps a store: records the name of every operation asked of it (``calls``), and while ``down``
    raises :class:`Unavailable` for every one, as a RedisStore does when Redis cannot be reached."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.calls: list[str] = []
        self.down = False

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.store, name)
        if name.startswith("_") or not callable(attr):
            return attr

        def operation(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            if self.down:
                raise Unavailable(f"{name}: the store is down (test)")
            return attr(*args, **kwargs)

        return operation

    def count(self, *names: str) -> int:
        return sum(1 for c in self.calls if not names or c in names)


class Process:
    """One simulated process of the fleet: its shared state, one endpoint's breaker and budget, and
    the messages published to it and not yet delivered."""

    def __init__(self, fleet: Fleet, breaker: BreakerPolicy, budget: BudgetPolicy,
                 uniform: Callable[[float, float], float]) -> None:
        self.fleet = fleet
        self.inbox: list[str] = []
        self.shared = SharedState(fleet.store, namespace=fleet.namespace, timing=fleet.timing,
                                  fallback_min_per_second=fleet.fallback_min_per_second)
        now = fleet.clock()
        self.breaker = CircuitBreaker(breaker, name=f"p{len(fleet.processes)}", now=now, uniform=uniform)
        self.budget = RetryBudget(budget, now=now)
        self.link: EndpointLink = self.shared.endpoint(fleet.key, self.breaker, self.budget)

    @property
    def owner(self) -> str:
        return self.shared.owner

    def deliver(self, count: int | None = None) -> int:
        """Apply the oldest ``count`` queued messages (all by default); how many were applied."""
        batch = self.inbox[:count] if count is not None else list(self.inbox)
        del self.inbox[:len(batch)]
        for text in batch:
            self.shared.deliver(text)
        return len(batch)

    def fail(self, times: int = 1) -> None:
        """``times`` attempts admitted while closed failed."""
        for _ in range(times):
            self.breaker.on_failure(self.fleet.clock(), ADMIT)


class Fleet:
    """``n`` processes over one MemoryStore (wrapped in :class:`Switchable`) on one FakeClock.

    ``immediate``: published messages are delivered to every process as they are published (like a
    fast pub/sub); else they wait in each process's inbox until ``deliver`` is called."""

    def __init__(self, n: int = 3, *, breaker: BreakerPolicy = BREAKER, budget: BudgetPolicy = BUDGET,
                 uniform: Callable[[float, float], float] = midpoint, random: Callable[[], float] = lambda: 0.0,
                 immediate: bool = True, key: str = KEY, namespace: str = "fleet-test",
                 fallback_min_per_second: float = 0.1, clock: FakeClock | None = None) -> None:
        self.clock = clock or FakeClock()
        self.key = key
        self.namespace = namespace
        self.immediate = immediate
        self.fallback_min_per_second = fallback_min_per_second
        self.timing = Timing(monotonic=self.clock, random=random)
        self.published: list[str] = []
        self.memory = MemoryStore(self.clock, namespace=namespace, publish=self._publish)
        self.store = Switchable(self.memory)
        self.processes: list[Process] = []
        self._policies = (breaker, budget, uniform)
        for _ in range(n):
            self.spawn()

    def spawn(self) -> Process:
        process = Process(self, *self._policies)
        self.processes.append(process)
        return process

    def __getitem__(self, i: int) -> Process:
        return self.processes[i]

    def __iter__(self):
        return iter(self.processes)

    def _publish(self, text: str) -> None:
        self.published.append(text)
        for process in self.processes:
            process.inbox.append(text)
        if self.immediate:
            for process in self.processes:
                process.deliver()

    def deliver(self) -> None:
        for process in self.processes:
            process.deliver()

    def advance(self, seconds: float) -> float:
        self.clock.advance(seconds)
        return self.clock()

    def now(self) -> float:
        return self.clock()


def wait_until(predicate: Callable[[], object], timeout: float = 3.0, interval: float = 0.005) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass (bounded); its last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def in_child(fn: Callable[[], object], timeout: float = 10.0) -> Any:
    """Run ``fn`` in a forked child and return what it returned (JSON-serializable), or raise
    AssertionError. Bounded: a child that has not answered within ``timeout`` seconds is killed. The
    child leaves with ``os._exit`` whatever happens, so it never runs the parent's test machinery."""
    import json
    import os
    import select
    import signal

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        status = 1
        try:
            os.close(read_end)
            try:
                reply = {"ok": fn()}
            except BaseException as exc:
                reply = {"error": repr(exc)}
            os.write(write_end, json.dumps(reply).encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], timeout)
        assert ready, f"the forked child did not answer within {timeout} s"
        chunks = []
        while chunk := os.read(read_end, 65536):
            chunks.append(chunk)
        reply = json.loads(b"".join(chunks).decode())
    finally:
        os.close(read_end)
        deadline = time.monotonic() + timeout
        while os.waitpid(pid, os.WNOHANG) == (0, 0):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                break
            time.sleep(0.005)
    assert "error" not in reply, f"the forked child raised {reply['error']}"
    return reply["ok"]
