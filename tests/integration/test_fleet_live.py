"""Issue 10's proof with real parts: 8 OS processes x 4 threads, moto behind a loopback endpoint, the
loopback DNS server and a real redis-server, each process with its own ``resilient_aws.Session(...,
shared_state=RedisState(url, namespace))`` (``resilient_aws.testing.fleet``).

What is counted where: requests by the endpoint itself (its counters, sampled every 10 ms, each request
tagged with its process); calls, their latency and errors, and breaker transitions by the processes;
Redis commands by Redis (``INFO commandstats``). Thresholds come from the policies; every test prints
its figures before it asserts, so a failing CI log explains itself.

a. 503 everywhere: the fleet stops after min_calls + in-flight requests (alone: min_calls per process),
   then probes once per open time; b. after the heal (503, refused) every process is back within two
   open times (median of 5); c. breaker off: attempts per call within 1 + ratio + one fleet floor;
d. a process started after the DNS record emptied reads through the fleet's last good address;
e. Redis killed (or stalled) mid-outage, then back: no call fails or waits on it, sharing resumes;
f. 10,000 healthy calls: no store command beyond the DNS publishes.

Load: every process runs ``THREADS`` threads offering ``RATE`` calls/s each (160 calls/s for the fleet),
about half of what the endpoint (moto and its front, in this pytest process) serves on the 2-core
machine, so that timings measure the library rather than a saturated CPU. The full 8 x 4 fleet runs
here; the whole file takes about two minutes on it, a quarter of that the 10,000 calls of the last test.
"""

from __future__ import annotations

import gc
import logging
import random
import time
from dataclasses import replace

import pytest

from resilient_aws import BreakerPolicy, BudgetPolicy, Policy, RetryPolicy
from resilient_aws.fleet.redis_store import RedisStore
from resilient_aws.fleet.shared import DnsLink
from resilient_aws.testing.drill_env import outage_drill
from resilient_aws.testing.fleet import (
    CallRecord,
    EndpointTimeline,
    FaultPhases,
    Fleet,
    FleetPlan,
    FleetResult,
    PhaseMark,
    max_in_window,
    median,
    percentile,
)

PROCESSES = 8
THREADS = 4
RATE = 5.0
REGION = "us-east-1"
TABLE = "fleet"
KEY = {"pk": {"S": "k"}}
OPEN_TIME = 1.0
#: The issue's breaker: the fleet opens after ``min_calls`` failures, probes once per ``open_time``.
BREAKER = BreakerPolicy(min_calls=20, open_time=OPEN_TIME)
#: The same with a short window, for tests that break an endpoint right after healthy traffic: the
#: breaker opens once failures are ``failure_ratio`` of the window, so a 10 s window full of successes
#: would take seconds to open (that part is the same with or without sharing).
QUICK = replace(BREAKER, window=2.0)
#: Errors an endpoint outage gives a caller; anything else (a Redis error above all) is a bug here.
OUTAGE_ERRORS = {"botocore.exceptions.ClientError:ServiceUnavailable", "resilient_aws.errors.CircuitOpenError",
                 "botocore.exceptions.EndpointConnectionError", "botocore.exceptions.ConnectionClosedError"}
OPEN_REASON_FLEET = "opened by the fleet"


# -- the world -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module", autouse=True)
def steady_endpoint():
    """The endpoint (moto and its front) runs in this process, so its latency is part of every figure.
    Keep it steady: no log record per request (an earlier test may have let werkzeug log each one), and
    no long garbage collection of the heap a whole suite leaves behind (frozen, so not scanned again)."""
    werkzeug_log = logging.getLogger("werkzeug")
    level = werkzeug_log.level
    werkzeug_log.setLevel(logging.WARNING)
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()
    werkzeug_log.setLevel(level)


@pytest.fixture(scope="module")
def drill():
    with outage_drill(regions=(REGION,)) as d:
        d.create_table(TABLE, [{**KEY, "v": {"S": "x"}}])
        yield d


@pytest.fixture(scope="module")
def timeline(drill):
    with EndpointTimeline(drill.endpoint(REGION)) as t:
        yield t


@pytest.fixture(scope="module")
def fleet():
    with Fleet(PROCESSES) as f:
        yield f


