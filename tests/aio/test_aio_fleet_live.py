"""Shared state (a real redis-server) under the asyncio client: the same fleet rules as the thread
client, and no store round trip on the event loop.

The store is asked for a probe lease (``CircuitBreaker.admit``) and for a token of the fleet's budget
floor in the caller's path; the asyncio client runs those calls in a worker thread. Proof: with Redis
stalled (SIGSTOP), the claim waits the store's whole timeout while a heartbeat task on the loop keeps
ticking.
"""

from __future__ import annotations

import asyncio
import time

import pytest

import resilient_aws
from resilient_aws import BreakerPolicy, DnsPolicy, Policy, RetryPolicy
from resilient_aws.testing.aws import TEST_CREDENTIALS, seed_regions, start_region_endpoints

aio = pytest.importorskip("resilient_aws.aio")

pytestmark = [pytest.mark.asyncio, pytest.mark.integration]

REGION = "us-east-1"
KEY = {"pk": {"S": "k1"}}
BREAKER = BreakerPolicy(min_calls=4, window=5.0, failure_ratio=0.5, open_time=0.3, open_jitter=0.0)
POLICY = Policy(retry=RetryPolicy(max_attempts=1), breaker=BREAKER, dns=DnsPolicy(enabled=False))


@pytest.fixture
def endpoint():
    endpoints = start_region_endpoints([REGION])
    seed_regions(endpoints, "t", [{**KEY, "v": {"S": "x"}}])
    yield endpoints[REGION]
    for e in endpoints.values():
        e.stop()


class Heartbeat:
    """A task that sleeps 1 ms at a time and records the longest it was late: how long the loop was blocked."""

    def __init__(self) -> None:
        self.max_lag = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _beat(self) -> None:
        while True:
            t0 = time.perf_counter()
            await asyncio.sleep(0.001)
            self.max_lag = max(self.max_lag, time.perf_counter() - t0 - 0.001)

    async def __aenter__(self) -> Heartbeat:
        self._task = asyncio.get_running_loop().create_task(self._beat())
        await asyncio.sleep(0.005)  # the task is beating before the measured code runs
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


async def _open_breaker(ddb, endpoint) -> None:
    endpoint.fail_with(503)
    for _ in range(BREAKER.min_calls):
        with pytest.raises(Exception):  # noqa: B017 - the 503 as botocore raises it
            await ddb.get_item(TableName="t", Key=KEY)
    assert ddb.stats()["regions"][REGION]["breaker"] == "open"


async def test_a_probe_lease_asked_of_a_stalled_store_does_not_block_the_event_loop(own_redis_server, namespace,
                                                                                     endpoint):
    state = resilient_aws.RedisState(own_redis_server.url, namespace=namespace, timeout=0.4)  # 0.2 s for the answer
    session = aio.Session(region_name=REGION, policy=POLICY, shared_state=state)
    async with session.create_client("dynamodb", endpoint_url=endpoint.url, **TEST_CREDENTIALS) as ddb:
        await _open_breaker(ddb, endpoint)
        endpoint.healthy()
        await asyncio.sleep(BREAKER.open_time + 0.05)
        own_redis_server.stall()
        try:
            async with Heartbeat() as beat:
                t0 = time.perf_counter()
                result = await ddb.get_item(TableName="t", Key=KEY)  # its admission asks the stalled store
                waited = time.perf_counter() - t0
        finally:
            own_redis_server.resume()
    assert result["Item"]["v"] == {"S": "x"}  # the store is down: the process probes on its own, as designed
    assert waited >= 0.2                    # the claim did wait for the store's answer timeout...
    assert beat.max_lag < 0.05              # ...in a worker thread: the loop kept running


async def test_an_opening_in_one_process_opens_the_breaker_of_another(redis_server, namespace, endpoint):
    first = aio.Session(region_name=REGION, policy=POLICY,
                        shared_state=resilient_aws.RedisState(redis_server.url, namespace=namespace))
    second = aio.Session(region_name=REGION, policy=POLICY,
                         shared_state=resilient_aws.RedisState(redis_server.url, namespace=namespace))
    async with first.create_client("dynamodb", endpoint_url=endpoint.url, **TEST_CREDENTIALS) as a, \
            second.create_client("dynamodb", endpoint_url=endpoint.url, **TEST_CREDENTIALS) as b:
        assert (await b.get_item(TableName="t", Key=KEY))["Item"]  # b subscribes to the fleet's messages
        await _open_breaker(a, endpoint)
        deadline = time.monotonic() + 3.0
        while b.stats()["regions"][REGION]["breaker"] != "open" and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert b.stats()["regions"][REGION]["breaker"] == "open"
        with pytest.raises(resilient_aws.CircuitOpenError):
            await b.get_item(TableName="t", Key=KEY)
