"""A wrapped client behaves like the botocore client it wraps, against moto's real HTTP server."""

from __future__ import annotations

import os
import uuid

import boto3
import botocore.session
import pytest
from botocore.exceptions import EndpointConnectionError
from support.aws import CREDS, NO_DNS, create_table

import resilient_aws
from resilient_aws import Policy


@pytest.fixture
def table():
    return f"t-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def client(moto_url, table):
    session = resilient_aws.Session(region_name="us-east-1", failover_regions=["us-west-2"],
                                    policy=Policy(dns=NO_DNS), **CREDS)
    c = session.client("dynamodb", endpoint_urls={"us-east-1": moto_url, "us-west-2": moto_url})
    create_table(c, table)
    yield c
    c.close()


def test_operations_keep_their_names_and_keyword_arguments(client, table):
    client.put_item(TableName=table, Item={"pk": {"S": "1"}, "v": {"N": "7"}})
    item = client.get_item(TableName=table, Key={"pk": {"S": "1"}}, ConsistentRead=True)["Item"]
    assert item == {"pk": {"S": "1"}, "v": {"N": "7"}}


def test_meta_and_can_paginate_pass_through(client):
    assert client.meta.region_name == "us-east-1"
    assert client.meta.service_model.service_name == "dynamodb"
    assert client.can_paginate("scan")
    assert "get_item" in dir(client)


def test_modeled_exceptions_are_botocore_s_own_classes(client):
    with pytest.raises(client.exceptions.ResourceNotFoundException) as info:
        client.get_item(TableName="does-not-exist", Key={"pk": {"S": "1"}})
    assert info.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_paginator_pages_go_through_the_resilient_loop(client, table):
    for i in range(5):
        client.put_item(TableName=table, Item={"pk": {"S": str(i)}})
    before = client.stats()["calls"]
    pages = list(client.get_paginator("scan").paginate(TableName=table, PaginationConfig={"PageSize": 2}))
    assert sum(p["Count"] for p in pages) == 5
    assert client.stats()["calls"] - before == len(pages)


def test_waiter_polls_go_through_the_resilient_loop(client, table):
    before = client.stats()["calls"]
    client.get_waiter("table_exists").wait(TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 2})
    assert client.stats()["calls"] > before


def test_a_failover_regions_own_error_is_not_the_answer_the_primarys_is(moto_url, table):
    session = resilient_aws.Session(region_name="us-east-1", failover_regions=["us-west-2"],
                                    policy=Policy(dns=NO_DNS), **CREDS)
    # the primary points at a closed port: the read moves to us-west-2, where the table is missing
    c = session.client("dynamodb", endpoint_urls={"us-east-1": "http://127.0.0.1:9", "us-west-2": moto_url})
    with pytest.raises(EndpointConnectionError):
        c.get_item(TableName="missing-everywhere", Key={"pk": {"S": "1"}})
    assert c.stats()["failovers"] == 1


def test_every_region_shares_the_primarys_exception_classes(moto_url):
    session = resilient_aws.Session(region_name="us-east-1", failover_regions=["us-west-2"],
                                    policy=Policy(dns=NO_DNS), **CREDS)
    c = session.client("dynamodb", endpoint_urls={"us-east-1": moto_url, "us-west-2": moto_url})
    assert c._lanes[1].client().exceptions is c.exceptions


def test_stats_are_json_serializable(client, table):
    import json

    client.get_item(TableName=table, Key={"pk": {"S": "x"}})
    data = json.loads(json.dumps(client.stats()))
    assert data["calls"] == 2 and data["regions"]["us-east-1"]["breaker"] == "closed"


def test_boto3_session_is_accepted(moto_url, table):
    b3 = boto3.Session(region_name="us-east-1", **CREDS)
    c = resilient_aws.Session(boto3_session=b3, policy=Policy(dns=NO_DNS)).client("dynamodb", endpoint_url=moto_url)
    create_table(c, table)
    assert c.meta.region_name == "us-east-1"
    assert "TableNames" in c.list_tables()


def test_botocore_session_is_accepted(moto_url, table):
    bc = botocore.session.get_session()
    bc.set_credentials("testing", "testing")
    c = resilient_aws.Session(botocore_session=bc, region_name="us-west-2", policy=Policy(dns=NO_DNS)).client(
        "dynamodb", endpoint_url=moto_url)
    create_table(c, table)
    assert table in c.list_tables()["TableNames"]


def test_per_region_clients_are_created_lazily_once(moto_url, table):
    session = resilient_aws.Session(region_name="us-east-1", failover_regions=["us-west-2"],
                                    policy=Policy(dns=NO_DNS), **CREDS)
    c = session.client("dynamodb", endpoint_urls={"us-east-1": moto_url, "us-west-2": moto_url})
    assert c.stats()["regions"]["us-west-2"]["client_created"] is False
    first = c._lanes[1].client()
    assert c._lanes[1].client() is first


def test_wrap_hardens_an_existing_boto3_client(moto_url, table):
    raw = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=moto_url, **CREDS)
    hardened = resilient_aws.wrap(raw, failover_regions=["us-west-2"], policy=Policy(dns=NO_DNS),
                                  endpoint_urls={"us-west-2": moto_url})
    create_table(hardened, table)
    hardened.put_item(TableName=table, Item={"pk": {"S": "w"}})
    assert hardened.get_item(TableName=table, Key={"pk": {"S": "w"}})["Item"]["pk"] == {"S": "w"}
    assert hardened.stats()["calls"] >= 2


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_client_used_after_fork_works_in_the_child(client, table):
    client.put_item(TableName=table, Item={"pk": {"S": "f"}})
    client.get_item(TableName=table, Key={"pk": {"S": "f"}})  # a pooled keep-alive connection now exists
    pid = os.fork()
    if pid == 0:  # child: must not reuse the parent's socket or deadlock on a copied lock
        code = 1
        try:
            item = client.get_item(TableName=table, Key={"pk": {"S": "f"}})["Item"]
            code = 0 if item["pk"] == {"S": "f"} and client.stats()["calls"] >= 3 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    assert client.get_item(TableName=table, Key={"pk": {"S": "f"}})["Item"]  # the parent still works