@pytest.fixture
def phases(drill, fleet):
    """The faults, switched by the test; afterwards the fleet is halted and the endpoint healthy again."""
    p = FaultPhases(drill, REGION)
    yield p
    fleet.halt()
    p.set("healthy")


def plan(drill, redis_url: str | None, breaker: BreakerPolicy = BREAKER, policy: Policy | None = None,
         **options) -> FleetPlan:
    """Every process: ``THREADS`` threads x ``RATE`` GetItem/s, in a namespace of its own (a new fleet)."""
    options = {"threads": THREADS, "rate": RATE, **options}
    return FleetPlan.for_drill(drill, policy=policy or Policy(breaker=breaker), table=TABLE, key=KEY,
                               redis_url=redis_url, **options).with_namespace()


# -- measuring -------------------------------------------------------------------------------------------------
def warnings(result) -> list[str]:
    """What the workers logged about shared state (an unreachable Redis explains a second prober)."""
    return [f"{g.worker}: {g.message}" for g in result.logs if "shared state" in g.message]


def all_opened(fleet: Fleet, since: float, timeout: float) -> dict:
    """Wait (bounded) until every process's breaker opened after ``since``; its openings."""
    fleet.wait_until(lambda r: len(r.openings_after(since)) >= len(fleet.names), timeout, interval=0.1)
    return fleet.result.openings_after(since)


def all_returned(fleet: Fleet, since: float, timeout: float) -> dict[str, float | None]:
    """Wait (bounded) until every process had a successful call after ``since``; seconds to each."""
    fleet.wait_until(lambda r: None not in r.return_after(since, fleet.names).values(), timeout, interval=0.1)
    return fleet.result.return_after(since, fleet.names)


def strict_window(timeline: EndpointTimeline, open_time: float) -> float:
    """"One probe per ``open_time``" with the timeline's 10 ms sampling: two probes ``open_time`` apart
    may be seen up to two samples closer."""
    return open_time - 2 * timeline.interval


def kind_of(call: CallRecord) -> str:
    return "ok" if call.ok else (call.error or "?").rsplit(".", 1)[-1]


def slowest_by_kind(result: FleetResult) -> dict[str, float]:
    """The slowest call (ms) of each kind: served, or failed with each error."""
    out: dict[str, float] = {}
    for c in result.calls:
        out[kind_of(c)] = max(out.get(kind_of(c), 0.0), round(c.latency * 1000, 1))
    return out


def redis_commands(server) -> dict[str, int]:
    """Redis's command counts, less the ones this test's own look-ups make (a connection each)."""
    return {k: v for k, v in server.commandstats().items() if k not in ("hello", "info", "config|resetstat")}


def show(title: str, **figures) -> None:
    print(f"\n[{title}] " + ", ".join(f"{k}={v}" for k, v in figures.items()), flush=True)


# -- a. one fleet opening, one probe per open interval ----------------------------------------------------------
def test_a_503_the_fleet_opens_after_min_calls_and_probes_once_per_open_time(drill, fleet, timeline, phases,
                                                                            redis_server):
    # The endpoint fails before the fleet arrives, so every breaker window starts empty and
    # min_calls is what opens it (after healthy traffic, failure_ratio of the window is: test b).
    in_flight = PROCESSES * THREADS               # one attempt per thread may be under way at the opening
    silence = BREAKER.open_time * (1 - BREAKER.open_jitter) / 2   # no probe comes this soon after an opening
    observe = 4 * BREAKER.open_time
    figures = {}
    for shared in (True, False):
        phases.set("503")
        t_base = time.monotonic()
        t0 = fleet.run(plan(drill, redis_server.url if shared else None))
        openings = all_opened(fleet, t_base, timeout=10 * BREAKER.open_time)
        time.sleep(max(0.0, t0 + observe - time.monotonic()))
        result = fleet.halt()
        t1 = time.monotonic()
        timeline.sample_now()
        burst, quiet = timeline.opening_burst(t_base, t1, silence)
        probes = timeline.count(quiet, t1)
        worst = timeline.max_in_window(quiet, t1, strict_window(timeline, BREAKER.open_time))
        by_fleet = sum(1 for e in openings.values() if e.detail.get("reason") == OPEN_REASON_FLEET)
        figures[shared] = (burst, worst)
        show("a shared" if shared else "a alone", requests_until_all_stopped=burst,
             per_process=timeline.by_tag(t_base, quiet), all_stopped_after=f"{quiet - t0:.3f}s",
             processes_opened=len(openings), opened_by_the_fleet=by_fleet,
             probes=f"{probes} in {t1 - quiet:.2f}s", most_probes_in_one_open_time=worst,
             calls=result.summary())
        assert len(openings) == PROCESSES, "every process's breaker opens"
        assert set(result.errors()) <= OUTAGE_ERRORS
        if shared:
            assert burst <= BREAKER.min_calls + in_flight
            assert worst <= 1, f"one probe per open interval for the whole fleet; warnings: {warnings(result)}"
            assert probes <= (t1 - quiet) / BREAKER.open_time + 1
        else:  # each process opens on its own window: min_calls failures each, and probes on its own
            assert burst >= PROCESSES * BREAKER.min_calls
            assert worst > 1
    show("a", shared_vs_alone=f"{figures[True][0]} vs {figures[False][0]} requests before the fleet stopped")


