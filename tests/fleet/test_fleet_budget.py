"""Retry budgets of a fleet: the ratio part stays each process's own, the floor is the fleet's.

A retry paid by the process's own first attempts (``ratio`` x deposits) never asks the store; one
beyond that takes one token of the fleet's floor (``min_per_second`` tokens a second, ``min_per_second
* window`` at most), so N processes together get the floor once, not N times. A denied process waits
before asking again; with the store down the floor is the smaller local ``fallback_min_per_second``;
without a fleet a budget is exactly what it was before shared state existed.
"""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.fleet import Fleet

from resilient_aws.budget import FROM_RESERVE, RetryBudget
from resilient_aws.policy import BudgetPolicy

FLOOR_ONLY = BudgetPolicy(ratio=0.0, min_per_second=1.0, window=10.0)   # capacity 10, 1 token/s
CAPACITY = FLOOR_ONLY.min_per_second * FLOOR_ONLY.window


def retries(budget: RetryBudget, now: float, n: int) -> int:
    return sum(budget.try_withdraw(now) for _ in range(n))


def test_retries_within_the_ratio_of_own_deposits_never_touch_the_store():
    fleet = Fleet(1, budget=BudgetPolicy(ratio=0.1, min_per_second=1.0, window=10.0))
    budget = fleet[0].budget
    now = fleet.now()
    for _ in range(100):
        budget.deposit(now)
    assert retries(budget, now, 10) == 10
    assert fleet.store.count("reserve") == 0


def test_a_retry_beyond_the_ratio_takes_one_token_of_the_fleet_floor():
    fleet = Fleet(1, budget=BudgetPolicy(ratio=0.1, min_per_second=1.0, window=10.0))
    budget = fleet[0].budget
    now = fleet.now()
    for _ in range(100):
        budget.deposit(now)
    retries(budget, now, 10)
    assert budget.try_withdraw(now)
    assert fleet.store.count("reserve") == 1
    assert budget._counts.totals(now)[FROM_RESERVE] == 1


def test_n_processes_share_one_floor_not_n_floors():
    fleet = Fleet(5, budget=FLOOR_ONLY)
    now = fleet.now()
    granted = sum(retries(p.budget, now, 20) for p in fleet)
    assert granted == CAPACITY   # 10 for the fleet; 50 if each process had its own floor


def test_an_empty_floor_is_published_so_the_other_processes_wait_without_asking():
    fleet = Fleet(3, budget=FLOOR_ONLY)
    now = fleet.now()
    assert retries(fleet[0].budget, now, 20) == CAPACITY     # emptied, then denied: the store publishes it
    asked = fleet.store.count("reserve")
    assert retries(fleet[1].budget, now, 5) + retries(fleet[2].budget, now, 5) == 0
    assert fleet.store.count("reserve") == asked


def test_the_fleet_floor_refills_at_min_per_second():
    fleet = Fleet(3, budget=FLOOR_ONLY)
    start = fleet.now()
    assert sum(retries(p.budget, start, 20) for p in fleet) == CAPACITY
    waits = max(p.link._reserve_wait_until for p in fleet)
    now = fleet.advance(waits - start + 0.5)     # every process may ask again
    refilled = min(CAPACITY, FLOOR_ONLY.min_per_second * (now - start))
    assert sum(retries(p.budget, now, 20) for p in fleet) == math.floor(refilled + 1e-9)


def test_a_denied_reserve_makes_the_process_wait_without_asking_the_store():
    fleet = Fleet(1, budget=FLOOR_ONLY)
    budget, link = fleet[0].budget, fleet[0].link
    start = fleet.now()
    assert retries(budget, start, int(CAPACITY)) == CAPACITY
    assert not budget.try_withdraw(start)          # empty: the store says how long to wait
    until = link._reserve_wait_until
    assert until >= start + 1.0 / FLOOR_ONLY.min_per_second   # at least until one token is back
    asked = fleet.store.count("reserve")
    for now in (start, (start + until) / 2, until - 0.001):
        fleet.clock.now = now
        assert not budget.try_withdraw(now)
    assert fleet.store.count("reserve") == asked   # nothing sent while waiting
    fleet.clock.now = until + 0.001
    assert budget.try_withdraw(fleet.now())
    assert fleet.store.count("reserve") == asked + 1


def test_the_denied_process_waits_as_long_as_the_rest_of_the_fleet():
    fleet = Fleet(2, budget=FLOOR_ONLY)
    now = fleet.now()
    retries(fleet[0].budget, now, int(CAPACITY) + 1)
    assert fleet[0].link._reserve_wait_until >= fleet[1].link._reserve_wait_until


def test_the_wait_after_a_denial_is_stretched_by_up_to_its_length_again_at_random():
    waits = {}
    for draw in (0.0, 0.5):
        fleet = Fleet(2, budget=FLOOR_ONLY, random=lambda draw=draw: draw)
        start = fleet.now()
        retries(fleet[0].budget, start, int(CAPACITY) + 1)
        waits[draw] = fleet[1].link._reserve_wait_until - start     # the published wait, stretched
    assert waits[0.5] == pytest.approx(waits[0.0] * 1.5)


