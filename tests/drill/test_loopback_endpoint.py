"""LoopbackEndpoint: moto's real HTTP server on loopback, with faults switched at run time and
requests counted at the server side."""

from __future__ import annotations

import socket
import threading

import botocore.exceptions
import pytest
from support.moto_state import tables_left_as_found

from resilient_aws.testing.aws import (
    EndpointCounts,
    LoopbackEndpoint,
    PortInUseError,
    create_table,
    plain_client,
    seed_regions,
    start_region_endpoints,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", autouse=True)
def _no_tables_left_behind():
    """moto's data is per process: the tables made here must not show up in later modules' tests."""
    with tables_left_as_found():
        yield

KEY = {"pk": {"S": "1"}}


@pytest.fixture(scope="module")
def regions():
    endpoints = start_region_endpoints(["us-east-1", "us-west-2"])
    seed_regions(endpoints, "t", [{"pk": {"S": "1"}, "v": {"S": "global"}}])
    yield endpoints
    for ep in endpoints.values():
        ep.stop()


@pytest.fixture
def east(regions):
    ep = regions["us-east-1"]
    ep.healthy()
    ep.reset_counts()
    yield ep
    ep.healthy()


@pytest.fixture
def ddb(east):
    return plain_client("dynamodb", "us-east-1", east.url)


def test_two_regions_share_one_port_on_different_loopback_addresses(regions):
    east, west = regions["us-east-1"], regions["us-west-2"]
    assert (east.host, west.host) == ("127.0.0.1", "127.0.0.2")
    assert east.port == west.port != 0


def test_a_request_lands_in_the_backend_of_its_signing_region(regions):
    east = plain_client("dynamodb", "us-east-1", regions["us-east-1"].url)
    west = plain_client("dynamodb", "us-west-2", regions["us-west-2"].url)
    create_table(east, "only_east")
    assert "only_east" in east.list_tables()["TableNames"]
    assert "only_east" not in west.list_tables()["TableNames"]


def test_healthy_endpoint_serves_moto_and_counts_each_request_once(east, ddb):
    for _ in range(5):
        assert ddb.get_item(TableName="t", Key=KEY)["Item"]["v"] == {"S": "global"}
    counts = east.counts()
    assert counts.total == 5
    assert counts.by_operation == {"GetItem": 5}
    assert counts.by_mode == {"healthy": 5}
    assert counts.by_status == {200: 5}
    assert counts.by_region == {"us-east-1": 5}


def test_counts_are_exact_under_concurrent_clients(east):
    threads, per_thread = 8, 25

    def work():
        client = plain_client("dynamodb", "us-east-1", east.url)
        for _ in range(per_thread):
            client.get_item(TableName="t", Key=KEY)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
    assert east.requests == threads * per_thread
    assert sum(east.counts().per_second.values()) == threads * per_thread


def test_reset_counts_starts_from_zero(east, ddb):
    ddb.get_item(TableName="t", Key=KEY)
    east.reset_counts()
    assert east.counts() == EndpointCounts()


def test_fail_with_503_is_a_5xx_client_error_for_botocore(east, ddb):
    east.fail_with(503)
    with pytest.raises(botocore.exceptions.ClientError) as info:
        ddb.get_item(TableName="t", Key=KEY)
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert info.value.response["Error"]["Code"] == "ServiceUnavailable"
    assert east.counts().by_mode == {"failing": 1}
    assert east.counts().by_status == {503: 1}


def test_fail_with_a_code_sets_the_error_code_botocore_reports(east, ddb):
    east.fail_with(400, code="ThrottlingException")
    with pytest.raises(botocore.exceptions.ClientError) as info:
        ddb.get_item(TableName="t", Key=KEY)
    assert info.value.response["Error"]["Code"] == "ThrottlingException"


def test_each_botocore_retry_arrives_as_a_separate_request(east):
    east.fail_with(503)
    client = plain_client("dynamodb", "us-east-1", east.url, retries={"mode": "standard", "total_max_attempts": 3})
    with pytest.raises(botocore.exceptions.ClientError) as info:
        client.get_item(TableName="t", Key=KEY)
    assert east.requests == info.value.response["ResponseMetadata"]["RetryAttempts"] + 1 == 3


def test_a_failing_endpoint_keeps_keep_alive_connections_usable(east, ddb):
    east.fail_with(503)
    for _ in range(3):
        with pytest.raises(botocore.exceptions.ClientError):
            ddb.get_item(TableName="t", Key=KEY)
    east.healthy()
    assert ddb.get_item(TableName="t", Key=KEY)["Item"]
    assert east.requests == 4


def test_slow_adds_latency_and_still_serves(east, ddb):
    import time

    east.slow(0.3)
    start = time.monotonic()
    assert ddb.get_item(TableName="t", Key=KEY)["Item"]
    assert time.monotonic() - start >= 0.3
    assert east.counts().by_mode == {"slow": 1}


def test_unreachable_refuses_connections_as_an_endpoint_connection_error(east, ddb):
    east.unreachable()
    with pytest.raises(botocore.exceptions.EndpointConnectionError):
        ddb.get_item(TableName="t", Key=KEY)
    assert east.requests == 0


def test_unreachable_cuts_connections_in_flight(east, ddb):
    east.slow(2.0)
    errors = []

    def call():
        try:
            ddb.get_item(TableName="t", Key=KEY)
        except Exception as e:
            errors.append(e)

    caller = threading.Thread(target=call)
    caller.start()
    for _ in range(100):  # wait (bounded) until the request is being served
        if east.requests:
            break
        threading.Event().wait(0.01)
    east.unreachable()
    caller.join(5)
    assert not caller.is_alive()
    assert isinstance(errors[0], botocore.exceptions.ConnectionClosedError)


def test_unreachable_refuses_at_the_tcp_level(east):
    east.unreachable()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((east.host, east.port), timeout=2).close()


def test_reachable_listens_again_on_the_same_port(east, ddb):
    port = east.port
    east.unreachable()
    with pytest.raises(botocore.exceptions.EndpointConnectionError):
        ddb.get_item(TableName="t", Key=KEY)
    east.reachable()
    assert east.port == port
    assert ddb.get_item(TableName="t", Key=KEY)["Item"]["v"] == {"S": "global"}


def test_unreachable_keeps_the_mode_for_when_it_is_reachable_again(east, ddb):
    east.fail_with(503)
    east.unreachable()
    east.reachable()
    with pytest.raises(botocore.exceptions.ClientError):
        ddb.get_item(TableName="t", Key=KEY)


def test_healthy_also_makes_an_unreachable_endpoint_reachable(east, ddb):
    east.unreachable()
    east.healthy()
    assert east.is_reachable
    assert ddb.get_item(TableName="t", Key=KEY)["Item"]


def test_the_host_name_the_client_used_is_counted(east):
    client = plain_client("dynamodb", "us-east-1", east.url_for("localhost"))
    client.get_item(TableName="t", Key=KEY)
    assert east.counts().by_host == {"localhost": 1}
    assert set(east.per_second_by_host()) == {"localhost"}


def test_a_taken_port_is_reported_with_its_number(east):
    with pytest.raises(PortInUseError, match=str(east.port)):
        LoopbackEndpoint(east.host, east.port).start()


def test_only_loopback_addresses_are_accepted():
    with pytest.raises(ValueError, match="loopback"):
        LoopbackEndpoint("10.0.0.1")


def test_stop_frees_the_port_for_a_new_endpoint():
    with LoopbackEndpoint() as first:
        port = first.port
    with LoopbackEndpoint(port=port) as second:
        assert second.port == port


def test_every_request_arrives_on_a_new_connection(east, ddb):
    # werkzeug closes each connection after its response: a client without a DNS cache resolves
    # the endpoint's name once per request, the pessimistic case a DNS drill wants
    for _ in range(3):
        ddb.get_item(TableName="t", Key=KEY)
    assert east.counts().connections == 3


def test_requests_are_counted_by_their_tag_header(east, ddb):
    from resilient_aws.testing.aws import TAG_HEADER

    def tag(request, **kwargs):
        request.headers[TAG_HEADER] = "call-7"

    ddb.meta.events.register("before-send.dynamodb", tag)
    ddb.get_item(TableName="t", Key=KEY)
    assert east.counts().by_tag == {"call-7": 1}
