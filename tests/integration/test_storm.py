"""Retry amplification under a total outage, counted at the server: resilient_aws vs botocore legacy."""

from __future__ import annotations

import types

import botocore.endpoint
import botocore.session
from botocore.config import Config
from support.aws import CREDS, NO_DNS

import resilient_aws
from resilient_aws import BreakerPolicy, BudgetPolicy, Policy, RetryPolicy

KEY = {"TableName": "t", "Key": {"pk": {"S": "1"}}}
CALLS = 2000


def _call_all(fn, n):
    failures = 0
    for _ in range(n):
        try:
            fn(**KEY)
        except Exception:
            failures += 1
    return failures


def test_budget_bounds_requests_to_calls_times_one_plus_ratio_plus_floor(counting_server):
    server = counting_server(status=503)
    budget = BudgetPolicy(ratio=0.1, min_per_second=1.0, window=600.0)   # one window spans the whole test
    policy = Policy(retry=RetryPolicy(max_attempts=10, base_delay=0.0, max_delay=0.0), budget=budget,
                    breaker=BreakerPolicy(enabled=False), dns=NO_DNS)   # the budget alone, no breaker help
    client = resilient_aws.Session(region_name="us-east-1", policy=policy, **CREDS).client(
        "dynamodb", endpoint_url=server.url)
    assert _call_all(client.get_item, CALLS) == CALLS
    bound = CALLS * (1 + budget.ratio) + budget.min_per_second * budget.window
    print(f"\nresilient_aws: {server.requests} requests for {CALLS} calls (bound {bound:.0f})")
    assert CALLS <= server.requests <= bound
    assert client.stats()["attempts"] == server.requests
    assert client.stats()["retries_denied_by_budget"] > 0


def test_botocore_legacy_mode_makes_ten_requests_per_dynamodb_call(counting_server, monkeypatch):
    server = counting_server(status=503)
    session = botocore.session.get_session()
    legacy = session.create_client("dynamodb", region_name="us-east-1", endpoint_url=server.url,
                                   config=Config(retries={"mode": "legacy"}), **CREDS)
    # legacy mode sleeps 0.05 * 2^(n-1) s between attempts (about 25 s per call): botocore's endpoint does
    # that sleep itself, so replace only that module's view of `time`; the request count is untouched.
    monkeypatch.setattr(botocore.endpoint, "time", types.SimpleNamespace(sleep=lambda seconds: None))
    calls = 20
    assert _call_all(legacy.get_item, calls) == calls
    per_call = server.requests / calls
    print(f"\nbotocore legacy: {per_call:.1f} requests per call (x{CALLS} calls = {per_call * CALLS:.0f})")
    assert per_call == 10


def test_default_policy_breaker_cuts_traffic_to_a_dead_endpoint_to_probes(counting_server):
    server = counting_server(status=503)
    policy = Policy(retry=RetryPolicy(base_delay=0.0, max_delay=0.0), dns=NO_DNS)
    client = resilient_aws.Session(region_name="us-east-1", policy=policy, **CREDS).client(
        "dynamodb", endpoint_url=server.url)
    assert _call_all(client.get_item, CALLS) == CALLS
    s = client.stats()
    print(f"\nresilient_aws defaults: {server.requests} requests for {CALLS} calls; "
          f"{s['circuit_open_rejections']} failed fast")
    assert server.requests < 100
    assert s["circuit_open_rejections"] > CALLS - 100
