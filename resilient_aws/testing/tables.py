"""Set-up for loopback servers: a plain botocore client, DynamoDB tables and their items.

Why a module of its own: a test or a drill sets its data up through these before it breaks anything,
with clients that must not hide a failure (retries off, short timeouts); none of it is about serving
or breaking requests. Items are written with boto3's batch writer, which groups them 25 to a
``BatchWriteItem`` and sends unprocessed items again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["TEST_CREDENTIALS", "create_table", "plain_client", "put_items", "seed_regions"]

#: Credentials moto accepts; they map to moto's default account, so every client shares the data.
TEST_CREDENTIALS: dict[str, str] = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def plain_client(service: str, region: str, endpoint_url: str, **config: Any) -> Any:
    """A plain botocore client for loopback servers: test credentials, short timeouts, retries off
    unless ``config`` says otherwise (``retries={"mode": "standard"}``)."""
    import botocore.session
    from botocore.config import Config

    options: dict[str, Any] = {"retries": {"total_max_attempts": 1}, "connect_timeout": 2, "read_timeout": 10}
    options.update(config)
    session = botocore.session.get_session()
    return session.create_client(service, region_name=region, endpoint_url=endpoint_url,
                                 config=Config(**options), aws_access_key_id=TEST_CREDENTIALS["aws_access_key_id"],
                                 aws_secret_access_key=TEST_CREDENTIALS["aws_secret_access_key"])


def create_table(client: Any, name: str, *, key: str = "pk", items: Iterable[Mapping[str, Any]] = ()) -> None:
    """Create a pay-per-request DynamoDB table with a string hash key (if missing) and put ``items``
    (DynamoDB-typed: ``{"pk": {"S": "1"}, ...}``) through ``client``, a botocore DynamoDB client."""
    with contextlib.suppress(client.exceptions.ResourceInUseException):
        client.create_table(TableName=name, KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
                            AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
                            BillingMode="PAY_PER_REQUEST")
    put_items(client, name, items)


def put_items(client: Any, table: str, items: Iterable[Mapping[str, Any]]) -> int:
    """Write ``items`` (DynamoDB-typed) to ``table`` through ``client``; returns how many were written.

    This is what ``boto3.resource("dynamodb").Table(table).batch_writer()`` returns, given the caller's
    own low-level client: its endpoint, region and event hooks, and items already in DynamoDB's wire
    types (the batch writer passes items to ``batch_write_item`` as they are; a resource client would
    serialize Python values first).
    """
    from boto3.dynamodb.table import BatchWriter

    written = 0
    with BatchWriter(table, client, flush_amount=25) as batch:
        for item in items:
            batch.put_item(Item=dict(item))
            written += 1
    return written


def seed_regions(endpoints: Mapping[str, Any], table: str, items: Iterable[Mapping[str, Any]], *,
                 key: str = "pk") -> None:
    """Create ``table`` in every region and write the same ``items`` to each: global-table-like data.

    ``endpoints`` maps a region to a :class:`~resilient_aws.testing.endpoint.LoopbackEndpoint` or to a URL.
    """
    items = list(items)
    for region, ep in endpoints.items():
        url = ep if isinstance(ep, str) else ep.url
        create_table(plain_client("dynamodb", region, url), table, key=key, items=items)
