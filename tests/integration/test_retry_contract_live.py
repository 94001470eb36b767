"""The retry contract on the wire: a retry resilient_aws asks for is the request botocore would repeat.

moto's HTTP server holds the data; a fault-injecting proxy on loopback in front of it answers 503,
drops connections or damages a response's CRC32 on cue, and records every request it received:
the token, the body's MD5 and the ``amz-sdk-request`` header are read where a server would read them.
moto keeps regions apart by the request's signing region, so both regions' proxies share one server.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys

import pytest
from botocore import UNSIGNED
from botocore.config import Config
from support.aws import CREDS, NO_DNS
from support.bodies import OneWayStream
from support.fault_proxy import FaultProxy, target

import resilient_aws
from resilient_aws import BreakerPolicy, ConfigError, FailoverPolicy, Policy, RetryPolicy
from resilient_aws.testing.aws import create_table, plain_client

pytestmark = pytest.mark.integration

EAST, WEST = "us-east-1", "us-west-2"
TABLE = "contract"
ONLY_EAST = "only-in-east"
KEY = {"pk": {"S": "k"}}
BUCKET = "contract-bucket"
FAST = RetryPolicy(base_delay=0.0, max_delay=0.0)


@pytest.fixture(scope="module")
def seeded(moto_url):
    for region in (EAST, WEST):
        create_table(plain_client("dynamodb", region, moto_url), TABLE,
                     items=[{"pk": {"S": "k"}, "region": {"S": region}}])
    create_table(plain_client("dynamodb", EAST, moto_url), ONLY_EAST, items=[{"pk": {"S": "k"}}])
    s3 = plain_client("s3", EAST, moto_url)
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=BUCKET)
    return moto_url


@pytest.fixture
def proxies(seeded):
    with FaultProxy(seeded) as east, FaultProxy(seeded, host="127.0.0.2") as west:
        yield {EAST: east, WEST: west}


def client(proxies, service="dynamodb", *, failover=None, retry=FAST, config=None, breaker=None):
    policy = Policy(retry=retry, failover=failover or FailoverPolicy(), dns=NO_DNS,
                    breaker=breaker or BreakerPolicy())
    session = resilient_aws.Session(region_name=EAST, failover_regions=[WEST], policy=policy, **CREDS)
    return session.client(service, endpoint_urls={r: p.url for r, p in proxies.items()}, config=config)


# -- 1. idempotency tokens ------------------------------------------------------------------------

def _transact(ddb, value):
    ddb.transact_write_items(TransactItems=[{"Put": {"TableName": TABLE, "Item": {"pk": {"S": value}}}}])


def test_the_token_is_the_same_on_every_attempt_in_region(proxies):
    ddb = client(proxies)
    proxies[EAST].drop_next(1, match=target("TransactWriteItems"))
    proxies[EAST].fail_next(1, 503, match=target("TransactWriteItems"))
    _transact(ddb, "t1")
    tokens = [r.json()["ClientRequestToken"] for r in proxies[EAST].requests]
    assert len(tokens) == 3 and len(set(tokens)) == 1


def test_the_token_is_the_same_after_failover(proxies):
    ddb = client(proxies, failover=FailoverPolicy(allow_writes=True))
    proxies[EAST].fail_next(3, 503, match=target("TransactWriteItems"))
    _transact(ddb, "t2")
    east = [r.json()["ClientRequestToken"] for r in proxies[EAST].requests]
    west = [r.json()["ClientRequestToken"] for r in proxies[WEST].requests]
    assert len(east) == 1 and west == east


# -- 2. bodies ------------------------------------------------------------------------------------

@pytest.fixture
def ten_mib(tmp_path):
    path = tmp_path / "payload.bin"
    data = os.urandom(10 * 1024 * 1024)
    path.write_bytes(data)
    return path, hashlib.md5(data).hexdigest()


S3_PATH_STYLE = Config(s3={"addressing_style": "path"})


def _stored_md5(proxies, key):
    s3 = plain_client("s3", EAST, proxies[EAST].url)
    return hashlib.md5(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()).hexdigest()


def test_a_file_retried_in_region_is_stored_whole(proxies, ten_mib):
    path, md5 = ten_mib
    s3 = client(proxies, "s3", config=S3_PATH_STYLE)
    proxies[EAST].fail_next(1, 503, match=lambda r: r.method == "PUT")
    with open(path, "rb") as f:
        s3.put_object(Bucket=BUCKET, Key="in-region", Body=f)
    puts = [r for r in proxies[EAST].requests if r.method == "PUT"]
    assert [r.body_md5 for r in puts] == [md5, md5]
    assert _stored_md5(proxies, "in-region") == md5


def test_a_file_moved_to_another_region_is_stored_whole(proxies, ten_mib):
    path, md5 = ten_mib
    s3 = client(proxies, "s3", config=S3_PATH_STYLE, failover=FailoverPolicy(allow_writes=True))
    proxies[EAST].fail_next(3, 503, match=lambda r: r.method == "PUT")
    with open(path, "rb") as f:
        s3.put_object(Bucket=BUCKET, Key="moved", Body=f)
    assert [r.body_md5 for r in proxies[WEST].requests if r.method == "PUT"] == [md5]
    assert _stored_md5(proxies, "moved") == md5




def test_a_body_that_cannot_rewind_gets_one_attempt_and_the_original_error(proxies):
    config = Config(signature_version=UNSIGNED, request_checksum_calculation="when_required",
                    s3={"addressing_style": "path"})
    s3 = client(proxies, "s3", config=config, failover=FailoverPolicy(allow_writes=True))
    proxies[EAST].fail_next(1, 503, code="SlowDown", match=lambda r: r.method == "PUT")
    with pytest.raises(s3.exceptions.ClientError) as info:
        s3.put_object(Bucket=BUCKET, Key="one-way", Body=OneWayStream(b"x" * 4096))
    assert info.value.response["Error"]["Code"] == "SlowDown"
    assert len([r for r in proxies[EAST].requests if r.method == "PUT"]) == 1
    assert proxies[WEST].requests == []


# -- 3. DynamoDB CRC32 ----------------------------------------------------------------------------

def test_a_response_with_a_wrong_crc32_is_retried_and_the_right_item_returned(proxies):
    ddb = client(proxies, failover=FailoverPolicy(enabled=False))
    proxies[EAST].corrupt_crc_next(1, match=target("GetItem"))
    assert ddb.get_item(TableName=TABLE, Key=KEY)["Item"]["region"] == {"S": EAST}
    assert proxies[EAST].count(target("GetItem")) == 2


# -- 4. attempts counted --------------------------------------------------------------------------

def test_retry_attempts_and_the_header_count_attempts_on_the_wire(proxies):
    ddb = client(proxies, failover=FailoverPolicy(enabled=False))
    proxies[EAST].fail_next(2, 503, match=target("GetItem"))
    result = ddb.get_item(TableName=TABLE, Key=KEY)
    assert result["ResponseMetadata"]["RetryAttempts"] == 2
    assert [r.attempt for r in proxies[EAST].requests] == [1, 2, 3]


# -- 5. Stubber -----------------------------------------------------------------------------------

_connects: list[object] = []
_counting = [False]


def _audit(event, args):
    if event == "socket.connect" and _counting[0]:
        _connects.append(args)


sys.addaudithook(_audit)


def test_a_stubbed_error_is_raised_once_and_opens_no_socket(proxies):
    from botocore.stub import Stubber

    ddb = client(proxies)
    with Stubber(ddb) as stubber:
        stubber.add_client_error("get_item", service_error_code="InternalServerError", http_status_code=500)
        stubber.add_response("get_item", {"Item": {"pk": {"S": "stubbed"}}})
        _connects.clear()
        _counting[0] = True
        try:
            with pytest.raises(ddb.exceptions.InternalServerError):
                ddb.get_item(TableName=TABLE, Key=KEY)
            assert ddb.get_item(TableName=TABLE, Key=KEY)["Item"] == {"pk": {"S": "stubbed"}}
        finally:
            _counting[0] = False
    assert _connects == []
    assert proxies[EAST].requests == [] and proxies[WEST].requests == []


# -- 6. failover never misleads -------------------------------------------------------------------

def test_a_transient_error_on_a_table_only_the_primary_has_still_gets_the_item(proxies):
    ddb = client(proxies)
    proxies[EAST].fail_next(1, 503, match=target("GetItem"))
    assert ddb.get_item(TableName=ONLY_EAST, Key=KEY)["Item"] == KEY
    assert proxies[WEST].count(target("GetItem")) == 1  # it said ResourceNotFound; nobody saw it


def test_when_every_attempt_fails_the_caller_gets_the_primarys_error_not_the_replicas(proxies):
    ddb = client(proxies)
    proxies[EAST].fail_next(5, 503, match=target("GetItem"))
    with pytest.raises(ddb.exceptions.ClientError) as info:
        ddb.get_item(TableName=ONLY_EAST, Key=KEY)
    assert info.value.response["Error"]["Code"] == "ServiceUnavailable"


def test_a_strongly_consistent_read_never_reaches_the_replica(proxies):
    ddb = client(proxies)
    proxies[EAST].fail_next(1, 503, match=target("GetItem"))
    item = ddb.get_item(TableName=TABLE, Key=KEY, ConsistentRead=True)["Item"]
    assert item["region"] == {"S": EAST}
    assert proxies[WEST].requests == []


def test_a_custom_endpoint_without_failover_endpoints_is_refused_at_client(proxies):
    session = resilient_aws.Session(region_name=EAST, failover_regions=[WEST], policy=Policy(dns=NO_DNS), **CREDS)
    with pytest.raises(ConfigError, match="endpoint_urls") as info:
        session.client("dynamodb", endpoint_url=proxies[EAST].url)
    assert "us-west-2" in str(info.value)
    session.client("dynamodb", endpoint_url=proxies[EAST].url, failover_regions=[])  # no failover: fine


def test_wrapping_a_client_with_a_custom_endpoint_needs_failover_endpoints(proxies):
    plain = plain_client("dynamodb", EAST, proxies[EAST].url)
    with pytest.raises(ConfigError, match="endpoint_urls"):
        resilient_aws.wrap(plain, failover_regions=[WEST], policy=Policy(dns=NO_DNS))
    wrapped = resilient_aws.wrap(plain, failover_regions=[WEST], policy=Policy(dns=NO_DNS),
                                 endpoint_urls={WEST: proxies[WEST].url})
    assert wrapped.get_item(TableName=TABLE, Key=KEY)["Item"]["region"] == {"S": EAST}


def test_a_dead_endpoint_does_not_open_the_breaker_of_a_healthy_one_in_the_same_region(proxies):
    policy = Policy(retry=RetryPolicy(max_attempts=1), dns=NO_DNS, breaker=BreakerPolicy(min_calls=3))
    session = resilient_aws.Session(region_name=EAST, policy=policy, **CREDS)
    proxies[EAST].refuse()
    dead = session.client("dynamodb", endpoint_url=proxies[EAST].url)
    healthy = session.client("dynamodb", endpoint_url=proxies[WEST].url)
    for _ in range(5):
        with contextlib.suppress(Exception):
            dead.get_item(TableName=TABLE, Key=KEY)
    assert dead.stats()["regions"][EAST]["breaker"] == "open"
    assert healthy.get_item(TableName=TABLE, Key=KEY)["Item"]["region"] == {"S": EAST}
    assert healthy.stats()["regions"][EAST]["breaker"] == "closed"
