"""Breakers of a fleet: N simulated processes (SharedState each) over one in-memory store.

What is checked: an opening anywhere opens every process's breaker (following the fleet's remaining
time plus a jitter of up to ``open_jitter * open_time``); when the time is up exactly one process
probes (the lease), the others wait for it; its result (published) closes or re-opens every breaker,
re-opening for ``open_time`` without doubling; a released lease goes to the next process at once and
a lease whose holder died runs out after ``open_time``; a reply never closes a breaker, only a
published message does; with the store down, a breaker is exactly the local breaker it was before.

Time is a hand-moved clock and chance is injected (``midpoint`` draws the middle of every range), so
each expected time is exact. ``SharedState.submit`` runs at once; messages are delivered at once
unless the test queues them (``fleet.immediate = False``) to play a late message.
"""

from __future__ import annotations

import dataclasses
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.dns import FakeClock
from support.fleet import BREAKER, Draws, Fleet, in_child, midpoint

from resilient_aws.breaker import ADMIT, CLOSED, HALF_OPEN, OPEN, PROBE, REJECT, CircuitBreaker
from resilient_aws.events import Emitter
from resilient_aws.fleet.store import MemoryStore, View, encode_message
from resilient_aws.policy import Policy
from resilient_aws.regions import EndpointHealth

OPEN_TIME = BREAKER.open_time               # 1.0 s: also the probe lease
SPREAD = BREAKER.open_jitter * OPEN_TIME    # 0.2 s: the most a follower adds to the fleet's time
MID = SPREAD / 2                            # what ``midpoint`` draws for it


def lowest(low: float, high: float) -> float:
    return low


def open_fleet(fleet: Fleet, by: int = 0) -> float:
    """Process ``by`` sees 4 failures and opens; returns the time it happened."""
    fleet[by].fail(4)
    return fleet.now()


def time_up(fleet: Fleet) -> float:
    """Move the clock past every breaker's open time."""
    latest = max(p.breaker.open_until for p in fleet)
    return fleet.advance(max(0.0, latest - fleet.now()) + 0.001)


# -- following the fleet ---------------------------------------------------------------------------------------
def test_failures_of_processes_that_each_stay_below_min_calls_open_the_fleet():
    fleet = Fleet(3)
    fleet[0].fail(2)
    assert {p.breaker.state for p in fleet} == {CLOSED}
    fleet[1].fail(2)   # 4 failures in the fleet's window
    assert [p.breaker.state for p in fleet] == [OPEN, OPEN, OPEN]
    assert fleet.memory.read(fleet.key).state == "open"


def test_a_breaker_opened_by_another_process_follows_the_fleets_remaining_time_plus_jitter():
    fleet = Fleet(3)
    opened_at = open_fleet(fleet, by=0)
    follower = fleet[2].breaker   # made no call at all
    assert follower.state == OPEN
    assert follower.open_until == opened_at + OPEN_TIME + MID


def test_the_jitter_added_by_a_follower_is_drawn_within_zero_and_open_jitter_times_open_time():
    draws = Draws(random.Random(7).uniform)
    fleet = Fleet(4, uniform=draws)
    opened_at = open_fleet(fleet, by=0)
    followers = [p.breaker for p in fleet.processes[1:]]
    assert all(asked == (0.0, SPREAD) for asked in draws.asked[-3:])
    for breaker in followers:
        assert OPEN_TIME <= breaker.open_until - opened_at <= OPEN_TIME + SPREAD


def test_a_process_that_joins_later_learns_of_the_opening_from_its_first_failure():
    fleet = Fleet(1)
    opened_at = open_fleet(fleet)
    fleet.advance(0.3)
    late = fleet.spawn()                    # attaching reads nothing: it is closed...
    assert late.breaker.state == CLOSED
    late.fail(1)                            # ...until its first failure, whose report's reply says open
    assert late.breaker.state == OPEN
    assert late.breaker.open_until == opened_at + OPEN_TIME + MID


def test_a_process_with_enough_history_of_its_own_does_not_report_its_failures():
    fleet = Fleet(1)
    p = fleet[0]
    for _ in range(BREAKER.min_calls):
        p.breaker.on_success(fleet.now(), ADMIT)
    p.fail(1)                               # its own window decides: nothing for the fleet's window
    assert fleet.store.count("report") == 0


# -- one probe for the whole fleet -------------------------------------------------------------------------------
def test_only_one_of_n_breakers_gets_the_probe_when_the_time_is_up():
    fleet = Fleet(5)
    open_fleet(fleet)
    now = time_up(fleet)
    tickets = [p.breaker.admit(now) for p in fleet]
    assert tickets == [PROBE, REJECT, REJECT, REJECT, REJECT]
    assert fleet.memory.read(fleet.key).holder == fleet[0].owner


