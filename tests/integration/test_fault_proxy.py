"""The fault proxy itself: it forwards to a real moto server, injects each scripted fault once, and records
what botocore really put on the wire."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import io
import json
import socket
import time
import zlib

import botocore
import botocore.config
import botocore.session
import pytest
from botocore.exceptions import (
    ChecksumError,
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    HTTPClientError,
)
from support.aws import CREDS, create_table
from support.bodies import OneWayStream
from support.fault_proxy import CORRUPT_CRC, DELAY, DROP, FAIL, FaultProxy, target

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]

TABLE = "fault-proxy"
BUCKET = "fault-proxy"
MIB = bytes(range(256)) * 4096
# moto picks the service from the credential scope; it does not check the signature
RAW_DYNAMODB_HEADERS = {
    "Content-Type": "application/x-amz-json-1.0",
    "X-Amz-Target": "DynamoDB_20120810.ListTables",
    "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/dynamodb/aws4_request, "
    "SignedHeaders=host, Signature=00",
}


@pytest.fixture(scope="module")
def upstream_url(moto_url):
    """The suite's moto server, with this module's table and bucket."""
    session = botocore.session.get_session()
    ddb = session.create_client("dynamodb", region_name="us-east-1", endpoint_url=moto_url, **CREDS)
    create_table(ddb, TABLE)
    s3 = session.create_client("s3", region_name="us-east-1", endpoint_url=moto_url, **CREDS)
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=BUCKET)
    return moto_url


@pytest.fixture
def proxy(upstream_url):
    with FaultProxy(upstream_url) as p:
        yield p


def client(service: str, proxy: FaultProxy, **config):
    config.setdefault("retries", {"total_max_attempts": 1})
    return botocore.session.get_session().create_client(
        service, region_name="us-east-1", endpoint_url=proxy.url, config=botocore.config.Config(**config), **CREDS)


def raw_list_tables(proxy: FaultProxy) -> tuple[http.client.HTTPResponse, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    try:
        conn.request("POST", "/", body=b"{}", headers=RAW_DYNAMODB_HEADERS)
        response = conn.getresponse()
        return response, response.read()
    finally:
        conn.close()


Unsized = OneWayStream


# --- pass-through and records ------------------------------------------------------------------------


def test_request_passes_through_and_is_recorded_with_target_and_body(proxy):
    dynamodb = client("dynamodb", proxy)
    dynamodb.put_item(TableName=TABLE, Item={"pk": {"S": "a"}, "v": {"S": "1"}})

    assert dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": "a"}})["Item"]["v"] == {"S": "1"}
    put, get = proxy.requests
    assert (put.method, put.path, put.target, put.fault) == ("POST", "/", "DynamoDB_20120810.PutItem", None)
    assert put.json() == {"TableName": TABLE, "Item": {"pk": {"S": "a"}, "v": {"S": "1"}}}
    assert put.body_md5 == hashlib.md5(put.body).hexdigest()
    assert put.header("Host") == put.headers["host"] == f"127.0.0.1:{proxy.port}"
    assert put.attempt == 1
    assert get.target == "DynamoDB_20120810.GetItem"


def test_keep_alive_serves_several_requests_on_one_connection(proxy):
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    sockets = []
    try:
        for _ in range(3):
            conn.request("POST", "/", body=b"{}", headers=RAW_DYNAMODB_HEADERS)
            response = conn.getresponse()
            # moto's backends are per process: other tests' tables may be listed too
            assert response.status == 200 and "fault-proxy" in json.loads(response.read())["TableNames"]
            sockets.append(conn.sock)
    finally:
        conn.close()

    assert sockets[0] is not None
    assert sockets == [sockets[0]] * 3
    assert proxy.count() == 3


def test_count_takes_a_matcher_and_reset_forgets_the_records_but_not_the_script(proxy):
    dynamodb = client("dynamodb", proxy)
    dynamodb.list_tables()
    dynamodb.describe_table(TableName=TABLE)
    assert (proxy.count(), proxy.count(target("ListTables")), proxy.count(target("GetItem"))) == (2, 1, 0)

    proxy.fail_next(1)
    proxy.reset()

    assert (proxy.requests, proxy.pending_faults) == ([], 1)


def test_head_answer_keeps_the_content_length_of_the_object(proxy):
    client("s3", proxy).put_object(Bucket=BUCKET, Key="head", Body=b"12345")

    assert client("s3", proxy).head_object(Bucket=BUCKET, Key="head")["ContentLength"] == 5


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.1", "::", "example.com"])
def test_a_non_loopback_host_is_refused(host):
    with pytest.raises(ValueError, match="loopback"):
        FaultProxy("http://127.0.0.1:1", host=host)


# --- faults ------------------------------------------------------------------------------------------


def test_fail_next_answers_exactly_one_request_with_the_status(proxy):
    dynamodb = client("dynamodb", proxy)
    proxy.fail_next(1, 503)

    with pytest.raises(ClientError) as caught:
        dynamodb.list_tables()
    dynamodb.list_tables()

    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert caught.value.response["Error"]["Code"] == "ServiceUnavailable"
    assert [r.fault for r in proxy.requests] == [FAIL, None]


def test_fail_next_gives_s3_an_xml_error_it_parses(proxy):
    s3 = client("s3", proxy)
    proxy.fail_next(1, 500, "InternalError")

    with pytest.raises(ClientError) as caught:
        s3.list_objects_v2(Bucket=BUCKET)

    assert caught.value.response["Error"]["Code"] == "InternalError"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500


def test_faults_are_applied_in_the_order_they_were_scripted(proxy):
    dynamodb = client("dynamodb", proxy)
    proxy.fail_next(1, 500, "InternalServerError")
    proxy.fail_next(1, 503)
    statuses = []
    for _ in range(3):
        try:
            statuses.append(dynamodb.list_tables()["ResponseMetadata"]["HTTPStatusCode"])
        except ClientError as e:
            statuses.append(e.response["ResponseMetadata"]["HTTPStatusCode"])

    assert statuses == [500, 503, 200]


def test_clear_faults_forgets_the_script(proxy):
    proxy.fail_next(3)
    proxy.clear_faults()

    client("dynamodb", proxy).list_tables()
    assert proxy.pending_faults == 0


def test_drop_next_closes_the_connection_without_an_answer_once(proxy):
    dynamodb = client("dynamodb", proxy)
    proxy.drop_next()

    with pytest.raises(HTTPClientError) as caught:
        dynamodb.list_tables()
    dynamodb.list_tables()

    assert isinstance(caught.value, ConnectionClosedError)
    assert [r.fault for r in proxy.requests] == [DROP, None]


def test_corrupt_crc_next_sends_a_crc32_that_does_not_match_the_body(proxy):
    proxy.corrupt_crc_next()

    corrupted, body = raw_list_tables(proxy)
    assert int(corrupted.getheader("x-amz-crc32")) != zlib.crc32(body)
    assert len(corrupted.headers.get_all("x-amz-crc32")) == 1
    intact, body = raw_list_tables(proxy)
    assert int(intact.getheader("x-amz-crc32")) == zlib.crc32(body)


def test_corrupt_crc_next_fails_a_legacy_dynamodb_client_on_its_last_attempt(proxy):
    dynamodb = client("dynamodb", proxy, retries={"mode": "legacy", "total_max_attempts": 1})
    proxy.corrupt_crc_next()

    with pytest.raises(ChecksumError):
        dynamodb.list_tables()


def test_corrupt_crc_next_is_retried_by_a_standard_dynamodb_client(proxy):
    dynamodb = client("dynamodb", proxy, retries={"mode": "standard", "total_max_attempts": 2})
    proxy.corrupt_crc_next(match=target("GetItem"))

    dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": "missing"}})

    assert [(r.attempt, r.fault) for r in proxy.requests] == [(1, CORRUPT_CRC), (2, None)]


def test_delay_next_holds_the_request_before_forwarding(proxy):
    dynamodb = client("dynamodb", proxy)
    dynamodb.list_tables()  # the client's first call pays for loading its models
    proxy.delay_next(0.3)

    started = time.monotonic()
    dynamodb.list_tables()
    elapsed = time.monotonic() - started

    assert 0.3 <= elapsed < 1.5
    assert [r.fault for r in proxy.requests] == [None, DELAY]


def test_match_applies_a_fault_only_to_matching_requests(proxy):
    dynamodb = client("dynamodb", proxy)
    proxy.fail_next(1, 400, "ThrottlingException", match=target("GetItem"))

    dynamodb.list_tables()
    dynamodb.put_item(TableName=TABLE, Item={"pk": {"S": "m"}})
    assert proxy.pending_faults == 1
    with pytest.raises(ClientError, match="ThrottlingException"):
        dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": "m"}})

    assert [(r.target.split(".")[-1], r.fault) for r in proxy.requests] == [
        ("ListTables", None), ("PutItem", None), ("GetItem", FAIL)]


def test_records_show_every_attempt_of_one_call_with_its_idempotency_token(proxy):
    dynamodb = client("dynamodb", proxy, retries={"mode": "standard", "total_max_attempts": 3})
    proxy.fail_next(2, 500, "InternalServerError")

    dynamodb.transact_write_items(TransactItems=[{"Put": {"TableName": TABLE, "Item": {"pk": {"S": "t"}}}}])

    attempts = proxy.requests
    assert [(r.attempt, r.fault) for r in attempts] == [(1, FAIL), (2, FAIL), (3, None)]
    assert len({r.json()["ClientRequestToken"] for r in attempts}) == 1
    assert len({r.header("amz-sdk-invocation-id") for r in attempts}) == 1


# --- S3 bodies ---------------------------------------------------------------------------------------


def test_put_object_of_a_bytesio_goes_through_whole_after_100_continue(proxy):
    s3 = client("s3", proxy)

    s3.put_object(Bucket=BUCKET, Key="sized", Body=io.BytesIO(MIB))

    put = proxy.requests[0]
    assert (put.header("expect"), put.header("content-length")) == ("100-continue", str(len(MIB)))
    assert put.body_md5 == hashlib.md5(MIB).hexdigest()
    assert hashlib.md5(s3.get_object(Bucket=BUCKET, Key="sized")["Body"].read()).digest() == hashlib.md5(MIB).digest()


def test_chunked_put_object_is_decoded_and_stores_the_right_bytes(proxy):
    # botocore only goes chunked for a body it cannot size, and over http:// only when it does not sign the
    # payload (SigV4 hashes it, which needs a rewind): an unsigned client, no checksum unless required
    s3 = client("s3", proxy, signature_version=botocore.UNSIGNED, request_checksum_calculation="when_required")

    s3.put_object(Bucket=BUCKET, Key="chunked", Body=Unsized(MIB))

    put = proxy.requests[0]
    assert put.header("transfer-encoding") == "chunked"
    assert put.body_md5 == hashlib.md5(MIB).hexdigest()
    stored = client("s3", proxy).get_object(Bucket=BUCKET, Key="chunked")["Body"].read()
    assert hashlib.md5(stored).hexdigest() == hashlib.md5(MIB).hexdigest()


# --- refusing connections ----------------------------------------------------------------------------


def test_refuse_makes_new_connections_fail_and_accept_listens_again_on_the_same_url(proxy):
    dynamodb = client("dynamodb", proxy)
    dynamodb.list_tables()
    url = proxy.url

    proxy.refuse()
    with pytest.raises(EndpointConnectionError):
        dynamodb.list_tables()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=1).close()
    proxy.accept()

    assert proxy.url == url
    dynamodb.list_tables()
    assert proxy.count() == 2


def test_refuse_closes_open_keep_alive_connections(proxy):
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    try:
        conn.request("POST", "/", body=b"{}", headers=RAW_DYNAMODB_HEADERS)
        conn.getresponse().read()

        proxy.refuse()
        with pytest.raises((http.client.HTTPException, OSError)):
            conn.request("POST", "/", body=b"{}", headers=RAW_DYNAMODB_HEADERS)
            conn.getresponse()
    finally:
        conn.close()
    assert proxy.count() == 1
