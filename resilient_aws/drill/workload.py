"""The drill's load generator: the same offered load through every client, call by call recorded.

Why this shape: to compare clients fairly the *offered* load must be the same for each — N threads per
client, each making GetItem/PutItem calls on a fixed schedule — and what each call did (when it
started, in which phase, how long it took, how it ended) must be recorded by the workload, around the
call, not taken from the client. Missed slots are skipped, not made up: a worker blocked inside a call
lowers the load it offers, as a blocked thread would in production; that is why the report compares
calls served with calls *offered*.

Worker threads are daemon threads: botocore legacy mode sleeps up to 25.6 s inside one call and
cannot be interrupted, so calls still blocked when the drill ends are reported as unfinished
(``Workload.inflight``) instead of holding the drill open.

An asyncio client is a :class:`TaskHost` (``resilient_aws.drill.aio``): an event loop in a process of
its own running ``cfg.threads`` *tasks* of :meth:`Workload.run_task`, the same schedule and records
as a worker thread's, awaited instead of called; the host brings its records into this workload.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from .clients import specs_for, tagged
from .config import KEYS, TABLE, DrillConfig

__all__ = ["Call", "TaskHost", "Workload"]

#: The longest an asyncio worker sleeps before looking at ``Workload.stop`` again.
_TASK_POLL = 0.05


@dataclass
class Call:
    """One call as the workload saw it."""

    phase: int
    start: float      # seconds since the drill started
    latency: float
    ok: bool
    op: str
    error: str | None


@runtime_checkable
class TaskHost(Protocol):
    """An asyncio client as the workload drives it: its own event loop, running the workers as tasks."""

    def start_load(self, workload: Workload, label: str) -> None:
        """Start ``workload.cfg.threads`` tasks of ``workload.run_task(label, worker, client)``, whose
        calls and calls in flight go to ``workload.calls[label]`` and ``workload.inflight``."""

    def set_phase(self, phase: int) -> None:
        """The phase calls starting from now on belong to (before its fault is applied)."""

    def stop_load(self, timeout: float) -> None:
        """Stop the tasks and wait up to ``timeout`` seconds for their calls in flight."""


class Workload:
    """``cfg.threads`` threads per client (tasks for an asyncio client, a :class:`TaskHost`), each
    offering ``cfg.rate`` calls/s on a fixed schedule."""

    def __init__(self, clients: dict[str, Any], cfg: DrillConfig, t0: float, phase_of: Callable[[], int]) -> None:
        self.clients = clients
        self.cfg = cfg
        self.t0 = t0
        self.phase_of = phase_of
        self.specs = specs_for(clients)  # (label, DNS label, title) of the clients, in table order
        self.stop = threading.Event()
        self.calls: dict[str, list[Call]] = {label: [] for label, _, _ in self.specs}
        self.inflight: dict[tuple[str, int], tuple[int, float]] = {}  # (label, worker) -> (phase, start)
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        for label, client in self.clients.items():
            if isinstance(client, TaskHost):
                client.start_load(self, label)
                continue
            for w in range(self.cfg.threads):
                t = threading.Thread(target=self._run, args=(label, w), name=f"drill-{label}-{w}", daemon=True)
                t.start()
                self.threads.append(t)

    def set_phase(self, phase: int) -> None:
        """Tell the asyncio hosts the phase has changed (threads read ``phase_of`` at each call)."""
        for client in self.clients.values():
            if isinstance(client, TaskHost):
                client.set_phase(phase)

    def join(self, timeout: float) -> None:
        """Stop offering load and wait up to ``timeout`` seconds in all for calls in flight."""
        self.stop.set()
        deadline = time.monotonic() + timeout
        for client in self.clients.values():
            if isinstance(client, TaskHost):
                client.stop_load(max(0.0, deadline - time.monotonic()))
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))

    def unfinished(self, end: float) -> dict[str, list[Call]]:
        """Calls still in flight, as failed calls whose latency is their time so far (up to ``end``,
        seconds since the drill started)."""
        out: dict[str, list[Call]] = {label: [] for label in self.calls}
        for (label, _), (phase, start) in list(self.inflight.items()):
            out[label].append(Call(phase, start, max(0.0, end - start), False, "?", "Unfinished"))
        return out

    def _run(self, label: str, worker: int) -> None:
        rng = random.Random(f"{self.cfg.seed}-{label}-{worker}")
        client = self.clients[label]
        interval = 1.0 / self.cfg.rate
        next_at = time.monotonic() + rng.random() * interval
        n = 0
        while not self.stop.is_set():
            now = time.monotonic()
            if now < next_at:
                self.stop.wait(next_at - now)
                continue
            next_at = _next_slot(next_at, interval, now)
            n += 1
            phase, op, method, kwargs = self._next_call(label, worker, n, rng)
            start = time.monotonic()
            self.inflight[(label, worker)] = (phase, start - self.t0)
            error = None
            try:
                with tagged(label, phase):
                    getattr(client, method)(**kwargs)
            except Exception as e:
                error = type(e).__name__
            finally:
                self.inflight.pop((label, worker), None)
            self._record(label, phase, op, start, error)

    async def run_task(self, label: str, worker: int, client: Any) -> None:
        """:meth:`_run` as an asyncio task: worker ``worker`` of ``label`` awaiting ``client``'s calls.
        A call still awaited when the task is cancelled stays in ``inflight`` (reported unfinished)."""
        rng = random.Random(f"{self.cfg.seed}-{label}-{worker}")
        interval = 1.0 / self.cfg.rate
        next_at = time.monotonic() + rng.random() * interval
        n = 0
        while not self.stop.is_set():
            now = time.monotonic()
            if now < next_at:
                await asyncio.sleep(min(next_at - now, _TASK_POLL))
                continue
            next_at = _next_slot(next_at, interval, now)
            n += 1
            phase, op, method, kwargs = self._next_call(label, worker, n, rng)
            start = time.monotonic()
            self.inflight[(label, worker)] = (phase, start - self.t0)
            error = None
            try:
                with tagged(label, phase):
                    await getattr(client, method)(**kwargs)
            except Exception as e:
                error = type(e).__name__
            self.inflight.pop((label, worker), None)  # not on cancellation: the call did not finish
            self._record(label, phase, op, start, error)

    def _next_call(self, label: str, worker: int, n: int, rng: random.Random
                   ) -> tuple[int, str, str, dict[str, Any]]:
        """The ``n``-th call of a worker: its phase, operation, method name and arguments."""
        phase = self.phase_of()
        if rng.random() < self.cfg.write_ratio:
            return phase, "PutItem", "put_item", {
                "TableName": TABLE, "Item": {"pk": {"S": f"w-{label}-{worker}-{n}"}, "v": {"S": "x"}}}
        return phase, "GetItem", "get_item", {"TableName": TABLE, "Key": {"pk": {"S": f"k{rng.randrange(KEYS):03d}"}}}

    def _record(self, label: str, phase: int, op: str, start: float, error: str | None) -> None:
        end = time.monotonic()
        self.calls[label].append(Call(phase, start - self.t0, end - start, error is None, op, error))


def _next_slot(next_at: float, interval: float, now: float) -> float:
    """The slot after ``next_at``; when blocked past some slots, they are skipped."""
    next_at += interval
    return now + interval if next_at < now else next_at