def test_breakers_that_hear_of_the_claim_wait_for_the_lease_without_asking_the_store():
    fleet = Fleet(3)
    open_fleet(fleet)
    now = time_up(fleet)
    fleet[0].breaker.admit(now)
    claims = fleet.store.count("claim")
    assert [p.breaker.admit(now) for p in fleet.processes[1:]] == [REJECT, REJECT]
    assert fleet.store.count("claim") == claims
    assert all(p.breaker.open_until == now + OPEN_TIME + MID for p in fleet.processes[1:])


def test_a_breaker_denied_the_lease_waits_for_it_to_run_out():
    fleet = Fleet(2)
    open_fleet(fleet)
    now = time_up(fleet)
    fleet.immediate = False               # process 1 has not heard of the claim yet: it asks the store
    assert fleet[0].breaker.admit(now) == PROBE
    assert fleet[1].breaker.admit(now) == REJECT
    assert fleet.store.count("claim") == 2
    assert fleet[1].breaker.state == OPEN
    assert fleet[1].breaker.open_until == now + OPEN_TIME + MID


def test_a_successful_probe_closes_every_breaker_through_the_published_message():
    fleet = Fleet(3)
    open_fleet(fleet)
    now = time_up(fleet)
    assert fleet[0].breaker.admit(now) == PROBE
    fleet.immediate = False
    fleet[0].breaker.on_success(now + 0.05, PROBE)
    assert [p.breaker.state for p in fleet] == [CLOSED, OPEN, OPEN]  # until the message arrives
    fleet.deliver()
    assert [p.breaker.state for p in fleet] == [CLOSED, CLOSED, CLOSED]
    assert all(p.breaker.admit(now + 0.05) == ADMIT for p in fleet)


def test_a_failed_probe_reopens_every_breaker_for_open_time():
    fleet = Fleet(3)
    open_fleet(fleet)
    now = time_up(fleet)
    fleet[0].breaker.admit(now)
    fleet[0].breaker.on_failure(now, PROBE)
    assert [p.breaker.state for p in fleet] == [OPEN, OPEN, OPEN]
    assert [p.breaker.open_until for p in fleet] == [now + OPEN_TIME + MID] * 3
    assert fleet.memory.read(fleet.key) == View("open", OPEN_TIME, "")


def test_failed_probes_in_a_row_do_not_double_the_open_time_of_a_fleet():
    fleet = Fleet(2)
    open_fleet(fleet)
    durations = []
    for _ in range(4):
        now = time_up(fleet)
        prober = next(p for p in fleet if p.breaker.admit(now) == PROBE)
        prober.breaker.on_failure(now, PROBE)
        durations.append([round(p.breaker.open_until - now, 9) for p in fleet])
    assert durations == [[OPEN_TIME + MID] * 2] * 4
    alone = CircuitBreaker(BREAKER, now=0.0, uniform=midpoint)   # without a fleet it doubles: 1, 2, 4, 8
    for _ in range(4):
        alone.on_failure(0.0, ADMIT)
    assert alone.open_until == OPEN_TIME


def test_a_released_probe_lets_another_process_claim_at_once():
    fleet = Fleet(2, uniform=lowest)    # no jitter: "at once" is the same instant
    open_fleet(fleet)
    now = time_up(fleet)
    assert fleet[0].breaker.admit(now) == PROBE
    fleet[0].breaker.release(PROBE)     # e.g. the retry budget said no: the probe is not sent
    assert fleet[1].breaker.admit(now) == PROBE
    assert fleet.memory.read(fleet.key).holder == fleet[1].owner


def test_a_lease_whose_holder_dies_goes_to_another_process_after_open_time():
    fleet = Fleet(2)
    open_fleet(fleet)
    claimed_at = time_up(fleet)
    assert fleet[0].breaker.admit(claimed_at) == PROBE   # and then process 0 dies: it never reports
    fleet.advance(OPEN_TIME - 0.01)
    assert fleet[1].breaker.admit(fleet.now()) == REJECT
    now = fleet.advance(0.01 + MID)
    assert fleet[1].breaker.admit(now) == PROBE
    assert fleet.memory.read(fleet.key).holder == fleet[1].owner


def test_the_store_denies_a_claim_while_a_live_lease_holder_probes_even_if_the_claimer_did_not_hear_of_it():
    fleet = Fleet(2)
    open_fleet(fleet)
    claimed_at = time_up(fleet)
    fleet.immediate = False
    fleet[0].breaker.admit(claimed_at)
    fleet[1].breaker.open_until = claimed_at     # as if process 1 had drawn no jitter and missed the claim
    fleet.advance(OPEN_TIME / 2)
    assert fleet[1].breaker.admit(fleet.now()) == REJECT
    assert fleet[1].breaker.open_until == claimed_at + OPEN_TIME + MID