# -- b. fast return after heal ------------------------------------------------------------------------------------
@pytest.mark.parametrize("fault", ["503", "refused"])
def test_b_traffic_returns_within_two_open_times_of_the_heal(drill, fleet, timeline, phases, redis_server, fault):
    runs = 5
    bound = 2 * QUICK.open_time
    fleet.run(plan(drill, redis_server.url, breaker=QUICK))
    assert None not in all_returned(fleet, 0.0, timeout=5.0).values()
    rng = random.Random(f"b-{fault}")
    returns, firsts, rows = [], [], []
    for i in range(runs):
        t_fault = phases.set(fault)
        openings = all_opened(fleet, t_fault, timeout=4 * QUICK.window + QUICK.open_time)
        assert len(openings) == PROCESSES, f"run {i}: every breaker opens ({len(openings)} did)"
        t_open = max(e.t for e in openings.values())
        time.sleep(rng.uniform(QUICK.open_time, 2 * QUICK.open_time))  # heal anywhere in the probe cycle
        heal = phases.set("healed")
        returned = all_returned(fleet, heal, timeout=4 * QUICK.open_time)
        result = fleet.result
        # requests in flight when the last breaker opened arrive within the slowest call of that time
        settle = max((c.latency for c in result.between(t_fault, t_open).calls), default=0.0)
        # (and the timeline counts a request at the first sample after it arrived: one interval more)
        down_from, down_to = t_open + settle + timeline.interval, phases.mark("healed").before
        if fault == "503":
            probe_times = timeline.arrivals(down_from, down_to)
            probes = sum(n for _, n in probe_times)
            worst = timeline.max_in_window(down_from, down_to, strict_window(timeline, QUICK.open_time))
        else:  # refused connections never reach an HTTP server: the processes' own attempts are the probes
            probe_times = [(c.start, 1) for c in result.between(down_from, down_to).calls
                           if c.error and "CircuitOpenError" not in c.error]
            probes = len(probe_times)
            worst = max_in_window(sorted(probe_times), strict_window(timeline, QUICK.open_time))
        last = float("inf") if None in returned.values() else max(v for v in returned.values() if v is not None)
        first = (result.first_success_after(heal) or float("inf")) - heal
        returns.append(last)
        firsts.append(first)
        rows.append(f"run {i}: down {down_to - t_open:.2f}s, probes {probes} (most in one open time {worst}), "
                    f"first success {first:.3f}s, every process {last:.3f}s after the heal")
        print(f"  b {fault} {rows[-1]}", flush=True)
        assert worst <= 1, (f"run {i}: the fleet probed more than once per open time: {probe_times}; "
                            f"warnings: {warnings(result.between(t_fault))}")
        assert probes <= (down_to - down_from) / QUICK.open_time + 1
    show(f"b {fault}", median_return=f"{median(returns):.3f}s", bound=f"{bound:.1f}s",
         median_first_success=f"{median(firsts):.3f}s", runs=runs)
    assert median(returns) <= bound
    assert set(fleet.result.errors()) <= OUTAGE_ERRORS


