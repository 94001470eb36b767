"""resilient_aws.testing.outage_drill / the aws_outage_drill fixture: a loopback world a test can break."""

from __future__ import annotations

import botocore.exceptions
import dns.message
import dns.query
import dns.rcode
import pytest
from support.moto_state import tables_left_as_found

from resilient_aws.testing import OutageDrill, outage_drill, pytest_plugin

# The fixture under test, as the plugin's entry point provides it to users' suites.
aws_outage_drill = pytest_plugin.aws_outage_drill

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", autouse=True)
def _no_tables_left_behind():
    """moto's data is per process: the tables made here must not show up in later modules' tests."""
    with tables_left_as_found():
        yield

KEY = {"pk": {"S": "1"}}
ITEM = {"pk": {"S": "1"}, "v": {"S": "global"}}


def _resolve(drill: OutageDrill, name: str) -> tuple[int, list[str]]:
    reply = dns.query.udp(dns.message.make_query(name, "A"), drill.dns.host, port=drill.dns_port, timeout=2)
    return reply.rcode(), [rr.address for rrset in reply.answer for rr in rrset]


def test_each_region_name_resolves_to_its_own_loopback_address(aws_outage_drill):
    east = aws_outage_drill.host_name("us-east-1")
    west = aws_outage_drill.host_name("us-west-2")
    assert east == "dynamodb.us-east-1.drill.test"
    assert _resolve(aws_outage_drill, east) == (dns.rcode.NOERROR, ["127.0.0.1"])
    assert _resolve(aws_outage_drill, west) == (dns.rcode.NOERROR, ["127.0.0.2"])


def test_endpoint_urls_use_the_dns_names_and_one_port(aws_outage_drill):
    port = aws_outage_drill.port
    assert aws_outage_drill.endpoint_urls() == {
        "us-east-1": f"http://dynamodb.us-east-1.drill.test:{port}",
        "us-west-2": f"http://dynamodb.us-west-2.drill.test:{port}",
    }


def test_dns_empty_answers_noerror_without_records_and_restore_brings_them_back(aws_outage_drill):
    name = aws_outage_drill.host_name("us-east-1")
    aws_outage_drill.dns_empty("us-east-1")
    assert _resolve(aws_outage_drill, name) == (dns.rcode.NOERROR, [])
    aws_outage_drill.dns_restore("us-east-1")
    assert _resolve(aws_outage_drill, name) == (dns.rcode.NOERROR, ["127.0.0.1"])


def test_a_name_created_during_a_dns_fault_is_born_broken(aws_outage_drill):
    aws_outage_drill.dns_nxdomain("us-east-1")
    name = aws_outage_drill.host_name("us-east-1", label="late")
    assert _resolve(aws_outage_drill, name)[0] == dns.rcode.NXDOMAIN


def test_create_table_writes_the_same_items_to_every_region(aws_outage_drill):
    aws_outage_drill.create_table("t", [ITEM])
    for region in aws_outage_drill.regions:
        assert aws_outage_drill.plain_client(region).get_item(TableName="t", Key=KEY)["Item"] == ITEM


def test_a_resilient_client_keeps_reading_through_an_emptied_record(aws_outage_drill):
    aws_outage_drill.create_table("t", [ITEM])
    ddb = aws_outage_drill.client("dynamodb")
    aws_outage_drill.reset_counts()
    assert ddb.get_item(TableName="t", Key=KEY)["Item"] == ITEM
    aws_outage_drill.dns_empty("us-east-1")
    for _ in range(5):
        assert ddb.get_item(TableName="t", Key=KEY)["Item"] == ITEM
    assert aws_outage_drill.counts("us-east-1").by_operation["GetItem"] == 6
    assert aws_outage_drill.requests("us-west-2") == 0


def test_reads_fail_over_when_the_primary_answers_503(aws_outage_drill):
    aws_outage_drill.create_table("t", [ITEM])
    ddb = aws_outage_drill.client("dynamodb")
    aws_outage_drill.reset_counts()
    aws_outage_drill.fail("us-east-1", 503)
    assert ddb.get_item(TableName="t", Key=KEY)["Item"] == ITEM
    assert aws_outage_drill.counts("us-west-2").by_operation == {"GetItem": 1}
    assert aws_outage_drill.counts("us-east-1").by_status.get(503, 0) >= 1


def test_reads_fail_over_when_the_primary_is_unreachable(aws_outage_drill):
    aws_outage_drill.create_table("t", [ITEM])
    ddb = aws_outage_drill.client("dynamodb")
    aws_outage_drill.reset_counts()
    aws_outage_drill.unreachable("us-east-1")
    assert ddb.get_item(TableName="t", Key=KEY)["Item"] == ITEM
    assert aws_outage_drill.counts("us-west-2").by_operation == {"GetItem": 1}


def test_a_plain_client_fails_while_the_region_is_unreachable_and_works_after_restore(aws_outage_drill):
    aws_outage_drill.create_table("t", [ITEM])
    plain = aws_outage_drill.plain_client("us-east-1")
    aws_outage_drill.unreachable("us-east-1")
    with pytest.raises(botocore.exceptions.EndpointConnectionError):
        plain.get_item(TableName="t", Key=KEY)
    aws_outage_drill.restore()
    assert plain.get_item(TableName="t", Key=KEY)["Item"] == ITEM


def test_dns_queries_are_counted_per_label(aws_outage_drill):
    name = aws_outage_drill.host_name("us-east-1", label="mine")
    _resolve(aws_outage_drill, name)
    _resolve(aws_outage_drill, name)
    assert aws_outage_drill.dns_queries("us-east-1", label="mine") == 2
    assert aws_outage_drill.dns_queries("us-east-1", label="other") == 0


@pytest.mark.aws_outage_drill(regions=["eu-west-1", "eu-central-1"])
def test_the_marker_chooses_the_regions(aws_outage_drill):
    assert aws_outage_drill.regions == ("eu-west-1", "eu-central-1")
    assert aws_outage_drill.session().region_name == "eu-west-1"


def test_unknown_regions_are_rejected_by_name(aws_outage_drill):
    with pytest.raises(ValueError, match="ap-south-1"):
        aws_outage_drill.fail("ap-south-1")


def test_the_context_manager_stops_every_server():
    with outage_drill() as drill:
        endpoints = list(drill.endpoints.values())
    assert not any(ep.is_reachable for ep in endpoints)