# -- replies and messages -----------------------------------------------------------------------------------------
def test_a_reply_saying_closed_never_closes_an_open_breaker():
    fleet = Fleet(1)
    open_fleet(fleet)
    now = time_up(fleet)
    assert fleet[0].breaker.admit(now) == PROBE
    fleet.store.store = MemoryStore(fleet.clock, namespace=fleet.namespace)  # the store restarted empty
    fleet[0].breaker.on_failure(now, PROBE)     # probe_done replies "closed": the store knows nothing
    assert fleet[0].breaker.state == OPEN


def test_a_reply_saying_closed_leaves_an_open_breakers_time_alone():
    fleet = Fleet(1)
    open_fleet(fleet)
    until = fleet[0].breaker.open_until
    fleet[0].link.follow(View("closed"), from_message=False)
    assert fleet[0].breaker.state == OPEN and fleet[0].breaker.open_until == until


def test_a_published_closed_message_closes_an_open_breaker():
    fleet = Fleet(1)
    open_fleet(fleet)
    fleet[0].shared.deliver(encode_message(fleet.namespace, fleet.key, View("closed")))
    assert fleet[0].breaker.state == CLOSED


def test_a_message_about_another_endpoint_changes_nothing():
    fleet = Fleet(1)
    fleet[0].shared.deliver(encode_message(fleet.namespace, "s3|us-east-1|", View("open", 5.0, "")))
    assert fleet[0].breaker.state == CLOSED


def test_a_process_whose_store_restarted_empty_reopens_the_fleet_when_it_reconnects():
    fleet = Fleet(2)
    open_fleet(fleet, by=0)
    fleet[1].shared.deliver(encode_message(fleet.namespace, fleet.key, View("closed")))   # 1 is closed again
    fleet.store.store = MemoryStore(fleet.clock, namespace=fleet.namespace, publish=fleet._publish)
    fleet[0].shared.mark_down(ConnectionError("restart"))
    fleet[0].shared.mark_up()    # resync: the store forgot; this process's opening is the best there is
    assert fleet.store.store.read(fleet.key).state == "open"
    assert fleet[1].breaker.state == OPEN


# -- the store down: local rules --------------------------------------------------------------------------------------
def _drive(breaker: CircuitBreaker) -> list[tuple[int | None, str, float]]:
    """One outage, step by step: opening, waiting, a failed probe, a successful one. What each step gave."""
    trace = []

    def step(now: float, what: str) -> None:
        ticket = None
        if what == "fail":
            breaker.on_failure(now, ADMIT)
        elif what == "admit":
            ticket = breaker.admit(now)
        elif what == "probe failed":
            breaker.on_failure(now, PROBE)
        elif what == "probe ok":
            breaker.on_success(now, PROBE)
        trace.append((ticket, breaker.state, round(breaker.open_until, 9)))

    for _ in range(4):
        step(0.0, "fail")
    for now, what in [(0.5, "admit"), (1.0, "admit"), (1.0, "admit"), (1.1, "probe failed"), (2.0, "admit"),
                      (3.2, "admit"), (3.2, "probe failed"), (7.0, "admit"), (7.3, "admit"), (7.3, "probe ok"),
                      (7.4, "admit"), (7.4, "fail")]:
        step(now, what)
    return trace


def test_with_the_store_down_a_breaker_probes_locally_exactly_as_without_a_fleet():
    fleet = Fleet(1, clock=FakeClock(0.0))
    fleet.store.down = True
    alone = CircuitBreaker(BREAKER, now=0.0, uniform=midpoint)
    assert _drive(fleet[0].breaker) == _drive(alone)
    assert not fleet[0].shared.up


def test_a_store_that_goes_down_during_the_claim_lets_the_breaker_probe_locally():
    fleet = Fleet(1)
    open_fleet(fleet)
    now = time_up(fleet)
    fleet.store.down = True
    assert fleet[0].breaker.admit(now) == PROBE
    assert fleet[0].breaker.state == HALF_OPEN
    assert not fleet[0].shared.up
    assert fleet.store.count("claim") == 1


def test_with_the_store_down_every_process_probes_on_its_own():
    fleet = Fleet(3)
    open_fleet(fleet)
    fleet.store.down = True
    now = time_up(fleet)
    assert [p.breaker.admit(now) for p in fleet] == [PROBE, PROBE, PROBE]