# -- c. breaker off: the retry floor counted once for the fleet ---------------------------------------------------
def test_c_breaker_off_attempts_per_call_stay_within_ratio_and_one_fleet_floor(drill, fleet, timeline, phases,
                                                                                redis_server):
    budget = BudgetPolicy(ratio=0.1, min_per_second=1.0, window=30.0)  # one budget window spans the run
    policy = Policy(breaker=BreakerPolicy(enabled=False), budget=budget,
                    retry=RetryPolicy(max_attempts=3, base_delay=0.0, max_delay=0.0))
    duration = 4.0
    measured = {}
    for shared in (True, False):
        phases.set("503")
        t_base = time.monotonic()
        t0 = fleet.run(plan(drill, redis_server.url if shared else None, policy=policy))
        time.sleep(duration)
        result = fleet.halt()
        t1 = time.monotonic()
        timeline.sample_now()
        calls, requests = len(result.calls), timeline.count(t_base, t1)
        floor = budget.min_per_second * (budget.window + (t1 - t0))  # the bucket, and what it refills meanwhile
        bound = calls * (1 + budget.ratio) + floor
        beyond_ratio = requests - calls * (1 + budget.ratio)
        measured[shared] = beyond_ratio
        show("c shared" if shared else "c alone", calls=calls, requests=requests,
             attempts_per_call=f"{requests / calls:.3f}", bound=f"{bound:.0f} ({bound / calls:.3f}/call)",
             beyond_ratio=f"{beyond_ratio:.0f} (one fleet floor: {floor:.0f})",
             retries={w: r.stats["retries"] for w, r in result.reports.items()})
        assert result.failed == calls  # a dead endpoint, no breaker: every call fails, after its attempts
        if shared:
            assert requests <= bound
        else:  # each process has a floor of its own: the fleet's retries beyond the ratio multiply
            assert beyond_ratio > floor
    assert measured[True] < measured[False]


# -- d. a cold process during a DNS outage reads through the fleet's last good answer --------------------------
def test_d_a_process_started_after_dns_emptied_reads_through_the_fleets_last_known_good(drill, fleet, timeline,
                                                                                         phases, redis_server):
    the_plan = plan(drill, redis_server.url)
    host = drill.host_name(REGION)
    fleet.run(the_plan)
    assert None not in all_returned(fleet, 0.0, timeout=5.0).values()
    store = RedisStore(redis_server.url, namespace=the_plan.namespace, timeout=1.0)
    try:  # the fleet published its answer: what a cold process will read (bounded wait: it is asynchronous)
        deadline = time.monotonic() + 5.0
        while store.dns_get(host) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert store.dns_get(host) is not None
    finally:
        store.close()
    t_empty = phases.set("dns_empty")
    late = lone = None
    try:
        late = fleet.add_worker()                                              # with the fleet's shared state
        lone = fleet.add_worker(replace(the_plan, redis_url=None), name="lone")  # on its own, for comparison
        fleet.wait_until(lambda r: min(len(r.of(late).calls), len(r.of(lone).calls)) >= 2 * THREADS, 10.0)
        result = fleet.halt([late, lone])
        timeline.sample_now()
        mine, alone = result.of(late), result.of(lone)
        dns = result.reports[late].stats["dns"]
        served = timeline.count(t_empty, time.monotonic(), tag=late)
        show("d", late=mine.summary(), requests_served_to_late=served, late_dns=dns, alone=alone.summary())
        assert mine.calls and mine.failed == 0, "every read of the late process succeeded"
        assert served >= mine.succeeded, "and reached the primary endpoint"
        assert dns["fleet_loads"] == 1 and dns["failures_by_kind"].get("empty", 0) >= 1, \
            "its own lookup got the empty answer: the addresses came from the fleet"
        assert alone.calls and alone.succeeded == 0, "a cold process on its own cannot resolve the name"
    finally:
        fleet.retire([w for w in (late, lone) if w])


