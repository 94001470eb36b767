"""Tasks against real servers on loopback: one probe at a time, cancellation frees it, no lost counts.

The asyncio port of ``tests/integration/test_concurrency_live.py``, plus what only tasks can do: a
thousand of them asking an open breaker at once, and a task cancelled while it holds (or is about to
take) the breaker's probe. The servers are the ground truth: moto behind a
:class:`~resilient_aws.testing.aws.LoopbackEndpoint` (counts per second, fault modes) and the
:class:`~resilient_aws.testing.http.CountingHttpServer` (requests and the most it ever had in flight).

Breakers here open for exactly ``OPEN`` seconds (no jitter, no doubling), so "one probe per open
period" is a bound the server's timeline can check.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter

import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import ClientError
from support.aws import NO_DNS
from support.moto_state import tables_left_as_found

from resilient_aws import BreakerPolicy, BudgetPolicy, CircuitOpenError, Policy, RetryPolicy, Timing, aio
from resilient_aws.events import BREAKER_STATE
from resilient_aws.testing.aws import TEST_CREDENTIALS, seed_regions, start_region_endpoints

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

EAST, WEST = "us-east-1", "us-west-2"
TABLE = "aio-concurrency"
KEY = {"TableName": TABLE, "Key": {"pk": {"S": "1"}}}
OPEN = 0.2
BREAKER = BreakerPolicy(min_calls=5, open_time=OPEN, max_open_time=OPEN, open_jitter=0.0)
FAST = RetryPolicy(base_delay=0.0, max_delay=0.0)
TASKS = 1000
WAIT = 30.0  # the bound of every wait on a task or a condition: a hang fails the test, it never stalls the suite


# -- servers -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def regions():
    """us-east-1 on 127.0.0.1 and us-west-2 on 127.0.0.2 (moto behind each), the table in both."""
    with tables_left_as_found((EAST, WEST)):
        endpoints = start_region_endpoints([EAST, WEST])
        try:
            seed_regions(endpoints, TABLE, [{"pk": {"S": "1"}}])
            yield endpoints
        finally:
            for ep in endpoints.values():
                ep.stop()


@pytest.fixture
def endpoints(regions):
    """The module's endpoints, healthy, with zeroed counts."""
    for ep in regions.values():
        ep.healthy()
        ep.reset_counts()
    yield regions
    for ep in regions.values():
        ep.healthy()


# -- helpers -----------------------------------------------------------------------------------------
def _session(policy: Policy, *, failover: tuple[str, ...] = (), timing: Timing | None = None) -> aio.Session:
    return aio.Session(region_name=EAST, failover_regions=list(failover), policy=policy, timing=timing,
                       **TEST_CREDENTIALS)


def _policy(retry: RetryPolicy = FAST, budget: BudgetPolicy | None = None) -> Policy:
    return Policy(retry=retry, breaker=BREAKER, budget=budget or BudgetPolicy(), dns=NO_DNS)


def _pool(connections: int = 16) -> AioConfig:
    return AioConfig(max_pool_connections=connections, connect_timeout=5, read_timeout=10)


async def _open_breaker(client, region: str = EAST, limit: int = 50) -> None:
    """Call until ``region``'s breaker is open (bounded: a breaker that never opens fails the test)."""
    for _ in range(limit):
        if client.stats()["regions"][region]["breaker"] == "open":
            return
        with contextlib.suppress(ClientError, CircuitOpenError):
            await client.get_item(**KEY)
    pytest.fail(f"{region}'s breaker did not open within {limit} calls")


async def _until(condition, what: str, timeout: float = WAIT) -> None:
    """Poll ``condition()`` every few milliseconds until it holds; fail naming ``what`` after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


def _count_probes(client) -> list[object]:
    """The list the client's half-open transitions (one per probe admitted) are appended to."""
    probes: list[object] = []
    client.add_listener(lambda e: probes.append(e) if e.kind == BREAKER_STATE and e.detail.get("to") == "half_open"
                        else None)
    return probes


