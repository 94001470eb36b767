"""Region failover of the asyncio client against two real moto HTTP servers: us-east-1 on 127.0.0.1,
us-west-2 on 127.0.0.2.

The port of ``tests/integration/test_failover_live.py``. Every item carries the region it was written
to, so a read says which region served it; the servers' own counts (by operation and signing region)
say where each request really went.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from botocore.exceptions import ClientError
from support.aws import CREDS, NO_DNS
from support.fakes import FakeClock
from support.moto_state import tables_left_as_found

from resilient_aws import BreakerPolicy, CircuitOpenError, FailoverPolicy, Policy, RetryPolicy, Timing, aio
from resilient_aws.testing.aws import create_table, loopback_endpoints, plain_client

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

TABLE = "aio-failover"
KEY = {"pk": {"S": "k"}}
EAST, WEST = "us-east-1", "us-west-2"


@pytest.fixture(scope="module")
def regions():
    with tables_left_as_found((EAST, WEST)), loopback_endpoints([EAST, WEST]) as endpoints:
        for region, ep in endpoints.items():  # each region's copy says which region it is
            create_table(plain_client("dynamodb", region, ep.url), TABLE,
                         items=[{"pk": {"S": "k"}, "region": {"S": region}}])
        yield endpoints


@pytest.fixture
def east(regions):
    yield regions[EAST]
    regions[EAST].reachable()
    regions[EAST].healthy()


@pytest.fixture
def west(regions):
    regions[WEST].reset_counts()
    yield regions[WEST]
    regions[WEST].reachable()
    regions[WEST].healthy()


def _client(regions, *, breaker: BreakerPolicy | None = None, failover: FailoverPolicy | None = None,
            timing: Timing | None = None):
    """``async with _client(regions) as ddb``: us-east-1 primary, us-west-2 its failover region."""
    policy = Policy(retry=RetryPolicy(max_attempts=2, base_delay=0.0, max_delay=0.0),
                    breaker=breaker or BreakerPolicy(), failover=failover or FailoverPolicy(), dns=NO_DNS)
    session = aio.Session(region_name=EAST, failover_regions=[WEST], policy=policy, timing=timing, **CREDS)
    return session.create_client("dynamodb", endpoint_urls={r: ep.url for r, ep in regions.items()})


async def _served_by(client) -> str:
    return (await client.get_item(TableName=TABLE, Key=KEY))["Item"]["region"]["S"]


async def _open_breaker(client, region: str, limit: int = 200) -> None:
    """Call until ``region``'s breaker is open (the async form of ``support.aws.open_breaker``): bounded, so
    a breaker that never opens fails the test instead of hanging it. The calls' own errors are the point."""
    for _ in range(limit):
        if client.stats()["regions"][region]["breaker"] == "open":
            return
        with contextlib.suppress(ClientError, CircuitOpenError):
            await client.get_item(TableName=TABLE, Key=KEY)
    pytest.fail(f"{region}'s breaker did not open within {limit} calls")


async def test_the_primary_serves_reads_while_healthy(regions, east, west):
    async with _client(regions) as client:
        assert [await _served_by(client) for _ in range(5)] == [EAST] * 5
    assert west.counts().total == 0


async def test_reads_fail_over_to_us_west_2_while_us_east_1_refuses_connections(regions, east, west):
    east.unreachable()
    async with _client(regions) as client:
        assert [await _served_by(client) for _ in range(10)] == [WEST] * 10
        assert client.stats()["failed"] == 0
    assert west.counts().by_operation.get("GetItem") == 10


async def test_reads_fail_over_to_us_west_2_while_us_east_1_answers_503(regions, east, west):
    east.fail_with(503)
    east.reset_counts()
    async with _client(regions) as client:
        assert [await _served_by(client) for _ in range(10)] == [WEST] * 10
    assert west.counts().by_operation.get("GetItem") == 10
    assert east.counts().by_status.get(503, 0) >= 1  # the primary was tried first, not skipped blindly


async def test_a_put_item_does_not_move_region_by_default(regions, east, west):
    east.fail_with(503)
    async with _client(regions) as client:
        with pytest.raises(ClientError) as info:
            await client.put_item(TableName=TABLE, Item={"pk": {"S": "w1"}, "region": {"S": "?"}})
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503  # the original error, unchanged
    assert "PutItem" not in west.counts().by_operation


