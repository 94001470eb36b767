"""Past one machine, by simulation: a fleet of 10 to 10,000 processes sharing one breaker through a store.

Why a simulation: two cores hold a handful of processes, not ten thousand. What decides how a fleet
behaves is the library's own logic (each process's :class:`~resilient_aws.breaker.CircuitBreaker`,
:class:`~resilient_aws.budget.RetryBudget` and :class:`~resilient_aws.fleet.shared.SharedState`) and
the store's contract (:class:`~resilient_aws.fleet.store.MemoryStore`, which the contract tests hold
to the Redis scripts' behaviour). So this runs that code, not a model of it, for every process, on
one simulated clock:

- a discrete-event loop (a heap of ``(time, seq, action, ...)``) owns the clock; the store, every
  breaker, budget and shared state read it (``Timing(monotonic=clock, random=seeded)``, breakers
  jitter with the same seeded generator), so a run is reproducible from its seed;
- each process offers ``rate`` calls/s (Poisson arrivals). A call asks its breaker (``admit``); an
  admitted attempt reaches the endpoint, which fails it after ``fail_after`` while dead and serves it
  after ``serve_after`` once healed; the result goes back to the breaker (``on_success`` /
  ``on_failure``). A failed first attempt is retried once, as the in-region retry handler does: only
  while the breaker is closed, only with a token from the budget (``try_withdraw``), after a full-
  jitter backoff from 50 ms, and only if the breaker is still closed then;
- ``SimShared.submit`` (failure reports, openings, probe results, releases) runs
  each store operation one store round trip (``latency``) later, one at a time per process, as
  RedisState's sync thread does; the probe claim and the retry-floor reserve run in the caller, as in
  RedisState, taking no simulated time (there the caller waits one round trip). Every message the
  store publishes reaches every process's ``deliver`` ``latency`` later (Redis pub/sub);
- the scenario: ``warmup`` seconds healthy, then ``dead`` seconds in which every attempt fails, then
  ``healed`` seconds in which every attempt succeeds. Two scenarios: *warm*, a warm-up of one breaker
  window (10 s): an endpoint dies while the fleet is serving, so every window is full of successes, as
  in steady state, and each process's own breaker can decide; *cold* (``warmup=0``), a fleet that starts
  against a dead endpoint: empty windows, so the fleet's window (the processes' failure reports) decides.

The same scenario runs once with shared state and once with each process alone (no store), per fleet
size. Counted: requests that reach the dead endpoint (first attempts, retries, probes), probes, the
concurrent probes fleet-wide, when 95 % of the processes' breakers are closed again after the heal, and
the store's commands (as Redis would count the scripts' calls) per second and by operation.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..breaker import ADMIT, CLOSED, PROBE, REJECT, CircuitBreaker
from ..budget import RetryBudget
from ..fleet.shared import SharedState
from ..fleet.store import OPEN, Invalid, MemoryStore, message_from
from ..policy import BreakerPolicy, BudgetPolicy
from ..timing import Timing
from .report import cell
from .timing import Progress

KEY = "dynamodb|us-east-1|https://dynamodb.us-east-1.amazonaws.com"
NAMESPACE = "resilient_aws"
#: One Redis does on the order of 100,000 simple commands/s; the goal is a tenth of that at 10,000 processes.
REDIS_LIMIT = 10_000.0
#: "Flat": the largest fleet's figure is at most this many times the smallest fleet's.
FLAT_FACTOR = 2.0
#: Recovery: the time from the heal until this share of the processes' breakers are closed again.
RECOVERED_SHARE = 0.95
OPERATIONS = ("report", "open", "claim", "probe_done", "release", "read", "reserve")


@dataclass(frozen=True)
class Settings:
    """The fleet sizes and the scenario; the defaults take about 35 s for all four sizes, on one core."""

    sizes: Sequence[int] = (10, 100, 1000, 10000)
    rate: float = 10.0          # calls/s offered per process (Poisson)
    warmup: float = 10.0        # seconds healthy before the endpoint dies: one breaker window (steady state)
    dead: float = 10.0          # seconds every attempt fails
    healed: float = 5.0         # seconds every attempt succeeds
    fail_after: float = 0.05    # a dead endpoint's failure takes this long (a refused or reset connection)
    serve_after: float = 0.005  # a healed endpoint's answer
    latency: float = 0.0005     # one store round trip; also pub/sub delivery
    backoff: float = 0.05       # full-jitter backoff before the one retry: uniform(0, backoff)
    open_time: float = 1.0      # BreakerPolicy.open_time; the other fields are the defaults
    min_calls: int = 20         # BreakerPolicy.min_calls
    seed: int = 1
    alone: bool = True          # also run each size without shared state, for comparison

    def breaker_policy(self) -> BreakerPolicy:
        return BreakerPolicy(open_time=self.open_time, min_calls=self.min_calls)

    def budget_policy(self) -> BudgetPolicy:
        return BudgetPolicy()


#: ``--quick``: two small fleets and short phases (under a second in all), for smoke tests.
QUICK = Settings(sizes=(10, 200), warmup=1.0, dead=4.0, healed=3.0)


@dataclass
class Row:
    """One fleet size in one mode (``shared``: through the store; otherwise each process alone)."""

    processes: int
    shared: bool
    calls: int = 0                      # calls offered during the dead and healed phases
    dead_requests: int = 0              # attempts that reached the dead endpoint (retries and probes too)
    dead_spreading: int = 0             # ... sent after the store opened the breaker, before the process heard
    dead_known: int = 0                 # ... sent after the process's own breaker had opened (probes)
    dead_retries: int = 0
    first_open_s: float | None = None   # seconds from the death to the first breaker opening
    probes_dead: int = 0                # probes sent to the dead endpoint
    probes_per_s: float = 0.0           # ... per second from the first opening to the heal
    max_concurrent_probes: int = 0      # probes in flight at once, fleet-wide, while dead
    min_probe_gap_s: float | None = None  # shortest time between two probes' starts while dead
    recovery_s: float | None = None     # heal -> RECOVERED_SHARE of the processes closed
    closed_at_end: float = 0.0          # share of the processes closed when the run ends
    served_after_heal: int = 0          # calls that succeeded after the heal
    commands: int = 0                   # store commands during the dead and healed phases
    commands_per_s: float = 0.0
    peak_commands_per_s: int = 0        # the busiest 1-s bucket (dead and healed phases)
    startup_commands: int = 0           # store commands in the warm-up (the read each process makes on attach)
    by_operation: dict[str, int] = field(default_factory=dict)
    published: int = 0                  # messages published (dead and healed phases)
    deliveries: int = 0                 # messages delivered (published x processes)
    per_second: list[int] = field(default_factory=list)  # store commands per 1-s bucket from the death
    busiest: dict[str, int] = field(default_factory=dict)  # the busiest bucket's commands by operation
    wall_s: float = 0.0

    @property
    def dead_after_open(self) -> int:
        """Requests to the dead endpoint after the fleet's breaker opened (alone: the process's own)."""
        return self.dead_spreading + self.dead_known

    @property
    def dead_detecting(self) -> int:
        """Requests to the dead endpoint before the breaker opened: the detection."""
        return self.dead_requests - self.dead_after_open

    @property
    def commands_per_process_s(self) -> float:
        return self.commands_per_s / self.processes


# -- the simulation ------------------------------------------------------------------------------------
class SimShared(SharedState):
    """SharedState whose background operations run one store round trip later, in simulated time, one at
    a time per process (RedisState's sync thread, without the thread)."""

    def __init__(self, store: MemoryStore, sim: Simulation, timing: Timing) -> None:
        super().__init__(store, namespace=NAMESPACE, timing=timing)
        self.sim = sim
        self.busy_until = 0.0

    def submit(self, op: Callable[[], object]) -> None:
        sim = self.sim
        at = max(sim.now, self.busy_until) + sim.latency
        self.busy_until = at
        sim.schedule(at, _run_op, op, None)


def _run_op(op: Callable[[], object], _: object) -> None:
    op()


class Proc:
    __slots__ = ("breaker", "budget", "opened_at", "shared")

    breaker: CircuitBreaker
    budget: RetryBudget
    shared: SimShared | None

    def __init__(self) -> None:
        self.opened_at: float | None = None  # when this process's breaker first left closed


class Simulation:
    """One fleet size, one mode: build the processes, run the scenario, fill a :class:`Row`."""

    def __init__(self, settings: Settings, processes: int, shared: bool) -> None:
        s = settings
        self.s = s
        self.n = processes
        self.shared = shared
        self.latency = s.latency
        self.now = 0.0
        self.t_dead = s.warmup
        self.t_heal = s.warmup + s.dead
        self.t_end = s.warmup + s.dead + s.healed
        self.rng = random.Random(s.seed * 1_000_003 + processes * 2 + int(shared))
        self._heap: list[tuple[float, int, Callable[[Any, Any], None], Any, Any]] = []
        self._seq = itertools.count()
        self.dead = False
        self.healed = False
        self.fleet_opened_at: float | None = None
        self.first_open: float | None = None
        self.not_closed = 0
        self.recovered_at: float | None = None
        self.outstanding_probes = 0
        self.probe_starts: list[float] = []
        self.row = Row(processes, shared)
        self.commands_at_dead = 0
        self.published_at_dead = 0
        self._last_commands = 0
        self._last_ops: dict[str, int] = {}
        self.store: MemoryStore | None = None
        self.procs: list[Proc] = []
        self._subscribers: list[SimShared] = []
        self._build()

    # -- plumbing -------------------------------------------------------------------------------
    def clock(self) -> float:
        return self.now

    def schedule(self, at: float, action: Callable[[Any, Any], None], a: Any, b: Any) -> None:
        heapq.heappush(self._heap, (at, next(self._seq), action, a, b))

    def _publish(self, text: str) -> None:
        """The store published a change: every process gets it one delivery latency later."""
        if self.fleet_opened_at is None and self.dead:
            try:
                view = message_from(text, NAMESPACE).view
                if view is not None and view.state == OPEN:
                    self.fleet_opened_at = self.now
            except Invalid:  # pragma: no cover - the store's own messages are valid
                pass
        self.schedule(self.now + self.latency, self._fan_out, text, None)

    def _fan_out(self, text: str, _: object) -> None:
        self.row.deliveries += len(self._subscribers)
        for shared in self._subscribers:
            shared.deliver(text)

    def _build(self) -> None:
        s = self.s
        rng = self.rng
        timing = Timing(monotonic=self.clock, random=rng.random)
        breaker_policy, budget_policy = s.breaker_policy(), s.budget_policy()
        if self.shared:
            self.store = MemoryStore(self.clock, namespace=NAMESPACE, publish=self._publish)
        for i in range(self.n):
            proc = Proc()
            proc.breaker = CircuitBreaker(breaker_policy, name=f"p{i}", now=0.0, uniform=rng.uniform,
                                          on_change=self._listener(proc))
            proc.budget = RetryBudget(budget_policy, now=0.0)
            proc.shared = None
            if self.store is not None:
                proc.shared = SimShared(self.store, self, timing)
                proc.shared.endpoint(KEY, proc.breaker, proc.budget)
                self._subscribers.append(proc.shared)
            self.procs.append(proc)
            self.schedule(rng.expovariate(s.rate), self._arrive, proc, None)
        self.schedule(self.t_dead, self._die, None, None)
        self.schedule(self.t_heal, self._heal, None, None)
        for second in range(1, math.ceil(s.dead + s.healed) + 1):
            self.schedule(min(self.t_dead + second, self.t_end), self._tick, None, None)

    def _listener(self, proc: Proc) -> Callable[[str, str, dict[str, Any]], None]:
        def changed(old: str, new: str, detail: dict[str, Any]) -> None:
            if old == CLOSED:
                self.not_closed += 1
                if proc.opened_at is None:
                    proc.opened_at = self.now
                if self.first_open is None and self.dead:
                    self.first_open = self.now
            elif new == CLOSED:
                self.not_closed -= 1
                if self.healed and self.recovered_at is None and \
                        self.not_closed <= (1.0 - RECOVERED_SHARE) * self.n:
                    self.recovered_at = self.now

        return changed

    # -- the scenario ---------------------------------------------------------------------------
    def _die(self, _a: object, _b: object) -> None:
        self.dead = True
        if self.store is not None:
            self.commands_at_dead = self._last_commands = self.store.commands
            self.published_at_dead = self.store.published
            self.row.startup_commands = self.store.commands
            self.store.by_operation = {}

    def _heal(self, _a: object, _b: object) -> None:
        self.dead = False
        self.healed = True
        if self.not_closed <= (1.0 - RECOVERED_SHARE) * self.n:
            self.recovered_at = self.now

    def _tick(self, _a: object, _b: object) -> None:
        if self.store is None:
            return
        row, commands, ops = self.row, self.store.commands, self._operations()
        count = commands - self._last_commands
        if count > max(row.per_second, default=-1):
            row.busiest = {op: n - self._last_ops.get(op, 0) for op, n in ops.items()}
        row.per_second.append(count)
        self._last_commands, self._last_ops = commands, ops

    def _arrive(self, proc: Proc, _: object) -> None:
        now = self.now
        self.schedule(now + self.rng.expovariate(self.s.rate), self._arrive, proc, None)
        if now >= self.t_dead:
            self.row.calls += 1
        ticket = proc.breaker.admit(now)
        if ticket == REJECT:
            return
        proc.budget.deposit(now)
        self._send(proc, ticket, True)

    def _send(self, proc: Proc, ticket: int, first: bool) -> None:
        now = self.now
        row = self.row
        if ticket == PROBE:
            self.outstanding_probes += 1
        if self.dead:
            row.dead_requests += 1
            if not first:
                row.dead_retries += 1
            if proc.opened_at is not None:
                row.dead_known += 1
            elif self.fleet_opened_at is not None:
                row.dead_spreading += 1
            if ticket == PROBE:
                row.probes_dead += 1
                self.probe_starts.append(now)
                if self.outstanding_probes > row.max_concurrent_probes:
                    row.max_concurrent_probes = self.outstanding_probes
            self.schedule(now + self.s.fail_after, self._failed, proc, (ticket, first))
        else:
            self.schedule(now + self.s.serve_after, self._served, proc, ticket)

    def _served(self, proc: Proc, ticket: int) -> None:
        if ticket == PROBE:
            self.outstanding_probes -= 1
        proc.breaker.on_success(self.now, ticket)
        if self.healed:
            self.row.served_after_heal += 1

    def _failed(self, proc: Proc, how: tuple[int, bool]) -> None:
        ticket, first = how
        now = self.now
        if ticket == PROBE:
            self.outstanding_probes -= 1
        breaker = proc.breaker
        breaker.on_failure(now, ticket)
        # the in-region retry: only a closed breaker, only with a budget token, after the backoff
        if first and breaker.state is CLOSED and proc.budget.try_withdraw(now):
            self.schedule(now + self.rng.uniform(0.0, self.s.backoff), self._retry, proc, None)

    def _retry(self, proc: Proc, _: object) -> None:
        if proc.breaker.state is CLOSED:  # it opened while we waited: do not pile on
            self._send(proc, ADMIT, False)

    def _operations(self) -> dict[str, int]:
        assert self.store is not None
        return {op: self.store.by_operation.get(op, 0) for op in OPERATIONS}

    def run(self) -> Row:
        started = time.perf_counter()
        heap = self._heap
        pop = heapq.heappop
        end = self.t_end
        while heap:
            at, _, action, a, b = pop(heap)
            if at > end:
                break
            self.now = at
            action(a, b)
        self.now = end
        return self._finish(time.perf_counter() - started)

    def _finish(self, wall: float) -> Row:
        s, row = self.s, self.row
        row.wall_s = round(wall, 2)
        if self.first_open is not None:
            row.first_open_s = round(self.first_open - self.t_dead, 3)
            open_for = self.t_heal - self.first_open
            row.probes_per_s = round(row.probes_dead / open_for, 2) if open_for > 0 else 0.0
        gaps = [b - a for a, b in itertools.pairwise(self.probe_starts)]
        row.min_probe_gap_s = round(min(gaps), 3) if gaps else None
        if self.recovered_at is not None:
            row.recovery_s = round(self.recovered_at - self.t_heal, 3)
        row.closed_at_end = round(1.0 - self.not_closed / self.n, 3)
        if self.store is not None:
            row.commands = self.store.commands - self.commands_at_dead
            row.commands_per_s = round(row.commands / (s.dead + s.healed), 1)
            row.peak_commands_per_s = max(row.per_second, default=0)
            row.by_operation = self._operations()
            row.published = self.store.published - self.published_at_dead
        return row


def simulate(settings: Settings, processes: int, shared: bool) -> Row:
    """One fleet size in one mode. The library's loggers are quieted meanwhile (thousands of breakers
    each log their opening)."""
    logger = logging.getLogger("resilient_aws")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        return Simulation(settings, processes, shared).run()
    finally:
        logger.setLevel(level)


def run(settings: Settings, progress: Progress | None = None) -> list[Row]:
    """Every size in ``settings.sizes``, with shared state and (``settings.alone``) without."""
    progress = progress or Progress("fleet")
    modes = (True, False) if settings.alone else (True,)
    progress(f"{len(settings.sizes) * len(modes)} runs: {settings.warmup:g} s healthy, {settings.dead:g} s dead, "
             f"{settings.healed:g} s healed; {settings.rate:g} calls/s per process; seed {settings.seed}")
    rows = []
    for processes in settings.sizes:
        for shared in modes:
            row = simulate(settings, processes, shared)
            rows.append(row)
            mode = "shared" if shared else "alone"
            progress(f"{processes:>6} processes, {mode:<6}: dead requests {row.dead_requests:>7} "
                     f"(after open {row.dead_after_open:>6}), probes {row.probes_per_s:>7.2f}/s, recovery "
                     f"{cell(row.recovery_s)} s, store {row.commands_per_s:g} commands/s "
                     f"(peak {row.peak_commands_per_s}/s); {row.wall_s:.1f} s real time")
    return rows


# -- the report -----------------------------------------------------------------------------------------
def _recovery(row: Row, settings: Settings) -> str:
    if row.recovery_s is not None:
        return f"{row.recovery_s:.2f} s"
    return f"> {settings.healed:g} s ({row.closed_at_end:.0%} closed)"


@dataclass(frozen=True)
class Verdict:
    goal: str
    met: bool
    detail: str

    def line(self) -> str:
        return f"- **{self.goal}: {'met' if self.met else 'NOT met'}**: {self.detail}"


def verdicts(rows: Sequence[Row], settings: Settings) -> list[Verdict]:
    """One verdict per goal, computed from the rows with shared state of the smallest and the largest fleet."""
    shared = sorted((r for r in rows if r.shared), key=lambda r: r.processes)
    if not shared:
        return []
    s = settings
    small, large = shared[0], shared[-1]
    growth = large.processes / small.processes
    alone = {r.processes: r for r in rows if not r.shared}.get(large.processes)
    out = []

    known = large.dead_known / max(1, small.dead_known)
    spread = large.processes * s.rate * s.latency
    out.append(Verdict(
        "Requests to a dead endpoint stay flat once the breaker is open", known <= FLAT_FACTOR,
        f"after a process has heard of the opening, {small.dead_known:,} requests reach the dead endpoint with "
        f"{small.processes:,} processes and {large.dead_known:,} with {large.processes:,} ({known:.1f}x for a "
        f"{growth:g}x fleet; flat is <= {FLAT_FACTOR:g}x), all of them probes. In the {s.latency * 1000:g} ms the "
        f"opening takes to reach every process, {small.dead_spreading:,} and {large.dead_spreading:,} more "
        f"(about processes x rate x latency = {spread:,.0f} at {large.processes:,}). Before the fleet opened "
        f"({cell(large.first_open_s)} s after the death at {large.processes:,}): {small.dead_detecting:,} and "
        f"{large.dead_detecting:,}, the detection, which grows with the fleet whatever a breaker does"
        + (f". Alone, {large.processes:,} processes send {alone.dead_after_open:,} after their breakers opened "
           f"({alone.dead_requests:,} in all)." if alone else ".")))

    probes = large.probes_per_s / small.probes_per_s if small.probes_per_s else math.inf
    concurrent = max(r.max_concurrent_probes for r in shared)
    out.append(Verdict(
        "Probes stay flat", probes <= FLAT_FACTOR and concurrent <= 1,
        f"{small.probes_per_s:g} probes/s with {small.processes:,} processes, {large.probes_per_s:g} with "
        f"{large.processes:,} (one per open_time = {s.open_time:g} s is {1 / s.open_time:g}/s); at most "
        f"{concurrent} in flight fleet-wide at any time"
        + (f"; alone, {alone.probes_per_s:g} probes/s." if alone else ".")))

    ranked = sorted(large.busiest.items(), key=lambda kv: -kv[1])
    top = ", ".join(f"{name} {count:,}" for name, count in ranked[:3] if count)
    if large.processes >= 10_000:
        met = large.peak_commands_per_s < REDIS_LIMIT
        where = f"{large.processes:,} processes:"
    else:  # the busiest second is the detection's burst, which grows with the fleet: extrapolate linearly
        met = large.peak_commands_per_s / large.processes * 10_000 < REDIS_LIMIT
        where = (f"not measured at 10,000; {large.processes:,} processes, x{10_000 / large.processes:g} makes "
                 f"{large.peak_commands_per_s / large.processes * 10_000:,.0f} in the busiest second there;")
    out.append(Verdict(
        f"Redis load at 10,000 processes under {REDIS_LIMIT:,.0f} commands/s", met,
        f"{where} {large.peak_commands_per_s:,} commands in the busiest second, {large.commands_per_s:,.0f}/s on "
        f"average over {s.dead + s.healed:g} s ({large.commands_per_process_s:.3f} per process per second); in the "
        f"busiest second: {top or 'nothing'}; plus {large.startup_commands:,} during the healthy start."))
    return out


def report(settings: Settings, progress: Progress | None = None) -> str:
    """Both scenarios, warm (``settings.warmup``) then cold (no warm-up), as RESULTS.md shows them."""
    parts = []
    for title, chosen in (("Warm: the endpoint dies while the fleet serves", settings),
                          ("Cold: the fleet starts against a dead endpoint",
                           dataclasses.replace(settings, warmup=0.0))):
        parts += [f"#### {title}", "", markdown(run(chosen, progress), chosen)]
    return "\n".join(parts)


def markdown(rows: Sequence[Row], settings: Settings) -> str:
    """The tables, the conditions and the verdicts, as RESULTS.md shows them."""
    s = settings
    shared = sorted((r for r in rows if r.shared), key=lambda r: r.processes)
    alone = {r.processes: r for r in rows if not r.shared}
    lines = [
        f"Fleet simulation: N processes, each with the library's own breaker, retry budget and shared state, on "
        f"one simulated clock, sharing an in-memory store (MemoryStore, the Redis scripts' contract) that counts "
        f"its commands as Redis would. Each process offers {s.rate:g} calls/s (Poisson). The endpoint serves for "
        f"{s.warmup:g} s, is dead for {s.dead:g} s (every attempt fails after {s.fail_after * 1000:g} ms), then "
        f"healed for {s.healed:g} s (answers in {s.serve_after * 1000:g} ms). Store round trip and pub/sub "
        f"delivery {s.latency * 1000:g} ms. BreakerPolicy(open_time={s.open_time:g}, min_calls={s.min_calls}), "
        f"default BudgetPolicy; a failed first attempt retries once if the breaker is closed and the budget "
        f"pays (backoff up to {s.backoff * 1000:g} ms). Seed {s.seed}.",
        "",
        "Requests to the dead endpoint (first attempts, retries and probes), with shared state and alone (no "
        "store): *before the open* is the detection; *spreading* went out after the store opened the fleet's "
        "breaker, before the process heard; *after* went out once the process's breaker was open.",
        "",
        "| processes | requests | before the open | spreading | after | opened after | probes/s while open "
        "| most probes at once | recovery (95 % closed) | alone: requests | alone: after | alone: probes/s "
        "| alone: recovery |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in shared:
        a = alone.get(r.processes)
        alone_cells = ("| - | - | - | - |" if a is None else
                       f"| {a.dead_requests:,} | {a.dead_after_open:,} | {a.probes_per_s:g} | {_recovery(a, s)} |")
        lines.append(f"| {r.processes:,} | {r.dead_requests:,} | {r.dead_detecting:,} | {r.dead_spreading:,} "
                     f"| {r.dead_known:,} | {cell(r.first_open_s, '.2f')} s | {r.probes_per_s:g} "
                     f"| {r.max_concurrent_probes} | {_recovery(r, s)} {alone_cells}")
    lines += [
        "",
        f"Store commands with shared state over the {s.dead + s.healed:g} s from the death (startup: commands "
        "during the healthy start; a process that attaches reads nothing):",
        "",
        "| processes | commands/s | busiest second | per process per s | " + " | ".join(OPERATIONS)
        + " | published | delivered | startup | real time |",
        "| ---: | ---: | ---: | ---: | " + " | ".join("---:" for _ in OPERATIONS) + " | ---: | ---: | ---: | ---: |",
    ]
    for r in shared:
        ops = " | ".join(f"{r.by_operation.get(op, 0):,}" for op in OPERATIONS)
        wall = r.wall_s + (alone[r.processes].wall_s if r.processes in alone else 0.0)
        lines.append(f"| {r.processes:,} | {r.commands_per_s:,.1f} | {r.peak_commands_per_s:,} "
                     f"| {r.commands_per_process_s:.3f} | {ops} | {r.published:,} | {r.deliveries:,} "
                     f"| {r.startup_commands:,} | {wall:.1f} s |")
    lines += ["", *(v.line() for v in verdicts(rows, s))]
    return "\n".join(lines) + "\n"
