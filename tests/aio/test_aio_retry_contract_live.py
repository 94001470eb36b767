"""The retry contract on the wire, for the asyncio client: a retry resilient_aws asks for is the request
aiobotocore would repeat.

The port of ``tests/integration/test_retry_contract_live.py``, against the same servers: moto's HTTP
server holds the data; a fault-injecting proxy on loopback in front of it answers 503, drops
connections or damages a response's CRC32 on cue, and records every request it received (the token,
the body's MD5 and the ``amz-sdk-request`` header are read where a server would read them). moto
keeps regions apart by the request's signing region, so both regions' proxies share one server.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import sys

import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore import UNSIGNED
from botocore.exceptions import ChecksumError
from support.aws import CREDS, NO_DNS
from support.bodies import OneWayStream
from support.fault_proxy import FaultProxy, target
from support.moto_state import tables_left_as_found

from resilient_aws import BreakerPolicy, ConfigError, FailoverPolicy, Policy, RetryPolicy, aio
from resilient_aws.testing.aws import create_table, plain_client

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

EAST, WEST = "us-east-1", "us-west-2"
TABLE = "aio-contract"
ONLY_EAST = "aio-only-in-east"
KEY = {"pk": {"S": "k"}}
BUCKET = "aio-contract-bucket"
FAST = RetryPolicy(base_delay=0.0, max_delay=0.0)
S3_PATH_STYLE = AioConfig(s3={"addressing_style": "path"})


@pytest.fixture(scope="module")
def seeded(moto_url):
    with tables_left_as_found((EAST, WEST)):
        for region in (EAST, WEST):
            create_table(plain_client("dynamodb", region, moto_url), TABLE,
                         items=[{"pk": {"S": "k"}, "region": {"S": region}}])
        create_table(plain_client("dynamodb", EAST, moto_url), ONLY_EAST, items=[{"pk": {"S": "k"}}])
        s3 = plain_client("s3", EAST, moto_url)
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
            s3.create_bucket(Bucket=BUCKET)
        yield moto_url
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
            for obj in page.get("Contents", ()):
                s3.delete_object(Bucket=BUCKET, Key=obj["Key"])
        s3.delete_bucket(Bucket=BUCKET)


@pytest.fixture
def proxies(seeded):
    with FaultProxy(seeded) as east, FaultProxy(seeded, host="127.0.0.2") as west:
        yield {EAST: east, WEST: west}


def client(proxies, service="dynamodb", *, failover=None, retry=FAST, config=None, breaker=None):
    """The asyncio client of both proxies (us-east-1 primary): ``async with client(proxies) as ddb``."""
    policy = Policy(retry=retry, failover=failover or FailoverPolicy(), dns=NO_DNS,
                    breaker=breaker or BreakerPolicy())
    session = aio.Session(region_name=EAST, failover_regions=[WEST], policy=policy, **CREDS)
    return session.create_client(service, endpoint_urls={r: p.url for r, p in proxies.items()}, config=config)


# -- 1. idempotency tokens ------------------------------------------------------------------------

async def _transact(ddb, value):
    await ddb.transact_write_items(TransactItems=[{"Put": {"TableName": TABLE, "Item": {"pk": {"S": value}}}}])


async def test_the_token_is_the_same_on_every_attempt_in_region(proxies):
    proxies[EAST].drop_next(1, match=target("TransactWriteItems"))
    proxies[EAST].fail_next(1, 503, match=target("TransactWriteItems"))
    async with client(proxies) as ddb:
        await _transact(ddb, "t1")
    tokens = [r.json()["ClientRequestToken"] for r in proxies[EAST].requests]
    assert len(tokens) == 3 and len(set(tokens)) == 1


async def test_the_token_is_the_same_after_failover(proxies):
    proxies[EAST].fail_next(3, 503, match=target("TransactWriteItems"))
    async with client(proxies, failover=FailoverPolicy(allow_writes=True)) as ddb:
        await _transact(ddb, "t2")
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


def _stored_md5(proxies, key):
    s3 = plain_client("s3", EAST, proxies[EAST].url)
    return hashlib.md5(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()).hexdigest()


def _puts(proxy):
    return [r for r in proxy.requests if r.method == "PUT"]


async def test_a_file_retried_in_region_is_stored_whole(proxies, ten_mib):
    path, md5 = ten_mib
    proxies[EAST].fail_next(1, 503, match=lambda r: r.method == "PUT")
    async with client(proxies, "s3", config=S3_PATH_STYLE) as s3:
        with open(path, "rb") as f:
            await s3.put_object(Bucket=BUCKET, Key="in-region", Body=f)
    assert [r.body_md5 for r in _puts(proxies[EAST])] == [md5, md5]
    assert _stored_md5(proxies, "in-region") == md5


async def test_a_bytesio_body_whose_first_attempt_fails_is_sent_again_whole(proxies):
    data = os.urandom(256 * 1024)
    md5 = hashlib.md5(data).hexdigest()
    proxies[EAST].fail_next(1, 503, match=lambda r: r.method == "PUT")
    async with client(proxies, "s3", config=S3_PATH_STYLE) as s3:
        result = await s3.put_object(Bucket=BUCKET, Key="bytesio", Body=io.BytesIO(data))
    assert [r.body_md5 for r in _puts(proxies[EAST])] == [md5, md5]
    assert result["ResponseMetadata"]["RetryAttempts"] == 1
    assert _stored_md5(proxies, "bytesio") == md5


async def test_a_file_moved_to_another_region_is_stored_whole(proxies, ten_mib):
    path, md5 = ten_mib
    proxies[EAST].fail_next(3, 503, match=lambda r: r.method == "PUT")
    async with client(proxies, "s3", config=S3_PATH_STYLE, failover=FailoverPolicy(allow_writes=True)) as s3:
        with open(path, "rb") as f:
            await s3.put_object(Bucket=BUCKET, Key="moved", Body=f)
    assert [r.body_md5 for r in _puts(proxies[WEST])] == [md5]
    assert _stored_md5(proxies, "moved") == md5


async def test_a_body_that_cannot_rewind_gets_one_attempt_and_the_original_error(proxies):
    config = AioConfig(signature_version=UNSIGNED, request_checksum_calculation="when_required",
                       s3={"addressing_style": "path"})
    proxies[EAST].fail_next(1, 503, code="SlowDown", match=lambda r: r.method == "PUT")
    async with client(proxies, "s3", config=config, failover=FailoverPolicy(allow_writes=True)) as s3:
        with pytest.raises(s3.exceptions.ClientError) as info:
            await s3.put_object(Bucket=BUCKET, Key="one-way", Body=OneWayStream(b"x" * 4096))
    assert info.value.response["Error"]["Code"] == "SlowDown"
    assert len(_puts(proxies[EAST])) == 1
    assert proxies[WEST].requests == []


# -- 3. DynamoDB CRC32 ----------------------------------------------------------------------------

async def test_a_response_with_a_wrong_crc32_is_retried_and_the_right_item_returned(proxies):
    proxies[EAST].corrupt_crc_next(1, match=target("GetItem"))
    async with client(proxies, failover=FailoverPolicy(enabled=False)) as ddb:
        assert (await ddb.get_item(TableName=TABLE, Key=KEY))["Item"]["region"] == {"S": EAST}
    assert proxies[EAST].count(target("GetItem")) == 2


async def test_when_every_response_is_damaged_the_caller_gets_a_checksum_error_not_the_bytes(proxies):
    proxies[EAST].corrupt_crc_next(3, match=target("GetItem"))
    async with client(proxies, failover=FailoverPolicy(enabled=False)) as ddb:
        with pytest.raises(ChecksumError):
            await ddb.get_item(TableName=TABLE, Key=KEY)
        stats = ddb.stats()
    assert proxies[EAST].count(target("GetItem")) == 3
    assert (stats["calls"], stats["failed"], stats["attempts"]) == (1, 1, 3)


# -- 4. attempts counted --------------------------------------------------------------------------

async def test_retry_attempts_and_the_header_count_attempts_on_the_wire(proxies):
    proxies[EAST].fail_next(2, 503, match=target("GetItem"))
    async with client(proxies, failover=FailoverPolicy(enabled=False)) as ddb:
        result = await ddb.get_item(TableName=TABLE, Key=KEY)
    assert result["ResponseMetadata"]["RetryAttempts"] == 2
    assert [r.attempt for r in proxies[EAST].requests] == [1, 2, 3]


async def test_retry_attempts_count_the_attempts_of_a_call_moved_to_another_region(proxies):
    proxies[EAST].fail_next(1, 503, match=target("GetItem"))
    async with client(proxies) as ddb:
        result = await ddb.get_item(TableName=TABLE, Key=KEY)
    assert result["Item"]["region"] == {"S": WEST}
    assert result["ResponseMetadata"]["RetryAttempts"] == 1


# -- 5. Stubber -----------------------------------------------------------------------------------

_connects: list[object] = []
_counting = [False]


def _audit(event, args):
    if event == "socket.connect" and _counting[0]:
        _connects.append(args)


sys.addaudithook(_audit)


async def test_a_stubbed_error_is_raised_once_and_opens_no_socket(proxies):
    from aiobotocore.stub import AioStubber

    async with client(proxies) as ddb:
        with AioStubber(ddb) as stubber:
            stubber.add_client_error("get_item", service_error_code="InternalServerError", http_status_code=500)
            stubber.add_response("get_item", {"Item": {"pk": {"S": "stubbed"}}})
            _connects.clear()
            _counting[0] = True
            try:
                with pytest.raises(ddb.exceptions.InternalServerError):
                    await ddb.get_item(TableName=TABLE, Key=KEY)
                assert (await ddb.get_item(TableName=TABLE, Key=KEY))["Item"] == {"pk": {"S": "stubbed"}}
            finally:
                _counting[0] = False
            stubber.assert_no_pending_responses()
    assert _connects == []
    assert proxies[EAST].requests == [] and proxies[WEST].requests == []



async def test_stubbed_errors_are_not_a_health_signal(proxies):
    from aiobotocore.stub import AioStubber

    async with client(proxies, breaker=BreakerPolicy(min_calls=3)) as ddb:
        with AioStubber(ddb) as stubber:
            for _ in range(5):
                stubber.add_client_error("get_item", service_error_code="InternalServerError", http_status_code=500)
            for _ in range(5):
                with pytest.raises(ddb.exceptions.InternalServerError):
                    await ddb.get_item(TableName=TABLE, Key=KEY)
        east = ddb.stats()["regions"][EAST]
        assert (east["breaker"], east["failed_attempts"]) == ("closed", 0)
        assert (await ddb.get_item(TableName=TABLE, Key=KEY))["Item"]["region"] == {"S": EAST}

# -- 6. failover never misleads -------------------------------------------------------------------

async def test_a_transient_error_on_a_table_only_the_primary_has_still_gets_the_item(proxies):
    proxies[EAST].fail_next(1, 503, match=target("GetItem"))
    async with client(proxies) as ddb:
        assert (await ddb.get_item(TableName=ONLY_EAST, Key=KEY))["Item"] == KEY
    assert proxies[WEST].count(target("GetItem")) == 1  # it said ResourceNotFound; nobody saw it


async def test_when_every_attempt_fails_the_caller_gets_the_primarys_error_not_the_replicas(proxies):
    proxies[EAST].fail_next(5, 503, match=target("GetItem"))
    async with client(proxies) as ddb:
        with pytest.raises(ddb.exceptions.ClientError) as info:
            await ddb.get_item(TableName=ONLY_EAST, Key=KEY)
    assert info.value.response["Error"]["Code"] == "ServiceUnavailable"


async def test_a_strongly_consistent_read_never_reaches_the_replica(proxies):
    proxies[EAST].fail_next(1, 503, match=target("GetItem"))
    async with client(proxies) as ddb:
        item = (await ddb.get_item(TableName=TABLE, Key=KEY, ConsistentRead=True))["Item"]
    assert item["region"] == {"S": EAST}
    assert proxies[WEST].requests == []


async def test_a_custom_endpoint_without_failover_endpoints_is_refused_at_create_client(proxies):
    session = aio.Session(region_name=EAST, failover_regions=[WEST], policy=Policy(dns=NO_DNS), **CREDS)
    with pytest.raises(ConfigError, match="endpoint_urls") as info:
        session.create_client("dynamodb", endpoint_url=proxies[EAST].url)  # raised before anything is awaited
    assert "us-west-2" in str(info.value)
    async with session.create_client("dynamodb", endpoint_url=proxies[EAST].url, failover_regions=[]) as ddb:
        assert (await ddb.get_item(TableName=TABLE, Key=KEY))["Item"]["region"] == {"S": EAST}  # no failover: fine


async def test_wrapping_a_client_with_a_custom_endpoint_needs_failover_endpoints(proxies):
    async with get_session().create_client("dynamodb", region_name=EAST, endpoint_url=proxies[EAST].url,
                                           **CREDS) as plain:
        with pytest.raises(ConfigError, match="endpoint_urls"):
            aio.wrap(plain, failover_regions=[WEST], policy=Policy(dns=NO_DNS))
        async with aio.wrap(plain, failover_regions=[WEST], policy=Policy(dns=NO_DNS),
                            endpoint_urls={WEST: proxies[WEST].url}) as wrapped:
            assert (await wrapped.get_item(TableName=TABLE, Key=KEY))["Item"]["region"] == {"S": EAST}


async def test_a_dead_endpoint_does_not_open_the_breaker_of_a_healthy_one_in_the_same_region(proxies):
    policy = Policy(retry=RetryPolicy(max_attempts=1), dns=NO_DNS, breaker=BreakerPolicy(min_calls=3))
    session = aio.Session(region_name=EAST, policy=policy, **CREDS)
    proxies[EAST].refuse()
    async with session.create_client("dynamodb", endpoint_url=proxies[EAST].url) as dead, \
            session.create_client("dynamodb", endpoint_url=proxies[WEST].url) as healthy:
        for _ in range(5):
            with contextlib.suppress(Exception):
                await dead.get_item(TableName=TABLE, Key=KEY)
        assert dead.stats()["regions"][EAST]["breaker"] == "open"
        assert (await healthy.get_item(TableName=TABLE, Key=KEY))["Item"]["region"] == {"S": EAST}
        assert healthy.stats()["regions"][EAST]["breaker"] == "closed"