async def _gather(tasks) -> list[object]:
    """Every task's result or exception, within ``WAIT`` seconds."""
    return await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), WAIT)


def _outcome(result: object) -> str:
    if isinstance(result, CircuitOpenError):
        return "circuit_open"
    if isinstance(result, ClientError):
        return f"http_{result.response['ResponseMetadata']['HTTPStatusCode']}"
    if isinstance(result, BaseException):
        return repr(result)
    return "ok"


class ParkingSleep:
    """``Timing.asleep`` that, once armed, parks the next backoff until the sleeping task is cancelled
    (``parked`` is set when it does, ``delays`` records what it was asked to sleep); unarmed, it
    returns at once."""

    def __init__(self) -> None:
        self.armed = False
        self.parked = asyncio.Event()
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        if not self.armed:
            await asyncio.sleep(0)
            return
        self.armed = False
        self.parked.set()
        await asyncio.Event().wait()  # only a cancel ends this sleep


# -- one probe at a time -----------------------------------------------------------------------------
async def test_a_thousand_tasks_released_together_after_the_open_time_send_exactly_one_probe(counting_server):
    server = counting_server(status=503)
    async with _session(_policy()).create_client("dynamodb", endpoint_url=server.url, config=_pool()) as client:
        await _open_breaker(client)
        server.delay = 0.5                  # the probe stays in flight while the other 999 ask
        server.requests = server.peak_in_flight = 0
        await asyncio.sleep(OPEN * 1.5)     # the open time is up: the next call is the probe
        go = asyncio.Event()

        async def call() -> object:
            await go.wait()
            return await client.get_item(**KEY)

        tasks = [asyncio.create_task(call()) for _ in range(TASKS)]
        await asyncio.sleep(0)
        go.set()
        outcomes = Counter(_outcome(r) for r in await _gather(tasks))
    assert outcomes == {"circuit_open": TASKS - 1, "http_503": 1}
    assert server.requests == 1
    assert server.peak_in_flight == 1


async def test_a_thousand_tasks_hammering_an_open_breaker_reach_the_server_once_per_open_period(endpoints):
    east = endpoints[EAST]
    east.fail_with(503)
    async with _session(_policy()).create_client("dynamodb", endpoint_url=east.url, config=_pool()) as client:
        await _open_breaker(client)
        probes = _count_probes(client)
        east.reset_counts()
        loop = asyncio.get_running_loop()
        stop = loop.time() + 1.5
        outcomes: Counter[str] = Counter()

        async def hammer() -> None:
            while loop.time() < stop:
                try:
                    await client.get_item(**KEY)
                    outcomes["ok"] += 1
                except CircuitOpenError:
                    outcomes["circuit_open"] += 1
                    await asyncio.sleep(0.02)  # a refusal is local and instant: let the others run
                except ClientError:
                    outcomes["probe_failed"] += 1

        await _gather([asyncio.create_task(hammer()) for _ in range(TASKS)])
        counts = east.counts()
        state = client.stats()
    print(f"\n{TASKS} tasks, 1.5 s of open breaker: {counts.total} requests {counts.per_second}, "
          f"{len(probes)} probes, {dict(outcomes)}")
    assert len(probes) >= 2                            # the open time passed several times...
    assert counts.total == len(probes) == outcomes["probe_failed"]   # ...and only the probes reached the server
    assert counts.peak_per_second <= 1 / OPEN + 1      # at most one per open period
    assert outcomes["circuit_open"] > 10 * len(probes)
    assert state["circuit_open_rejections"] == outcomes["circuit_open"]


