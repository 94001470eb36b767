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
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .clients import tagged
from .config import KEYS, TABLE, DrillConfig

__all__ = ["Call", "Workload"]


@dataclass
class Call:
    """One call as the workload saw it."""

    phase: int
    start: float      # seconds since the drill started
    latency: float
    ok: bool
    op: str
    error: str | None


class Workload:
    """``cfg.threads`` threads per client, each offering ``cfg.rate`` calls/s on a fixed schedule."""

    def __init__(self, clients: dict[str, Any], cfg: DrillConfig, t0: float, phase_of: Callable[[], int]) -> None:
        self.clients = clients
        self.cfg = cfg
        self.t0 = t0
        self.phase_of = phase_of
        self.stop = threading.Event()
        self.calls: dict[str, list[Call]] = {label: [] for label in clients}
        self.inflight: dict[tuple[str, int], tuple[int, float]] = {}  # (label, worker) -> (phase, start)
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        for label in self.clients:
            for w in range(self.cfg.threads):
                t = threading.Thread(target=self._run, args=(label, w), name=f"drill-{label}-{w}", daemon=True)
                t.start()
                self.threads.append(t)

    def join(self, timeout: float) -> None:
        """Stop offering load and wait up to ``timeout`` seconds in all for calls in flight."""
        self.stop.set()
        deadline = time.monotonic() + timeout
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
            next_at += interval
            if next_at < now:  # blocked past some slots: skip them
                next_at = now + interval
            phase = self.phase_of()
            n += 1
            write = rng.random() < self.cfg.write_ratio
            op = "PutItem" if write else "GetItem"
            start = time.monotonic()
            self.inflight[(label, worker)] = (phase, start - self.t0)
            error = None
            try:
                with tagged(label, phase):
                    if write:
                        client.put_item(TableName=TABLE, Item={"pk": {"S": f"w-{label}-{worker}-{n}"},
                                                               "v": {"S": "x"}})
                    else:
                        client.get_item(TableName=TABLE, Key={"pk": {"S": f"k{rng.randrange(KEYS):03d}"}})
            except Exception as e:
                error = type(e).__name__
            finally:
                self.inflight.pop((label, worker), None)
            end = time.monotonic()
            self.calls[label].append(Call(phase, start - self.t0, end - start, error is None, op, error))
