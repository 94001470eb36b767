"""A drop-in for boto3 programs: an ordinary boto3 program, run with boto3.Session and with
resilient_aws.Session changed in one line, against moto's HTTP server.

The program uses what people's programs use: a DynamoDB resource with ``batch_writer``, a paginator,
S3 ``upload_file``/``download_file`` of a 20 MiB file in multipart, an SQS resource.
"""

from __future__ import annotations

import hashlib
import os

import boto3
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from support.aws import CREDS, NO_DNS
from support.fault_proxy import FaultProxy

import resilient_aws
from resilient_aws import BreakerPolicy, BudgetPolicy, FailoverPolicy, Policy, RetryPolicy

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
MULTIPART = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB, max_concurrency=4)
PATH_STYLE = Config(s3={"addressing_style": "path"})


def program(session, endpoint: str, name: str, payload) -> dict:
    """What a boto3 user writes. ``session`` is the only thing that differs between the runs."""
    ddb = session.resource("dynamodb", endpoint_url=endpoint)
    table = ddb.create_table(TableName=name, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                             AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                             BillingMode="PAY_PER_REQUEST")
    with table.batch_writer() as batch:
        for i in range(60):
            batch.put_item(Item={"pk": f"item-{i}", "n": i})
    scanned = 0
    for page in session.client("dynamodb", endpoint_url=endpoint).get_paginator("scan").paginate(
            TableName=name, PaginationConfig={"PageSize": 25}):
        scanned += page["Count"]

    s3 = session.client("s3", endpoint_url=endpoint, config=PATH_STYLE)
    s3.create_bucket(Bucket=name)
    path, md5 = payload
    s3.upload_file(str(path), name, "big.bin", Config=MULTIPART)
    s3.download_file(name, "big.bin", f"{path}.back", Config=MULTIPART)
    with open(f"{path}.back", "rb") as f:
        downloaded = hashlib.md5(f.read()).hexdigest()

    sqs = session.resource("sqs", endpoint_url=endpoint)
    queue = sqs.create_queue(QueueName=name)
    queue.send_message(MessageBody="hello")
    received = [m.body for m in queue.receive_messages(MaxNumberOfMessages=1, WaitTimeSeconds=0)]
    return {"item": table.get_item(Key={"pk": "item-7"})["Item"]["n"], "scanned": scanned,
            "md5_ok": downloaded == md5, "received": received}


@pytest.fixture
def payload(tmp_path):
    data = os.urandom(20 * MIB)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    return path, hashlib.md5(data).hexdigest()


EXPECTED = {"item": 7, "scanned": 60, "md5_ok": True, "received": ["hello"]}


@pytest.mark.parametrize("make_session", [
    lambda: boto3.Session(region_name="us-east-1", **CREDS),
    lambda: resilient_aws.Session(region_name="us-east-1", **CREDS),  # the one changed line
], ids=["boto3", "resilient_aws"])
def test_the_same_program_gives_the_same_results(moto_url, payload, make_session, request):
    name = f"program-{request.node.callspec.id.replace('_', '-')}"
    assert program(make_session(), moto_url, name, payload) == EXPECTED


def test_with_every_second_request_answered_503_the_resilient_run_still_succeeds(moto_url, payload):
    # half of all requests failing is what a budget exists to cap and a breaker to open on: this run
    # raises both limits so that the retries, counted at the proxy, carry the program through
    policy = Policy(budget=BudgetPolicy(ratio=1.0), breaker=BreakerPolicy(failure_ratio=0.9),
                    retry=RetryPolicy(max_attempts=6, base_delay=0.0, max_delay=0.0), dns=NO_DNS)
    with FaultProxy(moto_url) as proxy:
        verdicts: dict[int, bool] = {}

        def every_second(request) -> bool:  # asked once per scripted fault: decide once per request
            return verdicts.setdefault(id(request), len(verdicts) % 2 == 1)

        proxy.fail_next(500, 503, match=every_second)
        session = resilient_aws.Session(region_name="us-east-1", policy=policy, **CREDS)
        assert program(session, proxy.url, "program-faulty", payload) == EXPECTED
        failed = sum(1 for r in proxy.requests if r.fault is not None)
        assert failed > 10
        # every failed request was followed by its retry: a later request of the same call (botocore's
        # amz-sdk-invocation-id is one per call, kept across its retries). Counting requests instead assumed no
        # call failed three times in a row, which parallel multipart parts sharing one alternation can do.
        calls: dict[str | None, list[str | None]] = {}
        for r in proxy.requests:
            calls.setdefault(r.header("amz-sdk-invocation-id"), []).append(r.fault)
        assert None not in calls
        assert all(faults[-1] is None for faults in calls.values()), calls


def _two_regions(moto_url, **policy):
    session = resilient_aws.Session(region_name="us-east-1", failover_regions=["us-west-2"],
                                    policy=Policy(dns=NO_DNS, retry=RetryPolicy(base_delay=0, max_delay=0),
                                                  **policy), **CREDS)
    return session


@pytest.fixture
def proxied_regions(moto_url):
    """A resilient client over two regions, each behind its own fault proxy; and the proxies."""
    with FaultProxy(moto_url) as east, FaultProxy(moto_url, host="127.0.0.2") as west:
        client = _two_regions(moto_url).client("dynamodb", endpoint_urls={"us-east-1": east.url,
                                                                          "us-west-2": west.url})
        yield client, east, west


def _add_trace_header(request, **kwargs):
    request.headers["x-trace-id"] = "abc"


def test_a_header_hook_on_meta_events_is_on_the_request_that_failed_over(proxied_regions):
    client, east, west = proxied_regions
    client.meta.events.register("before-sign.dynamodb", _add_trace_header)
    east.refuse()
    client.list_tables()
    assert [r.header("x-trace-id") for r in west.requests] == ["abc"]


def test_a_handler_unregistered_from_meta_events_is_gone_in_every_region(proxied_regions):
    client, east, west = proxied_regions
    client.meta.events.register("before-sign.dynamodb", _add_trace_header, unique_id="trace")
    client.meta.events.unregister("before-sign.dynamodb", unique_id="trace")
    east.refuse()
    client.list_tables()
    assert [r.header("x-trace-id") for r in west.requests] == [None]


def test_stubber_on_a_resilient_client_gives_what_it_gives_on_a_boto3_client(moto_url):
    from botocore.stub import Stubber

    def run(client) -> list:
        outcomes = []
        with Stubber(client) as stubber:
            stubber.add_response("list_tables", {"TableNames": ["aaa"]})
            stubber.add_client_error("list_tables", service_error_code="InternalServerError", http_status_code=500)
            stubber.add_response("list_tables", {"TableNames": ["bbb"]})
            for _ in range(3):
                try:
                    outcomes.append(client.list_tables()["TableNames"])
                except client.exceptions.ClientError as e:
                    outcomes.append(e.response["Error"]["Code"])
        return outcomes

    plain = boto3.Session(region_name="us-east-1", **CREDS).client("dynamodb", endpoint_url=moto_url)
    resilient = _two_regions(moto_url).client("dynamodb", endpoint_urls={"us-east-1": moto_url,
                                                                          "us-west-2": moto_url})
    assert run(resilient) == run(plain) == [["aaa"], "InternalServerError", ["bbb"]]


def test_a_resources_client_is_the_resilient_client(moto_url):
    table = _two_regions(moto_url, failover=FailoverPolicy()).resource("dynamodb").Table("x")
    assert isinstance(table.meta.client, resilient_aws.ResilientClient)
    assert table.meta.client.regions == ("us-east-1", "us-west-2")
