"""Retry amplification under a total outage, counted at the server: the asyncio client vs aiobotocore's
legacy retries.

The port of ``tests/integration/test_storm.py``: every request gets a 503 from a real HTTP server on
loopback, which counts what it received; the bound is on what the server saw, not what the client says.
"""

from __future__ import annotations

import asyncio

import pytest
from aiobotocore.config import AioConfig
from aiobotocore.endpoint import AioEndpoint
from aiobotocore.session import get_session
from support.aws import CREDS, NO_DNS

from resilient_aws import BreakerPolicy, BudgetPolicy, Policy, RetryPolicy, aio

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

KEY = {"TableName": "t", "Key": {"pk": {"S": "1"}}}
CALLS = 2000
TASKS = 50


async def _call_all(fn, n):
    """Await ``n`` calls one after another; how many failed."""
    failures = 0
    for _ in range(n):
        try:
            await fn(**KEY)
        except Exception:
            failures += 1
    return failures


def _budget_only(budget: BudgetPolicy) -> Policy:
    """Ten attempts a call allowed, the budget alone to stop them (no breaker help)."""
    return Policy(retry=RetryPolicy(max_attempts=10, base_delay=0.0, max_delay=0.0), budget=budget,
                  breaker=BreakerPolicy(enabled=False), dns=NO_DNS)


def _client(server, policy):
    return aio.Session(region_name="us-east-1", policy=policy, **CREDS).create_client(
        "dynamodb", endpoint_url=server.url)


async def test_budget_bounds_requests_to_calls_times_one_plus_ratio_plus_floor(counting_server):
    server = counting_server(status=503)
    budget = BudgetPolicy(ratio=0.1, min_per_second=1.0, window=600.0)   # one window spans the whole test
    async with _client(server, _budget_only(budget)) as client:
        assert await _call_all(client.get_item, CALLS) == CALLS
        stats = client.stats()
    bound = CALLS * (1 + budget.ratio) + budget.min_per_second * budget.window
    print(f"\nresilient_aws.aio: {server.requests} requests for {CALLS} calls (bound {bound:.0f})")
    assert CALLS <= server.requests <= bound
    assert stats["attempts"] == server.requests
    assert stats["retries_denied_by_budget"] > 0


async def test_budget_bounds_requests_when_the_calls_are_concurrent_tasks(counting_server):
    server = counting_server(status=503)
    budget = BudgetPolicy(ratio=0.1, min_per_second=1.0, window=600.0)
    async with _client(server, _budget_only(budget)) as client:
        failures = await asyncio.gather(*(_call_all(client.get_item, CALLS // TASKS) for _ in range(TASKS)))
        stats = client.stats()
    assert sum(failures) == CALLS
    bound = CALLS * (1 + budget.ratio) + budget.min_per_second * budget.window
    assert CALLS <= server.requests <= bound
    assert stats["attempts"] == server.requests
    assert (stats["calls"], stats["failed"], stats["cancelled"]) == (CALLS, CALLS, 0)


async def test_aiobotocore_legacy_mode_makes_ten_requests_per_dynamodb_call(counting_server, monkeypatch):
    server = counting_server(status=503)

    async def no_sleep(self, seconds):  # legacy mode sleeps 0.05 * 2^(n-1) s between attempts (~25 s a call)
        return None

    # aiobotocore's endpoint does that sleep itself: replace only it; the request count is untouched
    monkeypatch.setattr(AioEndpoint, "_sleep", no_sleep)
    calls = 20
    async with get_session().create_client("dynamodb", region_name="us-east-1", endpoint_url=server.url,
                                           config=AioConfig(retries={"mode": "legacy"}), **CREDS) as legacy:
        assert await _call_all(legacy.get_item, calls) == calls
    per_call = server.requests / calls
    print(f"\naiobotocore legacy: {per_call:.1f} requests per call (x{CALLS} calls = {per_call * CALLS:.0f})")
    assert per_call == 10


async def test_default_policy_breaker_cuts_traffic_to_a_dead_endpoint_to_probes(counting_server):
    server = counting_server(status=503)
    policy = Policy(retry=RetryPolicy(base_delay=0.0, max_delay=0.0), dns=NO_DNS)
    async with _client(server, policy) as client:
        assert await _call_all(client.get_item, CALLS) == CALLS
        s = client.stats()
    print(f"\nresilient_aws.aio defaults: {server.requests} requests for {CALLS} calls; "
          f"{s['circuit_open_rejections']} failed fast")
    assert server.requests < 100
    assert s["circuit_open_rejections"] > CALLS - 100
