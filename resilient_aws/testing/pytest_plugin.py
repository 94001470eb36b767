"""pytest plugin: the ``aws_outage_drill`` fixture (registered through the ``pytest11`` entry point).

Why a plugin: a team should be able to add a DNS-blackout drill to its own suite with one fixture
argument, no conftest code to copy. The fixture is function-scoped (each test starts from healthy
servers and zero counters; starting them takes a fraction of a second) and stops every server
when the test ends, failures included.

    def test_reads_survive_an_emptied_dns_record(aws_outage_drill):
        aws_outage_drill.create_table("orders", [{"pk": {"S": "1"}}])
        ddb = aws_outage_drill.client("dynamodb")
        ddb.get_item(TableName="orders", Key={"pk": {"S": "1"}})   # learn the address
        aws_outage_drill.dns_empty("us-east-1")
        assert ddb.get_item(TableName="orders", Key={"pk": {"S": "1"}})["Item"]

Regions default to us-east-1 (primary) and us-west-2; a test can ask for others with
``@pytest.mark.aws_outage_drill(regions=["eu-west-1", "eu-central-1"])``.

The fixture is synchronous and works as it is in async tests (pytest-asyncio, anyio): the drill's
servers run in threads and its fault switches return at once. ``aws_outage_drill.aio_session()`` gives
a ``resilient_aws.aio.Session`` aimed at the drill (the ``aio`` extra)::

    async def test_async_reads_survive_an_emptied_dns_record(aws_outage_drill):
        aws_outage_drill.create_table("orders", [{"pk": {"S": "1"}}])
        async with aws_outage_drill.aio_session().create_client(
                "dynamodb", endpoint_urls=aws_outage_drill.endpoint_urls()) as ddb:
            await ddb.get_item(TableName="orders", Key={"pk": {"S": "1"}})
            aws_outage_drill.dns_empty("us-east-1")
            assert (await ddb.get_item(TableName="orders", Key={"pk": {"S": "1"}}))["Item"]
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

MARKER = "aws_outage_drill"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}(regions=[...], zone='drill.test', ttl=5): options for the aws_outage_drill fixture")


@pytest.fixture
def aws_outage_drill(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A started :class:`resilient_aws.testing.OutageDrill` (loopback regions + DNS), stopped after the test."""
    from .drill_env import outage_drill

    marker = request.node.get_closest_marker(MARKER)
    options: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    with outage_drill(**options) as drill:
        yield drill