def test_the_success_path_sends_nothing_to_the_store():
    fleet = Fleet(1)
    p = fleet[0]
    before = len(fleet.store.calls)
    for i in range(10_000):
        now = fleet.advance(0.001)
        ticket = p.breaker.admit(now)
        p.budget.deposit(now)
        p.breaker.on_success(now, ticket)
        assert i % 1000 or ticket == ADMIT
    assert fleet.store.calls[before:] == []


# -- the lease and throttling ------------------------------------------------------------------------------------------
def test_a_lease_kept_through_a_throttled_probe_is_not_used_after_it_runs_out():
    fleet = Fleet(2)
    open_fleet(fleet)
    claimed_at = time_up(fleet)
    assert fleet[0].breaker.admit(claimed_at) == PROBE
    fleet[0].breaker.on_neutral(PROBE)          # throttled: the lease is kept, as documented
    now = fleet.advance(OPEN_TIME + SPREAD + 0.01)   # the store's lease has run out
    first = fleet[0].breaker.admit(now)
    second = fleet[1].breaker.admit(now)
    assert [first, second].count(PROBE) <= 1, "two probes at once: one of them on a lease that ran out"


def test_a_lease_kept_between_the_probes_of_a_half_open_period_is_not_used_after_it_runs_out():
    fleet = Fleet(2, breaker=dataclasses.replace(BREAKER, probes=2))
    open_fleet(fleet)
    claimed_at = time_up(fleet)
    assert fleet[0].breaker.admit(claimed_at) == PROBE
    fleet[0].breaker.on_success(claimed_at + 0.1, PROBE)   # one of two probes succeeded: still half-open
    assert fleet[0].breaker.state == HALF_OPEN
    now = fleet.advance(OPEN_TIME + SPREAD + 0.01)       # the store's lease has run out
    first = fleet[0].breaker.admit(now)
    second = fleet[1].breaker.admit(now)
    assert [first, second].count(PROBE) <= 1, "two probes at once: one of them on a lease that ran out"


# -- fork --------------------------------------------------------------------------------------------------------------
def _endpoint_health(fleet: Fleet):
    """An endpoint as a Session builds it (breaker and budget under the endpoint's lock), in the fleet."""
    return EndpointHealth("dynamodb", "us-east-1", Policy(breaker=BREAKER), Emitter(), "http://127.0.0.1:9",
                          fleet.timing, fleet[0].shared)


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded")
def test_a_forked_child_of_a_plain_breaker_does_not_inherit_the_parents_lease():
    fleet = Fleet(1)
    open_fleet(fleet)
    now = time_up(fleet)
    assert fleet[0].breaker.admit(now) == PROBE          # the parent probes with the fleet's lease
    assert in_child(lambda: fleet[0].breaker.admit(now)) == REJECT


@settings(max_examples=200, deadline=None)
@given(n=st.integers(2, 6),
       steps=st.lists(st.tuples(st.integers(0, 5),
                                st.sampled_from(["admit", "admit", "admit", "probe failed", "release", "deliver",
                                                 "deliver all"]),
                                st.sampled_from([0.0, 0.001, 0.05, 0.3, 0.9, 1.0, 1.3, 2.5])),
                      min_size=1, max_size=200),
       seed=st.integers(0, 2**32 - 1))
def test_at_most_one_probe_is_outstanding_fleet_wide_while_the_endpoint_is_dead(n, steps, seed):
    """Processes admit at random times, messages arrive late and in any interleaving, probes fail (or
    are released) within the lease: never two probes at once."""
    rng = random.Random(seed)
    fleet = Fleet(n, uniform=rng.uniform, random=rng.random, immediate=False)
    open_fleet(fleet)
    outstanding: dict[int, float] = {}     # process -> when its probe started
    for i, action, dt in steps:
        i %= n
        for j, started in list(outstanding.items()):   # a dead endpoint fails every probe within the lease
            if fleet.now() + dt >= started + 0.9 * OPEN_TIME:
                fleet[j].breaker.on_failure(fleet.now(), PROBE)
                del outstanding[j]
        now = fleet.advance(dt)
        breaker = fleet[i].breaker
        if action == "admit":
            ticket = breaker.admit(now)
            if ticket == PROBE:
                assert i not in outstanding
                outstanding[i] = now
            elif ticket == ADMIT:
                breaker.on_failure(now, ADMIT)   # an ordinary attempt fails at once
        elif action == "probe failed" and i in outstanding:
            breaker.on_failure(now, PROBE)
            del outstanding[i]
        elif action == "release" and i in outstanding:
            breaker.release(PROBE)
            del outstanding[i]
        elif action == "deliver":
            fleet[i].deliver(1)
        elif action == "deliver all":
            fleet.deliver()
        assert len(outstanding) <= 1, f"probes outstanding at {now}: {outstanding}"
