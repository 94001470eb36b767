"""Region failover against two real moto HTTP servers: us-east-1 on 127.0.0.1, us-west-2 on 127.0.0.2.

Every item carries the region it was written to, so a read says which region served it; the servers'
own counts (by operation and signing region) say where each request really went.
"""

from __future__ import annotations

import time

import pytest
from botocore.exceptions import ClientError
from support.aws import CREDS, NO_DNS, open_breaker

import resilient_aws
from resilient_aws import BreakerPolicy, CircuitOpenError, FailoverPolicy, Policy, RetryPolicy
from resilient_aws.testing.aws import create_table, loopback_endpoints, plain_client

TABLE = "failover"
KEY = {"pk": {"S": "k"}}
EAST, WEST = "us-east-1", "us-west-2"


@pytest.fixture(scope="module")
def regions():
    with loopback_endpoints([EAST, WEST]) as endpoints:
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


def _client(regions, *, breaker: BreakerPolicy | None = None, failover: FailoverPolicy | None = None):
    policy = Policy(retry=RetryPolicy(max_attempts=2, base_delay=0.0, max_delay=0.0),
                    breaker=breaker or BreakerPolicy(), failover=failover or FailoverPolicy(), dns=NO_DNS)
    session = resilient_aws.Session(region_name=EAST, failover_regions=[WEST], policy=policy, **CREDS)
    return session.client("dynamodb", endpoint_urls={r: ep.url for r, ep in regions.items()})


def _served_by(client) -> str:
    return client.get_item(TableName=TABLE, Key=KEY)["Item"]["region"]["S"]


def _open_breaker(client, region: str) -> None:
    open_breaker(client, region, lambda: client.get_item(TableName=TABLE, Key=KEY))


def test_the_primary_serves_reads_while_healthy(regions, east, west):
    client = _client(regions)
    assert [_served_by(client) for _ in range(5)] == [EAST] * 5
    assert west.counts().total == 0


def test_reads_fail_over_to_us_west_2_while_us_east_1_refuses_connections(regions, east, west):
    client = _client(regions)
    east.unreachable()
    assert [_served_by(client) for _ in range(10)] == [WEST] * 10
    assert west.counts().by_operation.get("GetItem") == 10
    assert client.stats()["failed"] == 0


def test_reads_fail_over_to_us_west_2_while_us_east_1_answers_503(regions, east, west):
    client = _client(regions)
    east.fail_with(503)
    east.reset_counts()
    assert [_served_by(client) for _ in range(10)] == [WEST] * 10
    assert west.counts().by_operation.get("GetItem") == 10
    assert east.counts().by_status.get(503, 0) >= 1  # the primary was tried first, not skipped blindly


def test_a_put_item_does_not_move_region_by_default(regions, east, west):
    client = _client(regions)
    east.fail_with(503)
    with pytest.raises(ClientError) as info:
        client.put_item(TableName=TABLE, Item={"pk": {"S": "w1"}, "region": {"S": "?"}})
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503  # the original error, unchanged
    assert "PutItem" not in west.counts().by_operation


def test_a_put_item_moves_region_when_failover_allows_writes(regions, east, west):
    client = _client(regions, failover=FailoverPolicy(allow_writes=True))
    east.fail_with(503)
    client.put_item(TableName=TABLE, Item={"pk": {"S": "w2"}, "region": {"S": "written"}})
    assert west.counts().by_operation.get("PutItem") == 1
    west_item = plain_client("dynamodb", WEST, west.url).get_item(TableName=TABLE, Key={"pk": {"S": "w2"}})
    assert west_item["Item"]["region"] == {"S": "written"}


def test_traffic_returns_to_us_east_1_after_its_breaker_closes(regions, east, west):
    breaker = BreakerPolicy(min_calls=4, open_time=0.3, max_open_time=0.3, open_jitter=0.0)
    client = _client(regions, breaker=breaker)
    east.fail_with(503)
    _open_breaker(client, EAST)
    assert _served_by(client) == WEST  # open: straight to us-west-2
    east.healthy()
    deadline = time.monotonic() + 5.0
    while _served_by(client) != EAST:  # the half-open probe finds us-east-1 healthy and closes the breaker
        assert time.monotonic() < deadline, "traffic did not return to us-east-1 within 5 s"
        time.sleep(0.05)
    assert client.stats()["regions"][EAST]["breaker"] == "closed"
    west_before = west.counts().total
    assert [_served_by(client) for _ in range(10)] == [EAST] * 10
    assert west.counts().total == west_before


def test_every_region_open_fails_fast_with_no_request_sent(regions, east, west):
    breaker = BreakerPolicy(min_calls=4, open_time=60.0, max_open_time=60.0)
    client = _client(regions, breaker=breaker)
    east.fail_with(503)
    west.fail_with(503)
    _open_breaker(client, EAST)
    _open_breaker(client, WEST)
    before = east.counts().total + west.counts().total
    for _ in range(50):
        with pytest.raises(CircuitOpenError) as info:
            client.get_item(TableName=TABLE, Key=KEY)
    assert info.value.regions == (EAST, WEST)
    assert east.counts().total + west.counts().total == before