async def test_a_put_item_moves_region_when_failover_allows_writes(regions, east, west):
    east.fail_with(503)
    async with _client(regions, failover=FailoverPolicy(allow_writes=True)) as client:
        await client.put_item(TableName=TABLE, Item={"pk": {"S": "w2"}, "region": {"S": "written"}})
    assert west.counts().by_operation.get("PutItem") == 1
    west_item = plain_client("dynamodb", WEST, west.url).get_item(TableName=TABLE, Key={"pk": {"S": "w2"}})
    assert west_item["Item"]["region"] == {"S": "written"}


async def test_traffic_returns_to_us_east_1_after_its_breaker_closes(regions, east, west):
    # the breaker's open time passes on an injected clock: no waiting, no polling
    clock = FakeClock()
    breaker = BreakerPolicy(min_calls=4, open_time=0.3, max_open_time=0.3, open_jitter=0.0)
    async with _client(regions, breaker=breaker, timing=clock.timing()) as client:
        east.fail_with(503)
        await _open_breaker(client, EAST)
        assert await _served_by(client) == WEST  # open: straight to us-west-2
        east.healthy()
        clock.now += 0.3
        assert await _served_by(client) == EAST  # the half-open probe finds us-east-1 healthy...
        assert client.stats()["regions"][EAST]["breaker"] == "closed"  # ...and closes the breaker
        west_before = west.counts().total
        assert [await _served_by(client) for _ in range(10)] == [EAST] * 10
    assert west.counts().total == west_before


async def test_every_region_open_fails_fast_with_no_request_sent(regions, east, west):
    breaker = BreakerPolicy(min_calls=4, open_time=60.0, max_open_time=60.0)
    east.fail_with(503)
    west.fail_with(503)
    async with _client(regions, breaker=breaker) as client:
        await _open_breaker(client, EAST)
        await _open_breaker(client, WEST)
        before = east.counts().total + west.counts().total
        for _ in range(50):
            with pytest.raises(CircuitOpenError) as info:
                await client.get_item(TableName=TABLE, Key=KEY)
        assert info.value.regions == (EAST, WEST)
    assert east.counts().total + west.counts().total == before


# -- asyncio only: a cancelled call (asyncio.timeout, task.cancel) holds nothing and is counted apart ------

async def _cancel_once_received(call, endpoint) -> None:
    """Start ``call()`` as a task, cancel it once ``endpoint`` has received its request (polled, with a
    deadline), and check that the cancellation reaches the caller."""
    before = endpoint.counts().total
    task = asyncio.create_task(call())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5.0
    while endpoint.counts().total == before:
        assert loop.time() < deadline, "the request did not reach the endpoint within 5 s"
        assert not task.done(), "the call ended before its request reached the endpoint"
        await asyncio.sleep(0.005)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_read_cancelled_during_its_first_attempt_is_counted_cancelled_not_failed(regions, east, west):
    async with _client(regions) as client:
        east.slow(2.0)
        await _cancel_once_received(lambda: client.get_item(TableName=TABLE, Key=KEY), east)
        stats = client.stats()
        assert (stats["calls"], stats["attempts"], stats["cancelled"], stats["failed"]) == (1, 1, 1, 0)
        east.healthy()
        assert await _served_by(client) == EAST
    assert west.counts().total == 0


async def test_a_read_cancelled_while_failing_over_is_counted_cancelled_not_failed(regions, east, west):
    east.fail_with(503)
    west.slow(2.0)
    async with _client(regions) as client:
        await _cancel_once_received(lambda: client.get_item(TableName=TABLE, Key=KEY), west)
        stats = client.stats()
    assert (stats["calls"], stats["attempts"], stats["cancelled"], stats["failed"]) == (1, 2, 1, 0)


async def test_a_cancelled_half_open_probe_does_not_keep_the_breaker_from_closing(regions, east, west):
    clock = FakeClock()
    breaker = BreakerPolicy(min_calls=4, open_time=0.3, max_open_time=0.3, open_jitter=0.0)
    async with _client(regions, breaker=breaker, timing=clock.timing()) as client:
        east.fail_with(503)
        await _open_breaker(client, EAST)
        east.slow(2.0)
        clock.now += 0.3
        await _cancel_once_received(lambda: client.get_item(TableName=TABLE, Key=KEY), east)  # the probe
        assert client.stats()["regions"][EAST]["breaker"] == "half_open"
        east.healthy()
        assert await _served_by(client) == EAST  # the probe ticket was given back: a new probe goes out
        assert client.stats()["regions"][EAST]["breaker"] == "closed"
