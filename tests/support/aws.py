"""Shared pieces of the tests that talk to moto's HTTP server: credentials, tables, breakers."""

from __future__ import annotations

import contextlib

import pytest

import resilient_aws
from resilient_aws.testing.aws import create_table

__all__ = ["CREDS", "NO_DNS", "create_table", "open_breaker"]

CREDS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
NO_DNS = resilient_aws.DnsPolicy(enabled=False)


def open_breaker(client, region: str, call, limit: int = 200) -> None:
    """Make ``call()`` until ``region``'s breaker is open; bounded, so a breaker that never opens fails
    the test instead of hanging it. Errors of the calls themselves are the point, so they are ignored."""
    from botocore.exceptions import ClientError

    for _ in range(limit):
        if client.stats()["regions"][region]["breaker"] == "open":
            return
        with contextlib.suppress(ClientError, resilient_aws.CircuitOpenError):
            call()
    pytest.fail(f"{region}'s breaker did not open within {limit} calls")
