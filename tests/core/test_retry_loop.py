"""The one retry loop: attempts, budget, failover, breaker use and the original error.

Unit tests with a scripted client (see fakes.py); the same behaviours are shown against real
servers in tests/integration.
"""

import contextlib
import threading

import pytest
from fakes import caller_error, make_client, refused, server_error
from hypothesis import given, settings
from hypothesis import strategies as st

from resilient_aws import BreakerPolicy, BudgetPolicy, CircuitOpenError, FailoverPolicy, Policy, RetryPolicy
from resilient_aws import client as client_module

FAST = RetryPolicy(base_delay=0.0, max_delay=0.0)


def policy(**kw):
    kw.setdefault("retry", FAST)
    return Policy(**kw)


def test_first_attempt_success_makes_one_call_and_counts_it():
    client, fakes = make_client(policy())
    assert client.get_item(TableName="t") == {"ok": "us-east-1"}
    s = client.stats()
    assert (s["calls"], s["succeeded"], s["attempts"], s["retries"]) == (1, 1, 1, 0)
    assert fakes["us-west-2"].calls == []


def test_transient_error_is_retried_and_the_result_returned():
    client, fakes = make_client(policy(failover=FailoverPolicy(enabled=False)),
                                {"us-east-1": [server_error()]})
    assert client.get_item(TableName="t") == {"ok": "us-east-1"}
    assert fakes["us-east-1"].calls == ["get_item", "get_item"]
    assert client.stats()["retries"] == 1


def test_caller_error_reaches_the_caller_unchanged_after_one_attempt():
    err = caller_error("ConditionalCheckFailedException")
    client, fakes = make_client(policy(), {"us-east-1": [err]})
    with pytest.raises(type(err)) as info:
        client.put_item(TableName="t")
    assert info.value is err
    assert info.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert fakes["us-east-1"].calls == ["put_item"]
    s = client.stats()
    assert s["regions"]["us-east-1"]["window_failures"] == 0
    assert s["caller_errors"] == 1


def test_original_error_is_raised_when_attempts_run_out():
    errors = [server_error() for _ in range(5)]
    client, fakes = make_client(policy(retry=RetryPolicy(max_attempts=3, base_delay=0, max_delay=0),
                                       failover=FailoverPolicy(enabled=False)), {"us-east-1": errors})
    with pytest.raises(type(errors[0])) as info:
        client.get_item(TableName="t")
    assert info.value is errors[2]
    assert len(fakes["us-east-1"].calls) == 3
    s = client.stats()
    assert (s["calls"], s["failed"], s["attempts"], s["retries"]) == (1, 1, 3, 2)


def test_denied_retry_ends_the_call_at_once_with_the_original_error():
    err = server_error()
    client, fakes = make_client(policy(budget=BudgetPolicy(ratio=0.0, min_per_second=0.0),
                                       failover=FailoverPolicy(enabled=False)), {"us-east-1": [err]})
    with pytest.raises(type(err)) as info:
        client.get_item(TableName="t")
    assert info.value is err
    assert fakes["us-east-1"].calls == ["get_item"]
    assert client.stats()["retries_denied_by_budget"] == 1


def test_read_moves_to_the_next_region_at_once_when_the_primary_fails():
    client, fakes = make_client(policy(), {"us-east-1": [refused()]})
    assert client.get_item(TableName="t") == {"ok": "us-west-2"}
    assert fakes["us-east-1"].calls == ["get_item"]
    assert fakes["us-west-2"].calls == ["get_item"]
    assert client.stats()["failovers"] == 1


def test_write_stays_in_the_primary_region_by_default():
    client, fakes = make_client(policy(), {"us-east-1": [refused(), refused(), refused()]})
    with pytest.raises(type(refused())):
        client.put_item(TableName="t")
    assert fakes["us-west-2"].calls == []
    assert len(fakes["us-east-1"].calls) == 3


def test_write_moves_when_the_failover_policy_allows_it():
    client, _fakes = make_client(policy(failover=FailoverPolicy(operations={"PutItem"})),
                                {"us-east-1": [refused()]})
    assert client.put_item(TableName="t") == {"ok": "us-west-2"}


def test_throttling_is_retried_in_the_same_region():
    client, fakes = make_client(policy(), {"us-east-1": [caller_error("ThrottlingException")]})
    assert client.get_item(TableName="t") == {"ok": "us-east-1"}
    assert fakes["us-west-2"].calls == []
    assert client.stats()["throttled_attempts"] == 1


def _open_primary(client, fakes, n=20):
    fakes["us-east-1"].script = [server_error() for _ in range(n)]
    for _ in range(n):
        with contextlib.suppress(Exception):
            client.put_item(TableName="t")
    assert client.stats()["regions"]["us-east-1"]["breaker"] == "open"
    fakes["us-east-1"].calls.clear()


