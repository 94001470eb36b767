"""A fleet of real worker processes calling loopback AWS through ``resilient_aws``, for fleet proofs and drills.

Why processes: shared state (:class:`~resilient_aws.RedisState`) exists because a fleet is many OS
processes that learn nothing from each other's memory. A proof with threads of one process, or with
simulated processes on a :class:`~resilient_aws.fleet.MemoryStore`, cannot show what matters in
production: that an opening reaches *other interpreters* through Redis pub/sub, that the probe lease
holds across them, that a process started later finds the fleet's DNS answers, and that a dead Redis
is a local matter for every one of them. So :class:`Fleet` starts N worker processes (``python -m
resilient_aws.testing.fleet``: a fresh interpreter each, nothing inherited from the parent's memory, and
unlike multiprocessing's ``spawn`` no re-import of the caller's main script, so a plain script or a CLI
can drive a fleet), each running T threads that call one operation through its own
``resilient_aws.Session(..., shared_state=RedisState(url, namespace))`` (or without shared state, the
comparison), and reports every call back to the parent.

The parent keeps the ground truth: the endpoint's own request counters
(:mod:`~resilient_aws.testing.counters`), sampled over time by :class:`EndpointTimeline`; each worker
tags its requests (:data:`~resilient_aws.testing.counters.TAG_HEADER` = the worker's name), so the
server counts each process apart. The parent also switches the faults (:class:`FaultPhases`), so every
number is "what the servers saw while the parent had broken this".

    with outage_drill(regions=["us-east-1"]) as drill, LoopbackRedisServer() as redis_server:
        drill.create_table("t", [{"pk": {"S": "k"}}])
        with Fleet(processes=8) as fleet:
            timeline = EndpointTimeline(drill.endpoint("us-east-1")).start()
            phases = FaultPhases(drill, "us-east-1")
            fleet.run(FleetPlan.for_drill(drill, policy=..., redis_url=redis_server.url, namespace="n1",
                                          table="t", key={"pk": {"S": "k"}}))
            phases.set("503"); time.sleep(3); phases.set("healed"); time.sleep(2)
            result = fleet.halt()                 # every call: worker, start, latency, ok, error
            timeline.count(phases.at("503"), phases.at("healed"))   # requests the server saw meanwhile

Time: every timestamp (calls, events, phases, samples) is ``time.monotonic()``, which on Linux (and
macOS, Windows) is one clock for every process of the machine, so the parent compares them directly.

Bounded everywhere: starting, commanding and stopping workers wait at most the given timeouts; a
worker's calls are bounded by ``FleetPlan.call_timeout`` (botocore's connect and read timeouts); a
worker exits when its parent goes away (its socket closes) and is killed by :meth:`Fleet.stop` otherwise.
The parent and a worker talk over a socket pair passed to the child (pickled commands and replies:
both ends are this module), so POSIX only, like the drill's 127.0.0.2.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import math
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:  # pragma: no cover
    from multiprocessing.connection import Connection

    from ..policy import Policy
    from .endpoint import LoopbackEndpoint

__all__ = [
    "CallRecord",
    "EndpointTimeline",
    "EventRecord",
    "FaultPhases",
    "Fleet",
    "FleetError",
    "FleetPlan",
    "FleetResult",
    "LogRecord",
    "PhaseMark",
    "WorkerReport",
    "max_in_window",
    "median",
    "percentile",
]

#: How often a worker's main loop looks for its parent when no command arrives (seconds).
_IDLE_POLL = 0.5
#: Between "go" being sent and the common first call: the time for the parent to reach every worker.
_GO_MARGIN = 0.1
#: Log records a worker keeps (WARNING and above of ``resilient_aws``), newest kept.
_MAX_LOGS = 500


class FleetError(RuntimeError):
    """A worker did not start, did not answer within its timeout, or failed a command."""


# -- what the workers do ------------------------------------------------------------------------------
@dataclass(frozen=True)
class FleetPlan:
    """What every worker of a scenario runs. Picklable (it is sent to each process).

    - ``endpoint_urls``/``region``/``failover_regions``: where the client calls (use DNS names served by
      the drill's DNS server, :meth:`for_drill`, so DNS is part of what is proven);
    - ``policy``: the ``resilient_aws.Policy`` of every worker's session;
    - ``redis_url``: the fleet's shared state (``None``: every process on its own, the comparison);
      ``namespace``: give every scenario its own, so scenarios never see each other's records;
      ``redis_timeout``/``reconnect_interval``: ``RedisState``'s;
    - ``threads`` per process, each offering ``rate`` calls per second on a fixed schedule (missed
      slots are skipped, as a blocked thread would in production; ``None`` is back to back, which an
      open breaker turns into a busy loop: keep a rate when the breaker may open);
    - ``operation`` and ``params``: the call (``get_item`` of one key by default);
    - ``call_timeout``: botocore's connect and read timeouts, so every call is bounded.
    """

    endpoint_urls: Mapping[str, str]
    region: str
    policy: Policy
    failover_regions: tuple[str, ...] = ()
    redis_url: str | None = None
    namespace: str = "resilient_aws"
    redis_timeout: float = 0.05
    reconnect_interval: float = 1.0
    threads: int = 4
    rate: float | None = 20.0
    service: str = "dynamodb"
    operation: str = "get_item"
    params: Mapping[str, Any] = field(default_factory=dict)
    call_timeout: float = 5.0

    def __post_init__(self) -> None:
        if self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads!r}")
        if self.rate is not None and not self.rate > 0:
            raise ValueError(f"rate must be > 0 calls/s per thread (or None), got {self.rate!r}")
        if self.region not in self.endpoint_urls:
            raise ValueError(f"no endpoint URL for the primary region {self.region!r}")

    @property
    def shared(self) -> bool:
        return self.redis_url is not None

    @classmethod
    def for_drill(cls, drill: Any, *, policy: Policy, table: str, key: Mapping[str, Any], region: str | None = None,
                  failover: bool = False, label: str | None = None, **options: Any) -> FleetPlan:
        """A plan aimed at an :class:`~resilient_aws.testing.drill_env.OutageDrill`: its DNS names (through
        its DNS server: ``policy``'s DNS is aimed there), ``GetItem`` of ``key`` in ``table``, primary
        ``region`` (default the drill's first), failing over to the drill's other regions if ``failover``."""
        region = region or drill.regions[0]
        urls = drill.endpoint_urls("dynamodb", label=label)
        others = tuple(r for r in drill.regions if r != region) if failover else ()
        return cls(endpoint_urls={r: urls[r] for r in (region, *others)}, region=region, failover_regions=others,
                   policy=drill.policy(policy), operation="get_item",
                   params={"TableName": table, "Key": dict(key)}, **options)

    def with_namespace(self, namespace: str | None = None) -> FleetPlan:
        """The same plan in a fresh namespace (a random one by default): a new fleet as far as Redis knows."""
        return replace(self, namespace=namespace or f"fleet-{uuid.uuid4().hex[:10]}")


class CallRecord(NamedTuple):
    """One call as its worker saw it: ``start`` (monotonic), ``latency`` (s), ``ok``, and for a failure
    ``error``: the exception's module and class, plus the AWS error code for a ``ClientError``."""

    worker: str
    start: float
    latency: float
    ok: bool
    error: str | None

    @property
    def end(self) -> float:
        return self.start + self.latency


class EventRecord(NamedTuple):
    """A ``resilient_aws`` event in a worker (breaker transitions, DNS episodes...): ``kind`` and the
    event's ``detail`` (for a breaker: ``from``, ``to``, ``reason``)."""

    worker: str
    t: float
    kind: str
    region: str | None
    detail: dict[str, Any]


class LogRecord(NamedTuple):
    """A WARNING (or worse) that ``resilient_aws`` logged in a worker."""

    worker: str
    t: float
    logger: str
    level: str
    message: str


@dataclass
class WorkerReport:
    """What one worker said when its scenario stopped: its client's ``stats()``, its shared state's
    ``stats()`` (``None`` without), and calls still in flight when it gave up waiting for them."""

    worker: str
    pid: int
    stats: dict[str, Any]
    shared: dict[str, Any] | None
    unfinished: int


# -- the results ---------------------------------------------------------------------------------------
def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values`` by nearest rank; 0.0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[index]


def median(values: Iterable[float]) -> float:
    """``statistics.median`` that tolerates no values (``nan``)."""
    items = list(values)
    return statistics.median(items) if items else math.nan


@dataclass
class FleetResult:
    """Every call, event and log line of the fleet's workers (so far), with the questions tests ask."""

    calls: list[CallRecord] = field(default_factory=list)
    events: list[EventRecord] = field(default_factory=list)
    logs: list[LogRecord] = field(default_factory=list)
    reports: dict[str, WorkerReport] = field(default_factory=dict)

    def extend(self, other: FleetResult) -> None:
        self.calls.extend(other.calls)
        self.events.extend(other.events)
        self.logs.extend(other.logs)
        self.reports.update(other.reports)

    # selections
    def between(self, t0: float, t1: float = math.inf) -> FleetResult:
        """The calls that *started* in ``[t0, t1)`` and the events and logs of that time."""
        return FleetResult([c for c in self.calls if t0 <= c.start < t1],
                           [e for e in self.events if t0 <= e.t < t1],
                           [g for g in self.logs if t0 <= g.t < t1], dict(self.reports))

    def of(self, worker: str) -> FleetResult:
        return FleetResult([c for c in self.calls if c.worker == worker],
                           [e for e in self.events if e.worker == worker],
                           [g for g in self.logs if g.worker == worker],
                           {k: v for k, v in self.reports.items() if k == worker})

    @property
    def workers(self) -> list[str]:
        return sorted({c.worker for c in self.calls} | set(self.reports))

    # figures
    @property
    def failed(self) -> int:
        return sum(1 for c in self.calls if not c.ok)

    @property
    def succeeded(self) -> int:
        return sum(1 for c in self.calls if c.ok)

    def errors(self) -> Counter[str]:
        """Failed calls by error (``module.Class`` or ``...ClientError:Code``)."""
        return Counter(c.error or "?" for c in self.calls if not c.ok)

    def latencies(self, *, ok: bool | None = None) -> list[float]:
        return [c.latency for c in self.calls if ok is None or c.ok == ok]

    @property
    def max_latency(self) -> float:
        return max((c.latency for c in self.calls), default=0.0)

    def first_success_after(self, t: float, worker: str | None = None) -> float | None:
        """When the first call that succeeded *ended* after ``t`` (of one worker, or of any)."""
        ends = [c.end for c in self.calls if c.ok and c.end > t and (worker is None or c.worker == worker)]
        return min(ends, default=None)

    def return_after(self, t: float, workers: Iterable[str] | None = None) -> dict[str, float | None]:
        """Per worker, seconds from ``t`` to its first call that succeeded after ``t`` (``None``: none yet)."""
        out: dict[str, float | None] = {}
        for worker in workers if workers is not None else self.workers:
            end = self.first_success_after(t, worker)
            out[worker] = None if end is None else end - t
        return out

    def breaker_events(self, worker: str | None = None) -> list[EventRecord]:
        return [e for e in self.events if e.kind == "breaker_state" and (worker is None or e.worker == worker)]

    def openings_after(self, t: float) -> dict[str, EventRecord]:
        """Per worker, its breaker's first move from closed to open after ``t`` (``detail["reason"]`` says
        whether its own window opened it or the fleet did: ``"opened by the fleet"``)."""
        out: dict[str, EventRecord] = {}
        for e in sorted(self.breaker_events(), key=lambda e: e.t):
            if e.t > t and e.detail.get("to") == "open" and e.detail.get("from") == "closed" and e.worker not in out:
                out[e.worker] = e
        return out

    def summary(self) -> str:
        """One line for a log: calls, failures, latency quantiles, errors."""
        lat = self.latencies()
        return (f"{len(self.calls)} calls, {self.failed} failed; latency p50 {percentile(lat, 0.5) * 1000:.1f} ms, "
                f"p99 {percentile(lat, 0.99) * 1000:.1f} ms, max {self.max_latency * 1000:.1f} ms; "
                f"errors {dict(self.errors().most_common(4))}")


# -- the parent's side ----------------------------------------------------------------------------------
class _Worker:
    """The parent's handle of one worker process."""

    def __init__(self, name: str, process: subprocess.Popen[bytes], conn: Connection, late: bool) -> None:
        self.name = name
        self.process = process
        self.conn = conn
        self.late = late
        self.pid: int = 0
        self.running = False

    def send(self, command: str, arg: Any = None) -> None:
        try:
            self.conn.send((command, arg))
        except (OSError, EOFError, BrokenPipeError) as exc:
            raise FleetError(f"worker {self.name} is gone ({self._exit()}): {exc}") from exc

    def receive(self, timeout: float, what: str) -> Any:
        try:
            if not self.conn.poll(max(0.0, timeout)):
                raise FleetError(f"worker {self.name} did not answer {what!r} within {timeout:.1f} s ({self._exit()})")
            kind, value = self.conn.recv()
        except (OSError, EOFError) as exc:
            raise FleetError(f"worker {self.name} is gone while answering {what!r} ({self._exit()}): {exc}") from exc
        if kind == "error":
            raise FleetError(f"worker {self.name} failed {what!r}: {value}")
        return value

    def _exit(self) -> str:
        code = self.process.poll()
        return "still running" if code is None else f"exit code {code}"


class Fleet:
    """N worker processes that call AWS through ``resilient_aws`` while the parent breaks things.

    ``start()`` spawns the workers and waits until each has imported what it needs (bounded by
    ``start_timeout``); ``run(plan)`` makes every worker build a new session from ``plan`` (new
    breakers, DNS cache, and ``RedisState`` if the plan has one) and start calling; ``collect()`` gathers
    what they did so far; ``halt()`` stops the calls and returns everything of the scenario;
    ``pause()``/``resume()`` hold the load and release it again, together; ``wait_until(condition)``
    and ``watch(seconds)`` wait while collecting; ``add_worker()`` starts one more process now (a cold
    start: empty DNS cache, no history) and ``retire()`` ends it; ``stop()`` ends every process (asked
    first, killed after ``stop_timeout``). A fleet is reusable: ``run`` again with another plan, or a
    fresh namespace (:meth:`FleetPlan.with_namespace`), for the next scenario; starting the processes
    is what costs (about a second for eight on two cores), not a scenario.
    """

    def __init__(self, processes: int = 8, *, start_timeout: float = 90.0, command_timeout: float = 30.0,
                 stop_timeout: float = 10.0, log_level: int = logging.WARNING) -> None:
        if processes < 1:
            raise ValueError(f"a fleet needs at least one process, got {processes!r}")
        self.processes = processes
        self.start_timeout = start_timeout
        self.command_timeout = command_timeout
        self.stop_timeout = stop_timeout
        self.log_level = log_level
        self._workers: dict[str, _Worker] = {}
        self._plan: FleetPlan | None = None
        self.result = FleetResult()
        self.started_at = 0.0

    # -- life cycle ------------------------------------------------------------------------------
    def start(self) -> Fleet:
        try:
            self._spawn([f"w{i}" for i in range(self.processes)], late=False)
        except BaseException:
            self.stop()
            raise
        return self

    def __enter__(self) -> Fleet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Ask every worker to exit; kill those that have not after ``stop_timeout`` (in all). Idempotent."""
        workers = list(self._workers.values())
        self._workers.clear()
        self._end(workers)

    def retire(self, names: Iterable[str]) -> None:
        """End some workers (a late one, once its test is done), as :meth:`stop` ends them all."""
        workers = [self._workers.pop(name) for name in list(names) if name in self._workers]
        self._end(workers)

    def _end(self, workers: Sequence[_Worker]) -> None:
        for w in workers:
            with contextlib.suppress(Exception):
                w.conn.send(("exit", None))
        deadline = time.monotonic() + self.stop_timeout
        for w in workers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                w.process.wait(max(0.0, deadline - time.monotonic()))
        for w in workers:
            if w.process.poll() is None:
                w.process.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    w.process.wait(5.0)
            with contextlib.suppress(Exception):
                w.conn.close()

    @property
    def names(self) -> list[str]:
        return list(self._workers)

    def pids(self) -> dict[str, int]:
        return {name: w.pid for name, w in self._workers.items()}

    def _spawn(self, names: Sequence[str], *, late: bool) -> list[_Worker]:
        started: list[_Worker] = []
        for name in names:
            if name in self._workers:
                raise ValueError(f"a worker named {name!r} exists already")
            parent_conn, child_conn = multiprocessing.Pipe(duplex=True)  # a socket pair on POSIX
            child_fd = child_conn.fileno()
            try:
                process = subprocess.Popen(
                    [sys.executable, "-m", __name__, "--worker", name, "--fd", str(child_fd),
                     "--log-level", str(self.log_level)],
                    pass_fds=(child_fd,), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env=_child_env(),
                    close_fds=True)
            except BaseException:
                parent_conn.close()
                raise
            finally:
                child_conn.close()
            worker = _Worker(name, process, parent_conn, late)
            self._workers[name] = worker
            started.append(worker)
        deadline = time.monotonic() + self.start_timeout
        try:
            for worker in started:
                worker.pid = int(worker.receive(deadline - time.monotonic(), "start"))
        except BaseException:
            self.retire([w.name for w in started])
            raise
        return started

    # -- scenarios -------------------------------------------------------------------------------
    def run(self, plan: FleetPlan, workers: Iterable[str] | None = None, *, together: bool = True) -> float:
        """Every worker (or those named) builds a session from ``plan`` and starts calling. A scenario
        already running is halted first (its calls stay in :attr:`result`; a new scenario of the whole
        fleet starts a new :attr:`result`).

        ``together``: the workers first build their sessions (about 0.1 s of CPU each, so a second or
        more for a fleet on two cores), then their threads make their first calls within one call
        interval of the same moment, so that the fleet meets the endpoint together, as a fleet in
        steady state does, not in the order the processes happened to be set up. Returns that moment
        (monotonic); without ``together``, the time the last worker began calling."""
        chosen = self._chosen(workers)
        if any(w.running for w in chosen):
            self.halt(None if workers is None else [w.name for w in chosen])
        if workers is None:
            self.result = FleetResult()
            self._plan = plan
        for w in chosen:
            w.send("run", (plan, together))
        deadline = time.monotonic() + self.command_timeout
        for w in chosen:
            w.receive(deadline - time.monotonic(), "run")
            w.running = True
        self.started_at = self._go(chosen) if together else time.monotonic()
        return self.started_at

    def pause(self) -> float:
        """Every running worker stops making new calls (calls in flight finish; sessions, breakers and
        shared state stay as they are). Why: to let the breakers' windows empty before a fault, or to
        hold the load while the parent rearranges the world. Returns when every worker has paused."""
        chosen = [w for w in self._workers.values() if w.running]
        for w in chosen:
            w.send("pause")
        deadline = time.monotonic() + self.command_timeout
        for w in chosen:
            w.receive(deadline - time.monotonic(), "pause")
        return time.monotonic()

    def resume(self) -> float:
        """Every running worker calls again, together (see :meth:`run`). Returns the common start."""
        return self._go([w for w in self._workers.values() if w.running])

    def _go(self, chosen: Sequence[_Worker]) -> float:
        start_at = time.monotonic() + _GO_MARGIN
        for w in chosen:
            w.send("go", start_at)
        deadline = time.monotonic() + self.command_timeout
        for w in chosen:
            w.receive(deadline - time.monotonic(), "go")
        return start_at

    def add_worker(self, plan: FleetPlan | None = None, *, name: str | None = None) -> str:
        """Start one more process now (a cold start) and, with ``plan`` (default: the running scenario's),
        make it call. Returns its name (``late0``, ``late1``... unless given)."""
        name = name or f"late{sum(1 for w in self._workers.values() if w.late)}"
        self._spawn([name], late=True)
        plan = plan or self._plan
        if plan is not None:
            self.run(plan, [name])
        return name

    def collect(self) -> FleetResult:
        """Gather the calls, events and logs of every running worker since the last collect, add them to
        :attr:`result` and return :attr:`result` (everything of this scenario so far)."""
        chosen = [w for w in self._workers.values() if w.running]
        for w in chosen:
            w.send("collect")
        deadline = time.monotonic() + self.command_timeout
        for w in chosen:
            self.result.extend(_result_from(w.name, w.receive(deadline - time.monotonic(), "collect")))
        return self.result

    def status(self) -> dict[str, dict[str, Any]]:
        """Per running worker, without stopping it: ``{"stats": client.stats(), "shared": state.stats()}``."""
        chosen = [w for w in self._workers.values() if w.running]
        for w in chosen:
            w.send("status")
        deadline = time.monotonic() + self.command_timeout
        return {w.name: w.receive(deadline - time.monotonic(), "status") for w in chosen}

    def halt(self, workers: Iterable[str] | None = None) -> FleetResult:
        """Stop the calls (of every worker, or those named), gather everything and close their sessions
        and shared state. Returns :attr:`result`, with a :class:`WorkerReport` per halted worker."""
        chosen = [w for w in self._chosen(workers) if w.running]
        for w in chosen:
            w.send("halt")
        deadline = time.monotonic() + self.command_timeout
        for w in chosen:
            self.result.extend(_result_from(w.name, w.receive(deadline - time.monotonic(), "halt")))
            w.running = False
        return self.result

    def wait_until(self, condition: Callable[[FleetResult], bool], timeout: float, interval: float = 0.05) -> bool:
        """Collect every ``interval`` seconds until ``condition(result)`` holds; False after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            if condition(self.collect()):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval)

    def watch(self, seconds: float, interval: float = 0.1) -> FleetResult:
        """Collect every ``interval`` for ``seconds``: a wait that keeps the parent as busy as a
        :meth:`wait_until` does, so that calls made meanwhile compare with calls made while waiting
        for a condition (the endpoint runs in the parent: its latency depends on what the parent does)."""
        self.wait_until(lambda r: False, seconds, interval)
        return self.result

    def _chosen(self, workers: Iterable[str] | None) -> list[_Worker]:
        if workers is None:
            return list(self._workers.values())
        return [self._workers[name] for name in workers]


def _child_env() -> dict[str, str]:
    """The parent's environment, with the directory holding this ``resilient_aws`` first on the path (a
    source checkout that is not installed works too)."""
    import resilient_aws

    root = os.path.dirname(os.path.dirname(os.path.abspath(resilient_aws.__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


def _result_from(worker: str, data: Mapping[str, Any]) -> FleetResult:
    result = FleetResult([CallRecord(worker, *c) for c in data.get("calls", ())],
                         [EventRecord(worker, *e) for e in data.get("events", ())],
                         [LogRecord(worker, *g) for g in data.get("logs", ())])
    report = data.get("report")
    if report is not None:
        result.reports[worker] = WorkerReport(worker, **report)
    return result


# -- the server's side ------------------------------------------------------------------------------------
class EndpointTimeline:
    """The endpoint's own request counters, sampled every ``interval`` seconds in a thread of the parent.

    Why sampling: :class:`~resilient_aws.testing.counters.EndpointCounts` counts what arrived (in all,
    per tag) but not when, to better than a second. Sampled every 10 ms, the counts place each request
    within 10 ms, which is what "at most one probe per open interval" needs. Reading ``counts()``
    costs the server a lock held for a few dict copies. Do not ``reset_counts()`` while sampling.
    """

    def __init__(self, endpoint: LoopbackEndpoint, interval: float = 0.01) -> None:
        self.endpoint = endpoint
        self.interval = interval
        self._times: list[float] = []
        self._totals: list[int] = []
        self._tags: list[dict[str, int]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> EndpointTimeline:
        self._sample()
        self._thread = threading.Thread(target=self._loop, name="fleet-endpoint-timeline", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)

    def __enter__(self) -> EndpointTimeline:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self) -> None:
        counts = self.endpoint.counts()
        now = time.monotonic()
        with self._lock:
            self._times.append(now)
            self._totals.append(counts.total)
            self._tags.append(counts.by_tag)

    def sample_now(self) -> None:
        """Take a sample at once (before reading figures right after an event)."""
        self._sample()

    def total(self, t: float, tag: str | None = None) -> int:
        """Requests that had arrived by ``t`` (the last sample at or before it)."""
        with self._lock:
            i = bisect.bisect_right(self._times, t) - 1
            if i < 0:
                return 0
            return self._totals[i] if tag is None else self._tags[i].get(tag, 0)

    def count(self, t0: float, t1: float, tag: str | None = None) -> int:
        """Requests that arrived in ``(t0, t1]`` (to within one sampling interval)."""
        return self.total(t1, tag) - self.total(t0, tag)

    def by_tag(self, t0: float, t1: float) -> dict[str, int]:
        with self._lock:
            i0 = max(0, bisect.bisect_right(self._times, t0) - 1)
            i1 = bisect.bisect_right(self._times, t1) - 1
            if i1 < 0:
                return {}
            start, end = (self._tags[i0] if self._times[i0] <= t0 else {}), self._tags[i1]
        return {tag: n - start.get(tag, 0) for tag, n in end.items() if n - start.get(tag, 0) > 0}

    def arrivals(self, t0: float, t1: float) -> list[tuple[float, int]]:
        """``(sample time, requests since the sample before)`` for the samples in ``(t0, t1]`` that saw any."""
        with self._lock:
            i = max(1, bisect.bisect_right(self._times, t0))
            out = []
            while i < len(self._times) and self._times[i] <= t1:
                n = self._totals[i] - self._totals[i - 1]
                if n:
                    out.append((self._times[i], n))
                i += 1
        return out

    def max_in_window(self, t0: float, t1: float, width: float) -> int:
        """The most requests that arrived within any ``width`` seconds of ``(t0, t1]`` (sampled: two
        arrivals up to one ``interval`` more than ``width`` apart may be counted together, so pass
        ``width - 2 * interval`` to ask "more than one per ``width``" strictly)."""
        return max_in_window(self.arrivals(t0, t1), width)

    def gaps(self, t0: float, t1: float, longer_than: float) -> list[tuple[float, float]]:
        """Times in ``[t0, t1]`` when two samples were more than ``longer_than`` apart: the sampler runs
        in the endpoint's own process, so a gap is a pause of that process (a garbage collection, CPU
        starvation), during which the endpoint answered nothing either. A call slowed by such a pause was
        slowed by the endpoint, not by the library."""
        with self._lock:
            i = max(1, bisect.bisect_left(self._times, t0))
            out = []
            while i < len(self._times) and self._times[i - 1] <= t1:
                if self._times[i] - self._times[i - 1] > longer_than:
                    out.append((self._times[i - 1], self._times[i]))
                i += 1
        return out

    def opening_burst(self, t0: float, t1: float, silence: float) -> tuple[int, float]:
        """Requests from ``t0`` until the endpoint first heard nothing for ``silence`` seconds, and the time
        of the last of them: "every process had stopped" as the server saw it."""
        total, last = 0, t0
        for t, n in self.arrivals(t0, t1):
            if total and t - last >= silence:
                break
            total, last = total + n, t
        return total, last

    def quiet_since(self, t: float, t1: float | None = None) -> float | None:
        """The time of the last arrival in ``(t, t1]``, or None if none arrived (for "everyone stopped")."""
        points = self.arrivals(t, t1 if t1 is not None else math.inf)
        return points[-1][0] if points else None


def max_in_window(points: Sequence[tuple[float, int]], width: float) -> int:
    """The largest sum of ``n`` over ``(t, n)`` points (sorted by ``t``) that lie within ``width`` seconds
    of each other: "how many probes within one open interval, at most"."""
    best = running = j = 0
    for t, n in points:
        running += n
        while points[j][0] <= t - width:
            running -= points[j][1]
            j += 1
        best = max(best, running)
    return best


# -- the faults the parent switches -------------------------------------------------------------------------
class PhaseMark(NamedTuple):
    """A fault switched by the parent: ``before`` the switch began, ``after`` it was in place. A call
    that started before ``before`` and ended before ``after`` saw only the phase before; one that
    started after ``after`` saw only this one; calls in between may have seen either."""

    name: str
    before: float
    after: float


class FaultPhases:
    """The faults of one region of a drill, switched by name and remembered with their times.

    ``healthy`` (endpoint and DNS restored), ``503`` (every request answered 503), ``refused``
    (connections refused: the kernel answers, no HTTP server counts them), ``healed`` (the endpoint
    serves again; its DNS is left as it is), ``dns_empty`` (the 2025-10-20 answer: NOERROR, no
    records). :meth:`set` returns the monotonic time the fault was in place: the phase's start.
    """

    ACTIONS: dict[str, Callable[[Any, str], None]] = {
        "healthy": lambda drill, region: drill.restore(region),
        "503": lambda drill, region: drill.fail(region, 503),
        "refused": lambda drill, region: drill.unreachable(region),
        "healed": lambda drill, region: drill.heal(region),
        "dns_empty": lambda drill, region: drill.dns_empty(region),
    }

    def __init__(self, drill: Any, region: str | None = None) -> None:
        self.drill = drill
        self.region = region or drill.regions[0]
        self.marks: list[PhaseMark] = []

    def set(self, phase: str) -> float:
        action = self.ACTIONS.get(phase)
        if action is None:
            raise ValueError(f"unknown phase {phase!r}; one of {sorted(self.ACTIONS)}")
        before = time.monotonic()
        action(self.drill, self.region)
        after = time.monotonic()
        self.marks.append(PhaseMark(phase, before, after))
        return after

    def mark(self, phase: str) -> PhaseMark:
        """The last time ``phase`` was set."""
        for m in reversed(self.marks):
            if m.name == phase:
                return m
        raise KeyError(phase)

    def at(self, phase: str) -> float:
        """When ``phase`` (its last switch) was in place."""
        return self.mark(phase).after


# -- the worker's side ----------------------------------------------------------------------------------------
def _error_name(exc: BaseException) -> str:
    cls = type(exc)
    name = f"{cls.__module__}.{cls.__qualname__}"
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if code:
            name = f"{name}:{code}"
    return name


class _LogBuffer(logging.Handler):
    def __init__(self, level: int) -> None:
        super().__init__(level)
        self.records: deque[tuple[float, str, str, str]] = deque(maxlen=_MAX_LOGS)

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            self.records.append((time.monotonic(), record.name, record.levelname, record.getMessage()))


class _Scenario:
    """One plan running in a worker: a session, its client, ``plan.threads`` calling threads."""

    def __init__(self, name: str, plan: FleetPlan, together: bool = False) -> None:
        import botocore.session
        from botocore.config import Config

        from ..session import Session
        from .counters import TAG_HEADER
        from .tables import TEST_CREDENTIALS

        self.name = name
        self.plan = plan
        self.start_at = 0.0
        self.epoch = 0
        self.go = threading.Event()
        if not together:
            self.go.set()
        self.calls: deque[tuple[float, float, bool, str | None]] = deque()
        self.events: deque[tuple[float, str, str | None, dict[str, Any]]] = deque()
        self.stop = threading.Event()
        self.shared: Any = None
        if plan.redis_url is not None:
            from ..fleet import RedisState

            self.shared = RedisState(plan.redis_url, namespace=plan.namespace, timeout=plan.redis_timeout,
                                     reconnect_interval=plan.reconnect_interval)
        bc = botocore.session.get_session()

        def tag(**kwargs: Any) -> None:  # after signing: the server counts each process apart
            kwargs["request"].headers[TAG_HEADER] = name

        bc.register(f"before-send.{plan.service}", tag)
        self.session = Session(aws_access_key_id=TEST_CREDENTIALS["aws_access_key_id"],
                               aws_secret_access_key=TEST_CREDENTIALS["aws_secret_access_key"],
                               region_name=plan.region, failover_regions=list(plan.failover_regions),
                               policy=plan.policy, botocore_session=bc, shared_state=self.shared)
        self.session.add_listener(self._on_event)
        config = Config(connect_timeout=plan.call_timeout, read_timeout=plan.call_timeout,
                        max_pool_connections=max(10, plan.threads))
        self.client = self.session.client(plan.service, endpoint_urls=dict(plan.endpoint_urls), config=config)
        self.call = getattr(self.client, plan.operation)
        self.threads = [threading.Thread(target=self._load, args=(i,), name=f"fleet-{name}-{i}", daemon=True)
                        for i in range(plan.threads)]

    def _on_event(self, event: Any) -> None:
        detail = {k: v for k, v in event.detail.items() if isinstance(v, (str, int, float, bool, type(None)))}
        self.events.append((time.monotonic(), event.kind, event.region, detail))

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def _load(self, index: int) -> None:
        rng = random.Random(f"{self.name}-{index}-{time.monotonic_ns()}")
        interval = 1.0 / self.plan.rate if self.plan.rate else 0.0
        params = dict(self.plan.params)
        clock = time.monotonic
        epoch = -1
        next_at = 0.0
        while not self.stop.is_set():
            if not self.go.is_set():  # paused (or not begun yet): halt() sets go too
                self.go.wait(0.5)
                continue
            if epoch != self.epoch:  # (re)started: first call within one interval of the common start
                epoch = self.epoch
                next_at = (self.start_at or clock()) + rng.random() * interval
            if interval or next_at:
                now = clock()
                if now < next_at:
                    self.stop.wait(min(next_at - now, 0.5))
                    continue
                next_at = next_at + interval if interval else 0.0
                if interval and next_at < now:  # blocked past some slots: skip them, as production would
                    next_at = now + interval
            start = clock()
            error = None
            try:
                self.call(**params)
            except Exception as exc:
                error = _error_name(exc)
            self.calls.append((start, clock() - start, error is None, error))

    def drain(self) -> dict[str, Any]:
        calls = [self.calls.popleft() for _ in range(len(self.calls))]
        events = [self.events.popleft() for _ in range(len(self.events))]
        return {"calls": calls, "events": events}

    def status(self) -> dict[str, Any]:
        return {"stats": self.client.stats(), "shared": None if self.shared is None else self.shared.stats()}

    def begin(self, start_at: float) -> None:
        """Make the first calls at ``start_at`` (a monotonic time, the same clock in every process)."""
        self.start_at = start_at
        self.epoch += 1
        self.go.set()

    def pause(self) -> None:
        """No new call until :meth:`begin` (calls in flight finish)."""
        self.go.clear()

    def halt(self, timeout: float) -> dict[str, Any]:
        self.stop.set()
        self.go.set()
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))
        unfinished = sum(1 for t in self.threads if t.is_alive())
        status = self.status()
        with contextlib.suppress(Exception):
            self.session.close()
        if self.shared is not None:
            with contextlib.suppress(Exception):
                self.shared.close()
        out = self.drain()
        out["report"] = {"pid": os.getpid(), "stats": status["stats"], "shared": status["shared"],
                         "unfinished": unfinished}
        return out


def _worker_main(conn: Connection, name: str, log_level: int) -> None:
    """A worker process: answer the parent's commands until told to exit or the parent goes away."""
    logs = _LogBuffer(log_level)
    library = logging.getLogger("resilient_aws")
    library.addHandler(logs)
    library.setLevel(min(log_level, library.level or logging.WARNING))
    library.propagate = False  # the parent's terminal is not the place for N processes' warnings
    import botocore.session  # noqa: F401  (the imports a scenario needs, before saying "ready")

    from .. import session as _session  # noqa: F401

    scenario: _Scenario | None = None
    conn.send(("ok", os.getpid()))
    while True:
        try:
            if not conn.poll(_IDLE_POLL):
                continue
            command, arg = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            break
        try:
            if command == "exit":
                if scenario is not None:
                    scenario.halt(2.0)
                conn.send(("ok", None))
                break
            if command == "run":
                plan, together = arg
                if scenario is not None:
                    scenario.halt(plan.call_timeout + 1.0)
                logs.records.clear()
                scenario = _Scenario(name, plan, together)
                scenario.start()
                reply: Any = None
            elif command == "go":
                if scenario is not None:
                    scenario.begin(arg)
                reply = None
            elif command == "pause":
                if scenario is not None:
                    scenario.pause()
                reply = None
            elif command == "collect":
                reply = scenario.drain() if scenario is not None else {}
                reply["logs"] = [logs.records.popleft() for _ in range(len(logs.records))]
            elif command == "status":
                reply = scenario.status() if scenario is not None else {}
            elif command == "halt":
                reply = scenario.halt(scenario.plan.call_timeout + 1.0) if scenario is not None else {}
                reply["logs"] = [logs.records.popleft() for _ in range(len(logs.records))]
                scenario = None
            else:
                raise ValueError(f"unknown command {command!r}")
            conn.send(("ok", reply))
        except (EOFError, OSError, BrokenPipeError):
            break
        except Exception as exc:  # tell the parent, keep serving
            with contextlib.suppress(Exception):
                conn.send(("error", f"{type(exc).__name__}: {exc}"))


def _worker_entry(argv: Sequence[str] | None = None) -> None:
    """``python -m resilient_aws.testing.fleet --worker NAME --fd FD``: the worker process's entry point."""
    import argparse
    from multiprocessing.connection import Connection

    parser = argparse.ArgumentParser(description="a worker of resilient_aws.testing.fleet.Fleet (not for direct use)")
    parser.add_argument("--worker", required=True)
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--log-level", type=int, default=logging.WARNING)
    args = parser.parse_args(argv)
    _worker_main(Connection(args.fd), args.worker, args.log_level)


if __name__ == "__main__":
    from resilient_aws.testing.fleet import _worker_entry as _entry  # the module's real name, for pickled plans

    _entry()
