"""Retry budget: retries stay a bounded fraction of traffic over any window."""

from hypothesis import given, settings
from hypothesis import strategies as st

from resilient_aws import BudgetPolicy
from resilient_aws.budget import RetryBudget


def test_a_quiet_client_can_retry_up_to_the_floor():
    budget = RetryBudget(BudgetPolicy(ratio=0.1, min_per_second=1.0, window=10.0), now=0.0)
    granted = sum(budget.try_withdraw(1.0) for _ in range(50))
    assert granted == 10  # 1 retry/s x 10 s


def test_first_attempts_earn_ratio_tokens_each():
    budget = RetryBudget(BudgetPolicy(ratio=0.2, min_per_second=0.0, window=10.0), now=0.0)
    for _ in range(100):
        budget.deposit(1.0)
    granted = sum(budget.try_withdraw(1.0) for _ in range(100))
    assert granted == 20


def test_deposits_expire_after_the_window():
    budget = RetryBudget(BudgetPolicy(ratio=1.0, min_per_second=0.0, window=10.0), now=0.0)
    for _ in range(5):
        budget.deposit(0.5)
    assert not RetryBudget(BudgetPolicy(ratio=1.0, min_per_second=0.0, window=10.0), now=0.0).try_withdraw(0.0)
    assert budget.try_withdraw(5.0)
    assert not budget.try_withdraw(10.6)  # every deposit has left the window


def test_withdrawals_expire_too_so_the_floor_refills():
    budget = RetryBudget(BudgetPolicy(ratio=0.0, min_per_second=1.0, window=2.0), now=0.0)
    assert sum(budget.try_withdraw(0.1) for _ in range(5)) == 2
    assert sum(budget.try_withdraw(2.5) for _ in range(5)) == 2


def test_disabled_budget_never_denies():
    budget = RetryBudget(BudgetPolicy(enabled=False, ratio=0.0, min_per_second=0.0), now=0.0)
    assert all(budget.try_withdraw(0.0) for _ in range(1000))


events = st.lists(
    st.tuples(st.floats(min_value=0.0, max_value=3.0, allow_nan=False), st.booleans()),
    min_size=1, max_size=300,
)


@settings(max_examples=200, deadline=None)
@given(
    events=events,
    ratio=st.floats(min_value=0.0, max_value=1.0),
    floor=st.floats(min_value=0.0, max_value=3.0),
    window=st.floats(min_value=0.5, max_value=20.0),
)
def test_retries_never_exceed_ratio_times_calls_plus_floor_over_any_window(events, ratio, floor, window):
    policy = BudgetPolicy(ratio=ratio, min_per_second=floor, window=window)
    budget = RetryBudget(policy, now=0.0)
    width = window / 10
    now = 0.0
    firsts: list[float] = []
    granted: list[float] = []
    for gap, is_first in events:
        now += gap
        if is_first:
            budget.deposit(now)
            firsts.append(now)
        elif budget.try_withdraw(now):
            granted.append(now)
            # every window ending at a granted retry: retries in it are bounded by the deposits around it
            retries_in = sum(1 for t in granted if t > now - (window - width))
            calls_in = sum(1 for t in firsts if t > now - window)
            assert retries_in <= ratio * calls_in + floor * window + 1e-6


@settings(max_examples=100, deadline=None)
@given(n_calls=st.integers(min_value=1, max_value=3000), ratio=st.floats(min_value=0.0, max_value=0.5))
def test_total_outage_in_one_window_amplifies_at_most_one_plus_ratio(n_calls, ratio):
    budget = RetryBudget(BudgetPolicy(ratio=ratio, min_per_second=1.0, window=60.0), now=0.0)
    attempts = 0
    for i in range(n_calls):
        t = i * 0.001
        budget.deposit(t)
        attempts += 1
        while budget.try_withdraw(t):  # a client that would retry forever
            attempts += 1
            if attempts > 10 * n_calls + 100:
                break
    assert attempts <= n_calls * (1 + ratio) + 60 + 1e-6
