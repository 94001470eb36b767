"""``resilient_aws.testing`` from async tests: the ``aws_outage_drill`` fixture (the plugin's, through its
``pytest11`` entry point) in pytest-asyncio tests, with ``OutageDrill.aio_session()``."""

from __future__ import annotations

import pytest
from support.moto_state import tables_left_as_found

from resilient_aws import BreakerPolicy, Policy
from resilient_aws.testing import OutageDrill

pytestmark = pytest.mark.integration

KEY = {"pk": {"S": "1"}}
ITEM = {"pk": {"S": "1"}, "v": {"S": "global"}}


@pytest.fixture(scope="module", autouse=True)
def _no_tables_left_behind():
    """moto's data is per process: the tables made here must not show up in later modules' tests."""
    with tables_left_as_found():
        yield


def test_aio_session_is_aimed_at_the_drill_like_session(aws_outage_drill: OutageDrill):
    from resilient_aws import aio

    session = aws_outage_drill.aio_session()
    sync = aws_outage_drill.session()
    assert isinstance(session, aio.Session)
    assert session.region_name == sync.region_name == "us-east-1"
    assert session.failover_regions == sync.failover_regions == ("us-west-2",)
    assert session.policy == sync.policy
    assert session.policy.dns.nameservers == (aws_outage_drill.dns_host,)
    assert session.policy.dns.port == aws_outage_drill.dns_port
    west = aws_outage_drill.aio_session(Policy(breaker=BreakerPolicy(open_time=1.0)), primary="us-west-2")
    assert (west.region_name, west.failover_regions) == ("us-west-2", ("us-east-1",))
    assert west.policy.breaker.open_time == 1.0 and west.policy.dns.port == aws_outage_drill.dns_port


@pytest.mark.asyncio
async def test_an_async_test_drives_the_drill_through_dns_and_region_failures(aws_outage_drill: OutageDrill):
    drill = aws_outage_drill
    drill.create_table("orders", [ITEM])
    session = drill.aio_session()
    async with session.create_client("dynamodb", endpoint_urls=drill.endpoint_urls()) as ddb:
        assert (await ddb.get_item(TableName="orders", Key=KEY))["Item"] == ITEM  # learns the address
        queries = drill.dns_queries("us-east-1")
        drill.dns_empty("us-east-1")  # the 2025-10-20 answer: served from the last good address
        for _ in range(5):
            assert (await ddb.get_item(TableName="orders", Key=KEY))["Item"] == ITEM
        assert drill.dns_queries("us-east-1") - queries <= 4
        before = drill.requests("us-west-2")
        drill.dns_restore("us-east-1")
        drill.fail("us-east-1", 503)  # reads move to us-west-2
        assert (await ddb.get_item(TableName="orders", Key=KEY))["Item"] == ITEM
        assert drill.requests("us-west-2") > before
        stats = ddb.stats()
    assert stats["failed"] == 0 and stats["failovers"] >= 1
    assert drill.counts("us-east-1").by_status.get(503, 0) >= 1


@pytest.mark.asyncio
@pytest.mark.aws_outage_drill(regions=["eu-west-1", "eu-central-1"])
async def test_the_marker_picks_the_regions_of_an_async_test(aws_outage_drill: OutageDrill):
    assert aws_outage_drill.regions == ("eu-west-1", "eu-central-1")
    aws_outage_drill.create_table("orders", [ITEM])
    session = aws_outage_drill.aio_session()
    assert session.region_name == "eu-west-1" and session.failover_regions == ("eu-central-1",)
    async with session.create_client("dynamodb", endpoint_urls=aws_outage_drill.endpoint_urls()) as ddb:
        aws_outage_drill.unreachable("eu-west-1")
        assert (await ddb.get_item(TableName="orders", Key=KEY))["Item"] == ITEM
    assert aws_outage_drill.requests("eu-central-1") >= 1
