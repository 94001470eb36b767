"""Retries, budget, failover, breaker use and the original error, through botocore's own endpoint loop.

Unit tests over scripted regions (see fakes.py: real botocore clients, a script instead of sockets);
the same behaviours are shown against real servers in tests/integration.
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.fakes import ITEM, KEY, FakeClock, make_client, refused
from support.threads import run_in_threads

from resilient_aws import BreakerPolicy, BudgetPolicy, CircuitOpenError, FailoverPolicy, Policy, RetryPolicy

FAST = RetryPolicy(base_delay=0.0, max_delay=0.0)
NO_FAILOVER = FailoverPolicy(enabled=False)


def policy(**kw):
    kw.setdefault("retry", FAST)
    return Policy(**kw)


def code(exc) -> str:
    return exc.response["Error"]["Code"]


def test_first_attempt_success_makes_one_call_and_counts_it():
    client, fakes = make_client(policy())
    assert client.get_item(**KEY)["Item"] == {"region": {"S": "us-east-1"}}
    s = client.stats()
    assert (s["calls"], s["succeeded"], s["attempts"], s["retries"]) == (1, 1, 1, 0)
    assert fakes["us-west-2"].calls == []


def test_transient_error_is_retried_in_region_and_the_result_returned():
    client, fakes = make_client(policy(failover=NO_FAILOVER), {"us-east-1": [503]})
    assert client.get_item(**KEY)["Item"] == {"region": {"S": "us-east-1"}}
    assert fakes["us-east-1"].calls == ["GetItem", "GetItem"]
    s = client.stats()
    assert (s["calls"], s["attempts"], s["retries"]) == (1, 2, 1)


def test_retry_attempts_and_the_sdk_request_header_count_attempts():
    client, fakes = make_client(policy(failover=NO_FAILOVER), {"us-east-1": [503, 500]})
    result = client.get_item(**KEY)
    assert result["ResponseMetadata"]["RetryAttempts"] == 2
    assert [s.attempt for s in fakes["us-east-1"].sent] == ["attempt=1; max=3", "attempt=2; max=3", "attempt=3; max=3"]


def test_retry_attempts_count_the_whole_call_across_regions():
    client, _ = make_client(policy(), {"us-east-1": [refused()]})
    result = client.get_item(**KEY)
    assert result["Item"] == {"region": {"S": "us-west-2"}}
    assert result["ResponseMetadata"]["RetryAttempts"] == 1


def test_caller_error_reaches_the_caller_unchanged_after_one_attempt():
    client, fakes = make_client(policy(), {"us-east-1": [(400, "ConditionalCheckFailedException")]})
    with pytest.raises(client.exceptions.ConditionalCheckFailedException) as info:
        client.put_item(**ITEM)
    assert code(info.value) == "ConditionalCheckFailedException"
    assert fakes["us-east-1"].calls == ["PutItem"]
    s = client.stats()
    assert s["regions"]["us-east-1"]["window_failures"] == 0
    assert s["caller_errors"] == 1


def test_original_error_is_raised_when_attempts_run_out():
    client, fakes = make_client(policy(retry=RetryPolicy(max_attempts=3, base_delay=0, max_delay=0),
                                       failover=NO_FAILOVER), {"us-east-1": [503, 500, (503, "Final")]})
    with pytest.raises(client.exceptions.ClientError) as info:
        client.get_item(**KEY)
    assert code(info.value) == "Final"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert info.value.response["ResponseMetadata"]["RetryAttempts"] == 2
    assert len(fakes["us-east-1"].calls) == 3
    s = client.stats()
    assert (s["calls"], s["failed"], s["attempts"], s["retries"]) == (1, 1, 3, 2)


def test_denied_retry_ends_the_call_at_once_with_the_original_error():
    client, fakes = make_client(policy(budget=BudgetPolicy(ratio=0.0, min_per_second=0.0), failover=NO_FAILOVER),
                                {"us-east-1": [(503, "First")]})
    with pytest.raises(client.exceptions.ClientError) as info:
        client.get_item(**KEY)
    assert code(info.value) == "First"
    assert fakes["us-east-1"].calls == ["GetItem"]
    assert client.stats()["retries_denied_by_budget"] == 1


def test_read_moves_to_the_next_region_at_once_when_the_primary_fails():
    client, fakes = make_client(policy(), {"us-east-1": [refused()]})
    assert client.get_item(**KEY)["Item"] == {"region": {"S": "us-west-2"}}
    assert fakes["us-east-1"].calls == ["GetItem"]
    assert fakes["us-west-2"].calls == ["GetItem"]
    assert client.stats()["failovers"] == 1


def test_write_stays_in_the_primary_region_by_default():
    client, fakes = make_client(policy(), {"us-east-1": [refused(), refused(), refused()]})
    with pytest.raises(type(refused())):
        client.put_item(**ITEM)
    assert fakes["us-west-2"].calls == []
    assert len(fakes["us-east-1"].calls) == 3


def test_write_moves_when_the_failover_policy_allows_it():
    client, fakes = make_client(policy(failover=FailoverPolicy(operations={"PutItem"})), {"us-east-1": [refused()]})
    client.put_item(**ITEM)
    assert fakes["us-west-2"].calls == ["PutItem"]


def test_throttling_is_retried_in_the_same_region():
    client, fakes = make_client(policy(), {"us-east-1": [(400, "ThrottlingException")]})
    assert client.get_item(**KEY)["Item"] == {"region": {"S": "us-east-1"}}
    assert fakes["us-west-2"].calls == []
    assert client.stats()["throttled_attempts"] == 1


def test_a_damaged_dynamodb_response_is_retried_and_the_right_item_returned():
    from support.fakes import response

    damaged = response(200, {"Item": {"pk": {"S": "garbage"}}}, {"x-amz-crc32": "1"})
    client, fakes = make_client(policy(failover=NO_FAILOVER), {"us-east-1": [damaged]})
    assert client.get_item(**KEY)["Item"] == {"region": {"S": "us-east-1"}}
    assert fakes["us-east-1"].calls == ["GetItem", "GetItem"]


def test_a_damaged_response_is_never_returned_when_no_retry_is_left():
    from botocore.exceptions import ChecksumError
    from support.fakes import response

    damaged = [response(200, {"Item": {"pk": {"S": "garbage"}}}, {"x-amz-crc32": "1"}) for _ in range(3)]
    client, _ = make_client(policy(failover=NO_FAILOVER), {"us-east-1": damaged})
    with pytest.raises(ChecksumError):
        client.get_item(**KEY)


def test_an_idempotency_token_is_the_same_on_every_attempt_in_region():
    client, fakes = make_client(policy(), {"us-east-1": [503, refused()]})
    client.transact_write_items(TransactItems=[{"Put": ITEM}])
    tokens = [s.body["ClientRequestToken"] for s in fakes["us-east-1"].sent]
    assert len(tokens) == 3 and len(set(tokens)) == 1


def test_an_idempotency_token_is_the_same_after_failover():
    client, fakes = make_client(policy(failover=FailoverPolicy(allow_writes=True)), {"us-east-1": [refused()]})
    kwargs = {"TransactItems": [{"Put": ITEM}]}
    client.transact_write_items(**kwargs)
    tokens = [s.body["ClientRequestToken"] for r in ("us-east-1", "us-west-2") for s in fakes[r].sent]
    assert len(tokens) == 2 and tokens[0] == tokens[1]
    assert "ClientRequestToken" not in kwargs  # the caller's parameters are not modified


def test_a_token_the_caller_gave_is_kept_after_failover():
    client, fakes = make_client(policy(failover=FailoverPolicy(allow_writes=True)), {"us-east-1": [refused()]})
    client.transact_write_items(TransactItems=[{"Put": ITEM}], ClientRequestToken="mine")
    assert fakes["us-west-2"].sent[0].body["ClientRequestToken"] == "mine"


def test_an_error_only_a_failover_region_gives_is_never_the_answer():
    # the table exists only in us-east-1: us-west-2 says ResourceNotFound; the primary is retried
    client, fakes = make_client(policy(), {"us-east-1": [503], "us-west-2": [(400, "ResourceNotFoundException")]})
    assert client.get_item(**KEY)["Item"] == {"region": {"S": "us-east-1"}}
    assert fakes["us-east-1"].calls == ["GetItem", "GetItem"]
    assert fakes["us-west-2"].calls == ["GetItem"]


def test_a_call_that_fails_everywhere_ends_with_the_primarys_own_last_error():
    client, _ = make_client(policy(), {"us-east-1": [(503, "First"), (503, "Second")],
                                       "us-west-2": [(400, "ResourceNotFoundException")]})
    with pytest.raises(client.exceptions.ClientError) as info:
        client.get_item(**KEY)
    assert code(info.value) == "Second"


def test_a_strongly_consistent_read_stays_in_its_region():
    client, fakes = make_client(policy(), {"us-east-1": [refused()]})
    assert client.get_item(**KEY, ConsistentRead=True)["Item"] == {"region": {"S": "us-east-1"}}
    assert fakes["us-west-2"].calls == []
    assert fakes["us-east-1"].calls == ["GetItem", "GetItem"]


def test_a_strongly_consistent_batch_read_stays_in_its_region():
    client, fakes = make_client(policy(), {"us-east-1": [refused()]})
    client.batch_get_item(RequestItems={"t": {"Keys": [{"pk": {"S": "1"}}], "ConsistentRead": True}})
    assert fakes["us-west-2"].calls == []


def test_a_transactional_read_stays_in_its_region():
    client, fakes = make_client(policy(), {"us-east-1": [refused()]})
    client.transact_get_items(TransactItems=[{"Get": KEY}])
    assert fakes["us-west-2"].calls == []


def test_consistent_reads_move_when_the_policy_allows_it():
    client, fakes = make_client(policy(failover=FailoverPolicy(consistent_reads=True)), {"us-east-1": [refused()]})
    client.get_item(**KEY, ConsistentRead=True)
    assert fakes["us-west-2"].calls == ["GetItem"]


def test_an_eventually_consistent_read_still_moves():
    client, fakes = make_client(policy(), {"us-east-1": [refused()]})
    client.get_item(**KEY, ConsistentRead=False)
    assert fakes["us-west-2"].calls == ["GetItem"]


def _open_primary(client, fakes, n):
    fakes["us-east-1"].script = [503] * n
    for _ in range(n):
        with pytest.raises(client.exceptions.ClientError):
            client.put_item(**ITEM)
    assert client.stats()["regions"]["us-east-1"]["breaker"] == "open"
    fakes["us-east-1"].sent.clear()


ONE_ATTEMPT_OPEN_60 = {"retry": RetryPolicy(max_attempts=1),
                       "breaker": BreakerPolicy(min_calls=5, open_time=60, max_open_time=60)}


def test_open_primary_sends_reads_to_the_fallback_without_touching_the_primary():
    client, fakes = make_client(policy(**ONE_ATTEMPT_OPEN_60))
    _open_primary(client, fakes, 5)
    for _ in range(10):
        assert client.get_item(**KEY)["Item"] == {"region": {"S": "us-west-2"}}
    assert fakes["us-east-1"].calls == []


def test_open_primary_fails_writes_fast_with_circuit_open_error():
    client, fakes = make_client(policy(**ONE_ATTEMPT_OPEN_60))
    _open_primary(client, fakes, 5)
    with pytest.raises(CircuitOpenError) as info:
        client.put_item(**ITEM)
    assert info.value.regions == ("us-east-1",)
    assert fakes["us-east-1"].calls == [] and fakes["us-west-2"].calls == []
    assert client.stats()["circuit_open_rejections"] == 1


def test_every_region_open_raises_circuit_open_error_without_network():
    p = policy(retry=RetryPolicy(max_attempts=1), breaker=BreakerPolicy(min_calls=1, open_time=60, max_open_time=60),
               failover=FailoverPolicy(allow_writes=True))
    client, fakes = make_client(p, {"us-east-1": [503], "us-west-2": [503]})
    with pytest.raises(client.exceptions.ClientError):
        client.get_item(**KEY)  # us-east-1 fails and opens; max_attempts=1 stops the call
    with pytest.raises(client.exceptions.ClientError):
        client.get_item(**KEY)  # served by us-west-2, which fails and opens
    before = (len(fakes["us-east-1"].sent), len(fakes["us-west-2"].sent))
    with pytest.raises(CircuitOpenError):
        client.get_item(**KEY)
    assert (len(fakes["us-east-1"].sent), len(fakes["us-west-2"].sent)) == before


def test_an_interrupted_backoff_sleep_leaves_no_probe_held():
    clock = FakeClock()
    p = Policy(retry=RetryPolicy(base_delay=1.0, max_delay=1.0),
               breaker=BreakerPolicy(min_calls=2, open_time=5, max_open_time=5, open_jitter=0.0),
               failover=NO_FAILOVER)
    client, _ = make_client(p, {"us-east-1": [503, 503]}, clock=clock)

    def interrupted(seconds):
        raise KeyboardInterrupt

    client._timing = clock.timing()
    object.__setattr__(client._timing, "sleep", interrupted)
    for _ in range(2):
        with pytest.raises((KeyboardInterrupt, client.exceptions.ClientError)):
            client.get_item(**KEY)
    clock.now += 6  # past the open time: the next call must be admitted (as the probe)
    assert client.get_item(**KEY)["Item"] == {"region": {"S": "us-east-1"}}
    assert client.stats()["regions"]["us-east-1"]["breaker"] == "closed"


def test_a_probe_interrupted_inside_its_attempt_is_released():
    clock = FakeClock()
    p = Policy(retry=RetryPolicy(max_attempts=1), failover=NO_FAILOVER,
               breaker=BreakerPolicy(min_calls=1, open_time=5, max_open_time=5, open_jitter=0.0))
    client, fakes = make_client(p, {"us-east-1": [503]}, clock=clock)
    with pytest.raises(client.exceptions.ClientError):
        client.get_item(**KEY)
    clock.now += 6

    def interrupt(sent):
        raise KeyboardInterrupt

    fakes["us-east-1"].script = [interrupt]
    with pytest.raises(KeyboardInterrupt):
        client.get_item(**KEY)  # the probe
    assert client.get_item(**KEY)["Item"] == {"region": {"S": "us-east-1"}}  # the next probe is admitted


def test_a_stubbed_error_is_final_and_never_moves_region():
    from botocore.stub import Stubber

    client, fakes = make_client(policy())
    with Stubber(client) as stubber:
        stubber.add_client_error("get_item", service_error_code="InternalServerError", http_status_code=500)
        stubber.add_response("get_item", {"Item": {"pk": {"S": "stubbed"}}})
        with pytest.raises(client.exceptions.InternalServerError):
            client.get_item(**KEY)
        assert client.get_item(**KEY)["Item"] == {"pk": {"S": "stubbed"}}  # still queued: not consumed by a retry
    assert fakes["us-east-1"].sent == [] and fakes["us-west-2"].sent == []
    assert client.stats()["regions"]["us-east-1"]["window_failures"] == 0


def test_positional_arguments_are_rejected_like_botocore():
    client, _ = make_client(policy())
    with pytest.raises(TypeError, match="only accepts keyword arguments"):
        client.get_item("t")


def test_listeners_see_retries_and_a_raising_listener_breaks_nothing():
    client, _ = make_client(policy(failover=NO_FAILOVER), {"us-east-1": [503]})
    seen = []
    client.add_listener(seen.append)
    client.add_listener(lambda e: 1 / 0)
    client.get_item(**KEY)
    assert [e.kind for e in seen] == ["retry"]
    assert seen[0].operation == "GetItem" and seen[0].region == "us-east-1"
    assert seen[0].detail["error"] == "ServiceUnavailable"


def test_operation_wrappers_are_built_once_and_cached():
    client, _ = make_client(policy())
    assert client.get_item is client.get_item
    assert client.get_item.__name__ == "get_item"


def test_sixteen_threads_lose_no_count():
    client, fakes = make_client(policy())

    def worker(_: int) -> None:
        for _ in range(100):
            client.get_item(**KEY)

    run_in_threads(16, worker, timeout=60)
    s = client.stats()
    assert s["calls"] == s["succeeded"] == s["attempts"] == len(fakes["us-east-1"].sent) == 1600
    assert s["regions"]["us-east-1"]["attempts"] == 1600


@settings(max_examples=30, deadline=None)
@given(
    deadline=st.floats(min_value=0.01, max_value=5.0),
    attempt_time=st.floats(min_value=0.0, max_value=0.5),
    max_attempts=st.integers(min_value=1, max_value=12),
    base=st.floats(min_value=0.0, max_value=1.0),
)
def test_no_sleep_overruns_the_deadline_and_no_attempt_starts_after_it(deadline, attempt_time, max_attempts, base):
    clock = FakeClock()
    starts = []
    sleeps = []
    real_sleep = clock.sleep

    def sleep(seconds):
        sleeps.append((clock.now, seconds))
        real_sleep(seconds)

    def failing(sent):
        starts.append(clock.now)
        clock.now += attempt_time
        return 503

    p = Policy(retry=RetryPolicy(max_attempts=max_attempts, base_delay=base, max_delay=max(base, 2.0),
                                 deadline=deadline),
               budget=BudgetPolicy(enabled=False), breaker=BreakerPolicy(enabled=False), failover=NO_FAILOVER)
    client, _ = make_client(p, {"us-east-1": [failing] * 20}, clock=clock)
    object.__setattr__(client._timing, "sleep", sleep)
    start = clock.now
    with pytest.raises(client.exceptions.ClientError):
        client.get_item(**KEY)
    for at, seconds in sleeps:
        assert at + seconds < start + deadline + 1e-9
    for at in starts:
        assert at < start + deadline + 1e-9
    assert 1 <= len(starts) <= max_attempts


def test_a_retry_sleeps_the_jittered_backoff_from_the_injected_timing():
    clock = FakeClock()  # its random() is 0.5
    p = policy(retry=RetryPolicy(base_delay=0.1, max_delay=1.0), failover=NO_FAILOVER)
    client, fakes = make_client(p, {"us-east-1": [503, 503]}, clock=clock)
    client.get_item(**KEY)
    assert clock.sleeps == [pytest.approx(0.05), pytest.approx(0.1)]
    assert len(fakes["us-east-1"].sent) == 3