async def test_with_a_failover_region_a_thousand_tasks_are_served_while_the_primary_sees_one_probe_at_a_time(
        endpoints, counting_server):
    primary = counting_server(status=503)  # a failing primary, slow once the breaker is open (below)
    urls = {EAST: primary.url, WEST: endpoints[WEST].url}
    session = _session(_policy(), failover=(WEST,))
    async with session.create_client("dynamodb", endpoint_urls=urls, config=_pool()) as client:
        await _open_breaker(client)
        probes = _count_probes(client)
        primary.delay = 0.1
        primary.requests = primary.peak_in_flight = 0
        endpoints[WEST].reset_counts()

        async def read(i: int) -> dict:
            await asyncio.sleep(2.0 * i / TASKS)   # the calls arrive over 2 s: the open time passes several times
            return await client.get_item(**KEY)

        results = await _gather([asyncio.create_task(read(i)) for i in range(TASKS)])
    print(f"\n{TASKS} tasks with a failover region: {len(probes)} probes, primary saw {primary.requests} requests, "
          f"peak in flight {primary.peak_in_flight}")
    assert [_outcome(r) for r in results] == ["ok"] * TASKS   # every call was served (by us-west-2)
    assert all(r["Item"] == {"pk": {"S": "1"}} for r in results)
    assert len(probes) >= 2
    assert primary.requests == len(probes)               # the primary saw only the probes...
    assert primary.peak_in_flight == 1                   # ...one at a time
    assert endpoints[WEST].counts().total == TASKS       # and every call reached the failover region once


# -- cancellation ------------------------------------------------------------------------------------
async def test_a_task_cancelled_in_the_backoff_before_its_next_probe_leaves_the_next_probe_to_another_task(
        endpoints, counting_server):
    east = endpoints[EAST]
    west = counting_server()            # healthy while east's breaker opens; failing slowly below
    asleep = ParkingSleep()
    retry = RetryPolicy(max_attempts=3, base_delay=0.05, max_delay=0.05, jitter="none")
    session = _session(_policy(retry), failover=(WEST,), timing=Timing(asleep=asleep))
    urls = {EAST: east.url, WEST: west.url}
    async with session.create_client("dynamodb", endpoint_urls=urls, config=_pool()) as client:
        east.fail_with(503)
        await _open_breaker(client)
        # the call: east's probe fails (east opens again), us-west-2 fails after more than the open time,
        # so the call backs off before going back to east, whose next probe it would then take
        west.status, west.delay = 503, OPEN * 1.5
        await asyncio.sleep(OPEN * 1.5)
        before = client.stats()
        east.reset_counts()
        asleep.armed = True
        task = asyncio.create_task(client.get_item(**KEY))
        await asyncio.wait_for(asleep.parked.wait(), WAIT)
        assert asleep.delays[-1] == pytest.approx(0.05)
        assert east.requests == 1 and west.requests >= 1  # it probed east, then tried us-west-2
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, WAIT)
        after = client.stats()
        # the call is counted once, as cancelled; its two attempts once each
        assert after["calls"] - before["calls"] == 1
        assert after["cancelled"] - before["cancelled"] == 1
        assert after["failed"] == before["failed"]
        assert after["attempts"] - before["attempts"] == 2
        # the breaker admits the next probe after the open time: east, healthy again, closes it
        east.healthy()
        west.status, west.delay = 200, 0.0
        await asyncio.sleep(OPEN)
        result = await client.get_item(**KEY)
        assert result["Item"] == {"pk": {"S": "1"}}       # served by east (the counting server has no items)
        assert east.requests == 2
        assert client.stats()["regions"][EAST]["breaker"] == "closed"