# -- e. Redis dies mid-outage and comes back ------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["killed", "stalled"])
def test_e_redis_lost_mid_outage_costs_no_call_and_sharing_resumes(drill, fleet, timeline, phases, own_redis_server,
                                                                    how):
    # killed: SIGKILL, then a restart on the same port, empty (connections refused meanwhile: no wait at all);
    # stalled: SIGSTOP, then SIGCONT (connections accepted, nothing answered: every Redis call waits its timeout)
    redis = own_redis_server
    lose, recover = (redis.kill, redis.start) if how == "killed" else (redis.stall, redis.resume)
    the_plan = plan(drill, redis.url, breaker=QUICK)
    timeout = the_plan.redis_timeout
    t0 = fleet.run(the_plan)
    fleet.watch(1.0)  # healthy; the parent busy as it will be below (the endpoint runs in it)

    def outage(lost: bool) -> tuple[PhaseMark, float, float, dict[str, float | None]]:
        """503 until the fleet is open; then (Redis lost or not) two open times more; heal; every process
        back. The same shape twice, so that calls are compared with calls of the same kind and moment."""
        t_fault = phases.set("503")
        fault = phases.marks[-1]
        assert len(all_opened(fleet, t_fault, timeout=4 * QUICK.window)) == PROCESSES
        fleet.watch(QUICK.open_time / 2)  # the middle of the outage
        t_lost = time.monotonic()
        if lost:
            lose()
        fleet.watch(2 * QUICK.open_time)  # still 503: probes (each process's own if Redis is lost)
        heal = phases.set("healed")
        # local rules: a failed probe doubles the open time, so the return may take two open times more
        returned = all_returned(fleet, heal, timeout=4 * QUICK.open_time * (1 + QUICK.open_jitter) + 1)
        assert None not in returned.values(), returned
        fleet.watch(QUICK.open_time / 2)
        return fault, t_lost, heal, returned

    fault, _, _, _ = outage(lost=False)           # the control: Redis up all along
    _, t_lost, heal, returned = outage(lost=True)
    t_all_back = heal + max(v for v in returned.values() if v is not None)
    t_recover = time.monotonic()
    recover()
    up_within = the_plan.reconnect_interval * 1.5 + 2.0  # RedisState's reconnect interval, jittered by 50 %
    assert fleet.wait_until(lambda r: all(s["shared"]["up"] for s in fleet.status().values()), up_within,
                            interval=0.1), f"every process reconnects within {up_within:.1f} s"
    t_up = time.monotonic()
    fleet.watch(QUICK.open_time / 2)
    # sharing again: with the windows emptied (a pause as long as the window), a 503 opens the whole fleet
    # after min_calls failures, as in test a, if the opening reaches every process through Redis
    t_pause = fleet.pause()
    time.sleep(QUICK.window)
    phases.set("503")
    t_base = time.monotonic()
    fleet.resume()
    openings = all_opened(fleet, t_base, timeout=4 * QUICK.window)
    time.sleep(QUICK.open_time / 2)
    timeline.sample_now()
    burst, _ = timeline.opening_burst(t_base, time.monotonic(), QUICK.open_time * (1 - QUICK.open_jitter) / 2)
    phases.set("healed")
    result = fleet.halt()

    down = result.between(t_lost, t_up)
    up = FleetResult(result.between(t0, t_lost).calls + result.between(t_up, t_base).calls)
    healthy = ([c for c in result.calls if t0 <= c.start and c.end < fault.before]           # before the 503
               + result.between(t_all_back, t_recover).calls                                # back, no Redis
               + result.between(t_up, t_pause).calls)                                       # Redis back
    shared = {w: r.shared or {} for w, r in result.reports.items()}
    # like with like: each kind of call (served, 503, failed fast) while Redis was lost against the slowest
    # of its kind while Redis was up; what Redis may add to any call is its timeout. A call that was under
    # way while the endpoint's own process (this one) stood still longer than that was slowed by the
    # endpoint, whatever Redis did: it is excused, and shown.
    slowest_up, slowest_down = slowest_by_kind(up), slowest_by_kind(down)
    pauses = timeline.gaps(t0, t_base, longer_than=timeout)
    over = [c for c in down.calls if c.latency * 1000 > slowest_up.get(kind_of(c), max(slowest_up.values()))
            + timeout * 1000]
    excused = [c for c in over if any(c.start < g1 and g0 < c.end for g0, g1 in pauses)]
    by_fleet = sum(1 for e in openings.values() if e.detail.get("reason") == OPEN_REASON_FLEET)
    show(f"e {how}", errors=dict(result.errors()),
         latency_redis_up=f"p99 {percentile(up.latencies(), 0.99) * 1000:.1f} ms, slowest by kind {slowest_up}",
         latency_redis_lost=f"p99 {percentile(down.latencies(), 0.99) * 1000:.1f} ms, slowest by kind {slowest_down} "
                            f"({len(down.calls)} calls)",
         redis_timeout=f"{timeout * 1000:.0f} ms",
         slower_than_allowed=f"{len(over)} ({len(excused)} during pauses of the endpoint's process: "
                             f"{[(round(g0 - t_lost, 2), round((g1 - g0) * 1000)) for g0, g1 in pauses]})",
         healthy_calls=f"{len(healthy)}, failed {sum(not c.ok for c in healthy)}",
         returned_after_heal={w: round(v, 3) for w, v in returned.items() if v is not None},
         reconnected_after=f"{t_up - t_recover:.2f}s", reopening_burst=burst,
         reopened_by_the_fleet=f"{by_fleet}/{len(openings)}",
         shared_state={w: (x.get("outages"), x.get("recoveries"), x.get("messages")) for w, x in shared.items()},
         warnings=[g.message[:90] for g in result.logs if "shared state" in g.message][:2])
    assert set(result.errors()) <= OUTAGE_ERRORS, "no call failed because of Redis"
    assert healthy and all(c.ok for c in healthy), "with the endpoint healthy, every call succeeded"
    assert down.calls and up.calls
    assert [c for c in over if c not in excused] == [], "no call waited on the lost Redis longer than its timeout"
    assert all(x.get("outages", 0) >= 1 and x.get("recoveries", 0) >= 1 for x in shared.values()), \
        "every process noticed, went local, and came back"
    assert len(openings) == PROCESSES
    assert by_fleet >= PROCESSES // 2, "after the restart, an opening reaches the other processes again"
    assert burst <= QUICK.min_calls + PROCESSES * THREADS