def test_with_the_store_down_the_floor_is_the_local_fallback():
    fleet = Fleet(1, budget=FLOOR_ONLY, fallback_min_per_second=0.5)
    fleet.store.down = True
    budget = fleet[0].budget
    now = fleet.now()
    assert retries(budget, now, 50) == 0.5 * FLOOR_ONLY.window
    assert not fleet[0].shared.up


def test_with_the_store_down_the_store_is_not_asked_again():
    fleet = Fleet(1, budget=FLOOR_ONLY, fallback_min_per_second=0.5)
    fleet.store.down = True
    retries(fleet[0].budget, fleet.now(), 50)
    assert fleet.store.count("reserve") <= 1   # the one call that found it down (attaching found it first)


def test_tokens_taken_from_the_fleet_count_against_the_fallback_when_the_store_goes_down():
    fleet = Fleet(1, budget=FLOOR_ONLY, fallback_min_per_second=0.5)
    budget = fleet[0].budget
    now = fleet.now()
    assert retries(budget, now, 3) == 3
    fleet.store.down = True
    assert retries(budget, now, 50) == 2      # 5 tokens a window in all while the store is down


def test_the_fallback_floor_is_never_larger_than_the_policy_floor():
    fleet = Fleet(1, budget=FLOOR_ONLY, fallback_min_per_second=100.0)
    fleet.store.down = True
    assert retries(fleet[0].budget, fleet.now(), 50) == CAPACITY


def test_the_local_fallback_refills_as_withdrawals_leave_the_window():
    fleet = Fleet(1, budget=FLOOR_ONLY, fallback_min_per_second=0.5)
    fleet.store.down = True
    budget = fleet[0].budget
    assert retries(budget, fleet.now(), 50) == 5
    assert retries(budget, fleet.advance(FLOOR_ONLY.window), 50) == 5


# -- the floor is the fleet's: a property ----------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 6),
       calls=st.lists(st.tuples(st.integers(0, 5), st.sampled_from([0.0, 0.0, 0.001, 0.05, 0.3, 1.0, 2.5]),
                                st.booleans()), min_size=1, max_size=300),
       ratio=st.sampled_from([0.0, 0.1, 0.5]),
       per_second=st.sampled_from([0.5, 1.0, 4.0]),
       seed=st.integers(0, 2**32 - 1))
def test_the_fleet_takes_at_most_one_floor_plus_its_refill_whatever_the_number_of_processes(
        n, calls, ratio, per_second, seed):
    policy = BudgetPolicy(ratio=ratio, min_per_second=per_second, window=10.0)
    fleet = Fleet(n, budget=policy, random=random.Random(seed).random)
    start = fleet.now()
    for i, dt, first_attempt in calls:
        now = fleet.advance(dt)
        budget = fleet[i % n].budget
        if first_attempt:
            budget.deposit(now)
        else:
            budget.try_withdraw(now)
    elapsed = fleet.now() - start
    from_floor = sum(p.budget._counts.cumulative(fleet.now())[FROM_RESERVE] for p in fleet)
    assert from_floor <= math.floor(per_second * policy.window + per_second * elapsed + 1e-9)


# -- without a fleet: exactly the old formula ---------------------------------------------------------------------
def _old_formula(events: list[tuple[float, str]], now: float, policy: BudgetPolicy) -> bool:
    """withdrawals + 1 <= ratio * deposits + min_per_second * window, counted over the window's ten
    buckets (a bucket of width window/10 counts whole; buckets start at time 0)."""
    width = policy.window / 10
    current = math.floor(now / width)
    recent = [kind for t, kind in events if math.floor(t / width) > current - 10]
    deposits, withdrawals = recent.count("deposit"), recent.count("withdrawal")
    return withdrawals + 1 <= policy.ratio * deposits + policy.min_per_second * policy.window + 1e-9


@settings(max_examples=300, deadline=None)
@given(calls=st.lists(st.tuples(st.integers(0, 12), st.booleans()), min_size=1, max_size=300),
       ratio=st.sampled_from([0.0, 0.1, 0.25, 1.0]),
       per_second=st.sampled_from([0.0, 0.1, 0.5, 1.0]))
def test_without_a_fleet_a_budget_grants_exactly_what_the_old_formula_says(calls, ratio, per_second):
    policy = BudgetPolicy(ratio=ratio, min_per_second=per_second, window=10.0)   # buckets of 1 s
    budget = RetryBudget(policy, now=0.0)
    assert budget.fleet is None
    events: list[tuple[float, str]] = []
    now = 0.0
    for quarter_seconds, first_attempt in calls:
        now += quarter_seconds * 0.25          # exact in binary: bucket edges are not a matter of rounding
        if first_attempt:
            budget.deposit(now)
            events.append((now, "deposit"))
        else:
            expected = _old_formula(events, now, policy)
            assert budget.try_withdraw(now) is expected
            if expected:
                events.append((now, "withdrawal"))