async def test_a_task_cancelled_while_its_probe_is_in_flight_frees_the_probe_for_the_next_task(endpoints):
    east = endpoints[EAST]
    east.fail_with(503)
    async with _session(_policy()).create_client("dynamodb", endpoint_url=east.url, config=_pool()) as client:
        await _open_breaker(client)
        east.slow(5.0)                   # the probe stays in flight until it is cancelled
        await asyncio.sleep(OPEN * 1.5)
        east.reset_counts()
        task = asyncio.create_task(client.get_item(**KEY))
        await _until(lambda: east.requests == 1, "the probe to reach the server")
        with pytest.raises(CircuitOpenError):   # the probe is taken: everyone else is refused
            await client.get_item(**KEY)
        before = client.stats()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, WAIT)
        after = client.stats()
        assert after["cancelled"] - before["cancelled"] == 1
        assert after["failed"] == before["failed"]
        east.healthy()
        await asyncio.sleep(OPEN)
        result = await client.get_item(**KEY)   # the next probe is admitted, succeeds and closes the breaker
        assert result["Item"] == {"pk": {"S": "1"}}
        assert east.requests == 2
        assert client.stats()["regions"][EAST]["breaker"] == "closed"


async def test_a_thousand_tasks_cancelled_during_calls_to_a_slow_endpoint_are_each_counted_once(endpoints):
    east = endpoints[EAST]
    east.slow(5.0)
    async with _session(_policy()).create_client("dynamodb", endpoint_url=east.url, config=_pool(64)) as client:
        tasks = [asyncio.create_task(client.get_item(**KEY)) for _ in range(TASKS)]
        await _until(lambda: east.requests >= 64, "the pool's connections to carry requests")
        for task in tasks:
            task.cancel()
        results = await _gather(tasks)
        state = client.stats()
        east.healthy()
        assert (await client.get_item(**KEY))["Item"] == {"pk": {"S": "1"}}   # the client still works
    assert all(isinstance(r, asyncio.CancelledError) for r in results)
    assert state["calls"] == state["cancelled"] == TASKS
    assert state["failed"] == state["succeeded"] == 0
    assert state["regions"][EAST]["breaker"] == "closed"   # a cancel says nothing about the endpoint's health


# -- the thread suite's tests, as tasks -------------------------------------------------------------
async def test_eight_tasks_against_50_ms_latency_are_at_the_server_together(counting_server):
    server = counting_server(delay=0.05)
    async with _session(Policy(dns=NO_DNS)).create_client("dynamodb", endpoint_url=server.url,
                                                          config=_pool()) as client:
        await asyncio.gather(*(client.list_tables() for _ in range(8)))  # warm: eight pooled connections
        server.peak_in_flight = 0
        await asyncio.gather(*(client.list_tables() for _ in range(8)))
    assert server.peak_in_flight == 8     # nothing serialises them


async def test_sixteen_tasks_times_two_hundred_calls_lose_no_count(counting_server):
    server = counting_server()
    calls = 200
    async with _session(Policy(dns=NO_DNS)).create_client("dynamodb", endpoint_url=server.url,
                                                          config=_pool()) as client:
        async def work() -> None:
            for _ in range(calls):
                await client.get_item(**KEY)

        await _gather([asyncio.create_task(work()) for _ in range(16)])
        s = client.stats()
    assert s["calls"] == s["succeeded"] == 16 * calls
    assert s["attempts"] == server.requests == 16 * calls
    assert s["regions"][EAST]["attempts"] == 16 * calls
    assert s["cancelled"] == s["failed"] == 0


async def test_aio_wrap_of_a_legacy_mode_client_makes_exactly_max_attempts_requests_per_call(counting_server):
    server = counting_server(status=503)
    policy = Policy(retry=RetryPolicy(max_attempts=3, base_delay=0.0, max_delay=0.0),
                    budget=BudgetPolicy(enabled=False), breaker=BreakerPolicy(enabled=False), dns=NO_DNS)
    raw_client = get_session().create_client("dynamodb", region_name=EAST, endpoint_url=server.url,
                                             config=AioConfig(retries={"mode": "legacy"}), **TEST_CREDENTIALS)
    calls = 20
    async with raw_client as raw, aio.wrap(raw, policy=policy) as client:
        for _ in range(calls):
            with pytest.raises(ClientError) as info:
                await client.get_item(**KEY)
            assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert server.requests == 3 * calls   # legacy alone would have sent 10 per call (DynamoDB's legacy limit)
