"""Real servers on loopback for the core's integration tests."""

from __future__ import annotations

import pytest
from moto.server import ThreadedMotoServer

import resilient_aws

CREDS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
NO_DNS = resilient_aws.DnsPolicy(enabled=False)


@pytest.fixture(scope="session")
def moto_url():
    """One moto HTTP server; moto keeps each region's data apart by the request's signing region."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def create_table(client, name: str) -> None:
    try:
        client.create_table(TableName=name, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                            BillingMode="PAY_PER_REQUEST")
    except client.exceptions.ResourceInUseException:
        pass