def test_open_primary_sends_reads_to_the_fallback_without_touching_the_primary():
    p = policy(retry=RetryPolicy(max_attempts=1), breaker=BreakerPolicy(min_calls=5, open_time=60, max_open_time=60))
    client, fakes = make_client(p)
    _open_primary(client, fakes, 5)
    for _ in range(10):
        assert client.get_item(TableName="t") == {"ok": "us-west-2"}
    assert fakes["us-east-1"].calls == []


def test_open_primary_fails_writes_fast_with_circuit_open_error():
    p = policy(retry=RetryPolicy(max_attempts=1), breaker=BreakerPolicy(min_calls=5, open_time=60, max_open_time=60))
    client, fakes = make_client(p)
    _open_primary(client, fakes, 5)
    with pytest.raises(CircuitOpenError) as info:
        client.put_item(TableName="t")
    assert info.value.regions == ("us-east-1",)
    assert fakes["us-east-1"].calls == [] and fakes["us-west-2"].calls == []
    assert client.stats()["circuit_open_rejections"] == 1


def test_every_region_open_raises_circuit_open_error_without_network():
    p = policy(retry=RetryPolicy(max_attempts=1), breaker=BreakerPolicy(min_calls=1, open_time=60, max_open_time=60),
               failover=FailoverPolicy(allow_writes=True))
    client, fakes = make_client(p, {"us-east-1": [server_error()], "us-west-2": [server_error()]})
    with pytest.raises(type(server_error())):
        client.get_item(TableName="t")  # us-east-1 fails (opens), moves... max_attempts=1 stops it
    with pytest.raises(type(server_error())):
        client.get_item(TableName="t")  # served by us-west-2 which fails and opens
    calls_before = (len(fakes["us-east-1"].calls), len(fakes["us-west-2"].calls))
    with pytest.raises(CircuitOpenError):
        client.get_item(TableName="t")
    assert (len(fakes["us-east-1"].calls), len(fakes["us-west-2"].calls)) == calls_before


def test_positional_arguments_are_rejected_like_botocore():
    client, _ = make_client(policy())
    with pytest.raises(TypeError, match="only accepts keyword arguments"):
        client.get_item("t")


def test_listeners_see_retries_and_a_raising_listener_breaks_nothing():
    client, _ = make_client(policy(failover=FailoverPolicy(enabled=False)), {"us-east-1": [server_error()]})
    seen = []
    client.add_listener(seen.append)
    client.add_listener(lambda e: 1 / 0)
    assert client.get_item(TableName="t") == {"ok": "us-east-1"}
    assert [e.kind for e in seen] == ["retry"]
    assert seen[0].operation == "GetItem" and seen[0].region == "us-east-1"


def test_operation_wrappers_are_built_once_and_cached():
    client, _ = make_client(policy())
    assert client.get_item is client.get_item
    assert client.get_item.__name__ == "get_item"


def test_sixteen_threads_lose_no_count():
    client, _ = make_client(policy())
    barrier = threading.Barrier(16)

    def worker():
        barrier.wait()
        for _ in range(1000):
            client.get_item(TableName="t")

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    s = client.stats()
    assert s["calls"] == s["succeeded"] == s["attempts"] == 16000
    assert s["regions"]["us-east-1"]["attempts"] == 16000


@settings(max_examples=150, deadline=None)
@given(
    deadline=st.floats(min_value=0.01, max_value=5.0),
    attempt_time=st.floats(min_value=0.0, max_value=0.5),
    max_attempts=st.integers(min_value=1, max_value=12),
    base=st.floats(min_value=0.0, max_value=1.0),
)
def test_no_sleep_overruns_the_deadline_and_no_attempt_starts_after_it(deadline, attempt_time, max_attempts, base):
    clock = [1000.0]
    starts = []
    sleeps = []

    def fake_sleep(seconds):
        sleeps.append((clock[0], seconds))
        clock[0] += seconds

    p = Policy(retry=RetryPolicy(max_attempts=max_attempts, base_delay=base, max_delay=max(base, 2.0),
                                 deadline=deadline),
               budget=BudgetPolicy(enabled=False), breaker=BreakerPolicy(enabled=False),
               failover=FailoverPolicy(enabled=False))
    client, fakes = make_client(p)
    fake = fakes["us-east-1"]

    def failing(**kwargs):
        starts.append(clock[0])
        clock[0] += attempt_time
        raise server_error()

    fake.get_item = failing
    original = (client_module._monotonic, client_module._sleep)
    client_module._monotonic, client_module._sleep = (lambda: clock[0]), fake_sleep
    try:
        start = clock[0]
        with pytest.raises(type(server_error())):
            client.get_item(TableName="t")
    finally:
        client_module._monotonic, client_module._sleep = original
    for at, seconds in sleeps:
        assert at + seconds < start + deadline + 1e-9
    for at in starts:
        assert at < start + deadline + 1e-9
    assert len(starts) <= max_attempts
