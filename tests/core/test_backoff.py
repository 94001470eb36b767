"""Backoff: jittered, capped, honours x-amz-retry-after within bounds."""

import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resilient_aws import RetryPolicy
from resilient_aws.backoff import Backoff

policies = st.builds(
    lambda base, extra_cap, jitter, tbase: RetryPolicy(base_delay=base, max_delay=base + extra_cap, jitter=jitter,
                                                       throttle_base_delay=tbase),
    st.floats(min_value=0.0, max_value=2.0), st.floats(min_value=0.0, max_value=30.0),
    st.sampled_from(["full", "equal", "none"]), st.floats(min_value=0.0, max_value=5.0),
)


@settings(max_examples=300, deadline=None)
@given(policy=policies, n=st.integers(min_value=1, max_value=200), throttled=st.booleans())
def test_every_delay_is_within_zero_and_the_cap(policy, n, throttled):
    d = Backoff(policy).delay(n, throttled)
    assert 0.0 <= d <= policy.max_delay


@settings(max_examples=300, deadline=None)
@given(policy=policies, n=st.integers(min_value=1, max_value=50), retry_after=st.floats(min_value=0, max_value=600))
def test_retry_after_is_honoured_but_never_beyond_five_seconds_extra(policy, n, retry_after):
    d = Backoff(policy).delay(n, False, retry_after)
    assert 0.0 <= d <= policy.max_delay + policy.max_retry_after_extra
    assert d >= min(retry_after, policy.max_retry_after_extra)


def test_retry_after_is_ignored_when_not_honoured():
    policy = RetryPolicy(base_delay=0.01, max_delay=0.02, honor_retry_after=False)
    assert Backoff(policy).delay(1, False, 3.0) <= 0.02


def test_full_jitter_spreads_delays_instead_of_synchronising_clients():
    b = Backoff(RetryPolicy(base_delay=0.1, max_delay=10.0, jitter="full"))
    samples = [b.delay(3) for _ in range(2000)]
    assert min(samples) < 0.05 and max(samples) > 0.35  # uniform over [0, 0.4]
    assert statistics.mean(samples) == pytest.approx(0.2, abs=0.03)


def test_equal_jitter_never_waits_less_than_half():
    b = Backoff(RetryPolicy(base_delay=0.1, max_delay=10.0, jitter="equal"))
    assert all(0.2 <= b.delay(3) <= 0.4 for _ in range(500))


def test_no_jitter_is_plain_capped_exponential():
    b = Backoff(RetryPolicy(base_delay=0.05, max_delay=1.0, jitter="none"))
    assert [b.delay(n) for n in (1, 2, 3, 6, 20)] == [0.05, 0.1, 0.2, 1.0, 1.0]


def test_throttles_back_off_from_the_longer_base():
    b = Backoff(RetryPolicy(base_delay=0.01, throttle_base_delay=0.5, max_delay=5.0, jitter="none"))
    assert b.delay(1, throttled=True) == 0.5
    assert b.delay(1, throttled=False) == 0.01
