"""Your own DNS-blackout drill, in your own test suite, with ``resilient_aws.testing``.

After 2025-10-20 the advice is to rehearse DNS blackouts on purpose. The ``aws_outage_drill`` fixture
(from the pytest plugin installed with resilient-aws) starts, on loopback, moto's DynamoDB for
us-east-1 and us-west-2 and a DNS server for their names, and lets the test break and heal them
while your code runs. Nothing leaves the machine; no AWS account is needed.

Run it (needs ``pip install 'resilient-aws[drill]'`` and pytest):

    pytest examples/dns_blackout_test.py

(If the plugin is not installed as an entry point, add ``-p resilient_aws.testing.pytest_plugin``;
without pytest, ``with resilient_aws.testing.outage_drill() as aws:`` gives the same object.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # annotations only: pip install 'types-boto3[dynamodb]' to type-check, not to run
    from types_boto3_dynamodb import DynamoDBClient

    from resilient_aws.testing import OutageDrill


def load_profile(ddb: DynamoDBClient, user: str) -> str:
    """The application code under test."""
    return ddb.get_item(TableName="profiles", Key={"pk": {"S": user}})["Item"]["name"]["S"]


@pytest.fixture
def profiles(aws_outage_drill: OutageDrill) -> DynamoDBClient:
    aws_outage_drill.create_table("profiles", [{"pk": {"S": "user-1"}, "name": {"S": "Ada"}}])  # both regions
    ddb: DynamoDBClient = aws_outage_drill.client("dynamodb")  # a resilient_aws client, loopback regions
    assert load_profile(ddb, "user-1") == "Ada"  # learns us-east-1's address while DNS is healthy
    aws_outage_drill.reset_counts()
    return ddb


def test_profiles_load_while_the_dns_record_is_empty(aws_outage_drill: OutageDrill, profiles: DynamoDBClient) -> None:
    aws_outage_drill.dns_empty("us-east-1")  # NOERROR with no records: the 2025-10-20 answer
    for _ in range(20):
        assert load_profile(profiles, "user-1") == "Ada"
    assert aws_outage_drill.requests("us-east-1") == 20  # served by the primary's last-known-good address
    assert aws_outage_drill.dns_queries("us-east-1") <= 2  # and DNS was not hammered


def test_profiles_load_from_us_west_2_when_us_east_1_answers_503(aws_outage_drill: OutageDrill,
                                                                  profiles: DynamoDBClient) -> None:
    aws_outage_drill.fail("us-east-1", 503)
    assert load_profile(profiles, "user-1") == "Ada"
    assert aws_outage_drill.requests("us-west-2") == 1


def test_profiles_load_when_dns_is_gone_and_us_east_1_is_unreachable(aws_outage_drill: OutageDrill,
                                                                      profiles: DynamoDBClient) -> None:
    aws_outage_drill.dns_nxdomain("us-east-1")
    aws_outage_drill.unreachable("us-east-1")
    for _ in range(5):
        assert load_profile(profiles, "user-1") == "Ada"
    assert aws_outage_drill.requests("us-west-2") == 5


def test_writes_stay_in_the_primary_by_default(aws_outage_drill: OutageDrill, profiles: DynamoDBClient) -> None:
    aws_outage_drill.fail("us-east-1", 503)
    with pytest.raises(profiles.exceptions.ClientError):
        profiles.put_item(TableName="profiles", Item={"pk": {"S": "user-2"}, "name": {"S": "Grace"}})
    assert aws_outage_drill.counts("us-west-2").by_operation.get("PutItem", 0) == 0
