"""Threads against a real loopback HTTP server: probes one at a time, no serialisation, no lost counts.

The server counts requests and the most it ever had in flight at once; those are the ground truth.
"""

from __future__ import annotations

import time

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from support.aws import CREDS, NO_DNS, open_breaker
from support.threads import run_in_threads

import resilient_aws
from resilient_aws import BreakerPolicy, BudgetPolicy, CircuitOpenError, Policy, RetryPolicy
from resilient_aws.events import BREAKER_STATE

KEY = {"TableName": "t", "Key": {"pk": {"S": "1"}}}


def _client(url: str, policy: Policy):
    return resilient_aws.Session(region_name="us-east-1", policy=policy, **CREDS).client(
        "dynamodb", endpoint_url=url, config=Config(max_pool_connections=32))


def test_while_the_breaker_is_open_the_server_sees_only_probes_one_at_a_time(counting_server):
    server = counting_server(status=503, delay=0.2)  # a slow, failing primary: probes overlap if they can
    breaker = BreakerPolicy(min_calls=5, open_time=0.1, max_open_time=0.2, open_jitter=0.0)
    policy = Policy(retry=RetryPolicy(base_delay=0.0, max_delay=0.0), breaker=breaker, dns=NO_DNS)
    client = _client(server.url, policy)
    probes = []
    client.add_listener(lambda e: probes.append(e) if e.kind == BREAKER_STATE and e.detail["to"] == "half_open"
                        else None)
    open_breaker(client, "us-east-1", lambda: client.get_item(**KEY), limit=50)  # one thread opens it
    server.requests = server.peak_in_flight = 0
    probes.clear()
    fast_fails = [0] * 16
    stop = time.monotonic() + 2.0

    def hammer(i: int) -> None:
        while time.monotonic() < stop:
            try:
                client.get_item(**KEY)
            except CircuitOpenError:
                fast_fails[i] += 1
                time.sleep(0.001)
            except ClientError:
                pass

    run_in_threads(16, hammer)
    print(f"\n16 threads, 2 s of open breaker: {server.requests} requests, {len(probes)} probes, "
          f"{sum(fast_fails)} fast fails, peak in flight {server.peak_in_flight}")
    assert len(probes) >= 2
    assert server.requests == len(probes)   # nothing but the probes reached the server
    assert server.peak_in_flight == 1       # never two probes at once
    assert sum(fast_fails) > 100


def test_eight_threads_against_50_ms_latency_run_side_by_side(counting_server):
    latency = 0.05
    server = counting_server(delay=latency)
    client = _client(server.url, Policy(dns=NO_DNS))
    run_in_threads(8, lambda i: client.get_item(**KEY))  # warm: one pooled connection per thread
    server.peak_in_flight = 0
    elapsed = run_in_threads(8, lambda i: client.get_item(**KEY))
    print(f"\n8 threads x one {latency * 1000:.0f} ms call: {elapsed * 1000:.0f} ms wall, "
          f"peak in flight {server.peak_in_flight}")
    assert server.peak_in_flight == 8      # all eight were at the server at once: nothing serialises them
    assert elapsed < 8 * latency           # so the batch costs about one latency, not eight


def test_sixteen_threads_times_a_thousand_calls_lose_no_count(counting_server):
    server = counting_server()
    client = _client(server.url, Policy(dns=NO_DNS))
    calls = 1000

    def work(i: int) -> None:
        for _ in range(calls):
            client.get_item(**KEY)

    run_in_threads(16, work)
    s = client.stats()
    assert s["calls"] == s["succeeded"] == 16 * calls
    assert s["attempts"] == server.requests == 16 * calls
    assert s["regions"]["us-east-1"]["attempts"] == 16 * calls


def test_wrap_of_a_legacy_mode_client_makes_exactly_max_attempts_requests_per_call(counting_server):
    server = counting_server(status=503)
    raw = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=server.url,
                       config=Config(retries={"mode": "legacy"}), **CREDS)
    policy = Policy(retry=RetryPolicy(max_attempts=3, base_delay=0.0, max_delay=0.0),
                    budget=BudgetPolicy(enabled=False), breaker=BreakerPolicy(enabled=False), dns=NO_DNS)
    client = resilient_aws.wrap(raw, policy=policy)
    calls = 20
    for _ in range(calls):
        try:
            client.get_item(**KEY)
        except ClientError as e:
            assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert server.requests == 3 * calls    # legacy alone would have sent 10 per call
