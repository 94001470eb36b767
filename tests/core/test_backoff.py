"""Backoff: jittered, capped, honours x-amz-retry-after within bounds."""

import math
import statistics
import threading

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from resilient_aws import ConfigError, RetryPolicy
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


DAY = 86400.0
SECONDS_FIELDS = ("base_delay", "throttle_base_delay", "max_delay", "max_retry_after_extra", "deadline")
seconds = st.one_of(st.floats(min_value=0.0, max_value=DAY), st.sampled_from([0.0, 5e-324, 1e-300, DAY]),
                    st.integers(min_value=0, max_value=int(DAY)))
wild = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(min_value=-(10**400), max_value=10**400),
                 st.sampled_from([10**400, 1e300, 1e20, DAY * 1.0000001, 2 * DAY, -1.0, True, None, "1"]))
retry_afters = st.one_of(st.none(), st.floats(min_value=0.0, allow_infinity=True), st.sampled_from([0.0, 1e300]))


def assert_sane_delay(policy, n, throttled, retry_after):
    d = Backoff(policy).delay(n, throttled, retry_after)
    assert isinstance(d, float)
    assert math.isfinite(d)
    bound = policy.max_delay
    if retry_after is not None and policy.honor_retry_after:
        bound += policy.max_retry_after_extra
    assert 0.0 <= d <= bound
    assert d <= threading.TIMEOUT_MAX  # time.sleep / Event.wait accept it: 1e300 raised OverflowError


@settings(max_examples=500, deadline=None)
@given(base=seconds, tbase=seconds, cap=seconds, extra=seconds, jitter=st.sampled_from(["full", "equal", "none"]),
       honor=st.booleans(), n=st.integers(min_value=1, max_value=100), throttled=st.booleans(),
       retry_after=retry_afters)
@example(base=DAY, tbase=DAY, cap=DAY, extra=DAY, jitter="equal", honor=True, n=100, throttled=True,
         retry_after=float("inf"))
@example(base=5e-324, tbase=0.0, cap=DAY, extra=0.0, jitter="full", honor=True, n=100, throttled=False,
         retry_after=None)
def test_every_policy_within_the_bounds_gives_finite_delays_within_the_cap(base, tbase, cap, extra, jitter, honor, n,
                                                                            throttled, retry_after):
    policy = RetryPolicy(base_delay=min(base, cap), throttle_base_delay=tbase, max_delay=max(base, cap),
                         max_retry_after_extra=extra, jitter=jitter, honor_retry_after=honor)
    assert_sane_delay(policy, n, throttled, retry_after)


@settings(max_examples=500, deadline=None)
@given(values=st.fixed_dictionaries({**{name: seconds for name in SECONDS_FIELDS},
                                     "deadline": st.one_of(st.none(), st.floats(min_value=0.001, max_value=DAY))}),
       wild_field=st.sampled_from(SECONDS_FIELDS), wild_value=wild, jitter=st.sampled_from(["full", "equal", "none"]),
       n=st.integers(min_value=1, max_value=100), throttled=st.booleans(), retry_after=retry_afters)
@example(values=dict.fromkeys(SECONDS_FIELDS, 1.0), wild_field="max_delay", wild_value=1e300, jitter="full", n=1,
         throttled=False, retry_after=None)
def test_whatever_retry_policy_accepts_gives_sleepable_delays(values, wild_field, wild_value, jitter, n, throttled,
                                                              retry_after):
    """Bug 12: any value is either refused at construction with ConfigError naming the field, or safe to use."""
    values = {**values, "max_delay": max(values["max_delay"], values["base_delay"]), wild_field: wild_value}
    try:
        policy = RetryPolicy(jitter=jitter, **values)
    except ConfigError as e:
        # the wild field, or max_delay when a wild base_delay / max_delay breaks base_delay <= max_delay
        assert e.field in (f"RetryPolicy.{wild_field}", "RetryPolicy.max_delay")
        return
    assert_sane_delay(policy, n, throttled, retry_after)


def test_the_jitter_is_drawn_from_the_injected_random_source():
    policy = RetryPolicy(base_delay=1.0, max_delay=10.0)
    assert Backoff(policy, random=lambda: 0.25).delay(3) == 4.0 * 0.25
    equal = RetryPolicy(base_delay=1.0, max_delay=10.0, jitter="equal")
    assert Backoff(equal, random=lambda: 0.25).delay(3) == 2.0 + 2.0 * 0.25