# -- f. the success path makes no Redis round trip ---------------------------------------------------------------
def test_f_ten_thousand_healthy_calls_cost_redis_no_evalsha(drill, fleet, timeline, phases, redis_server):
    calls_wanted = 10_000
    the_plan = plan(drill, redis_server.url, rate=None)  # back to back: as many calls as the endpoint serves
    republish = DnsLink(None, the_plan.policy.dns).republish  # how often an unchanged DNS answer is published
    fleet.run(the_plan)
    assert None not in all_returned(fleet, 0.0, timeout=5.0).values()
    # every process resolved and published its DNS answer (asynchronously): wait until nothing is queued
    assert fleet.wait_until(lambda r: all(s["shared"]["queued"] == 0 and s["shared"]["calls"] >= 1
                                          for s in fleet.status().values()), 5.0)
    before = {w: s["shared"]["calls"] for w, s in fleet.status().items()}
    redis_server.reset_stats()
    t_start = time.monotonic()
    skip = len(fleet.collect().calls)
    marks: list[tuple[int, dict[str, int]]] = []

    def count(r: FleetResult) -> bool:
        marks.append((len(r.calls) - skip, redis_commands(redis_server)))
        return marks[-1][0] >= calls_wanted

    assert fleet.wait_until(count, timeout=calls_wanted / 100, interval=0.5), "10,000 calls within the bound"
    after = {w: s["shared"]["calls"] for w, s in fleet.status().items()}
    elapsed = time.monotonic() - t_start
    result = fleet.halt()
    n, final = marks[-1]
    tenth = next(m for m in marks if m[0] >= calls_wanted // 10)
    evalsha = final.get("evalsha", 0)
    allowed = PROCESSES * (elapsed // republish + 1)  # at most one DNS republish per process per interval
    show("f", calls=n, seconds=f"{elapsed:.1f}", redis_commands=final, evalsha_after_a_tenth=tenth[1].get("evalsha", 0),
         store_operations_per_process={w: after[w] - before[w] for w in after}, allowed_evalsha=allowed,
         calls_summary=result.summary())
    assert result.failed == 0
    assert evalsha <= allowed, "only the batched DNS publishes talk to Redis on the success path"
    assert evalsha - tenth[1].get("evalsha", 0) <= PROCESSES, "and their number does not grow with the calls"
    assert final.get("publish", 0) == 0, "no breaker changed"
    assert all(after[w] - before[w] <= elapsed // republish + 1 for w in after)
