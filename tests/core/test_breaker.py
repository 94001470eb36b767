"""Circuit breaker: closed -> open -> half-open -> closed, one probe at a time."""

import random
import threading

from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from support.threads import run_in_threads

from resilient_aws import BreakerPolicy
from resilient_aws.breaker import ADMIT, CLOSED, HALF_OPEN, OPEN, PROBE, REJECT, CircuitBreaker


def no_jitter(low, high):
    return 1.0


def make(**kw):
    changes = []
    policy = BreakerPolicy(**{"min_calls": 4, "failure_ratio": 0.5, "window": 10.0, "open_time": 1.0,
                              "max_open_time": 8.0, **kw})
    b = CircuitBreaker(policy, name="t", now=0.0, uniform=no_jitter,
                       on_change=lambda old, new, detail: changes.append((old, new)))
    return b, changes


def test_stays_closed_below_the_minimum_number_of_calls():
    b, _ = make()
    for _ in range(3):
        b.on_failure(0.1, ADMIT)
    assert b.state == CLOSED


def test_opens_when_failure_ratio_reached_with_enough_calls():
    b, changes = make()
    b.on_success(0.1, ADMIT)
    b.on_success(0.1, ADMIT)
    b.on_failure(0.1, ADMIT)
    assert b.state == CLOSED
    b.on_failure(0.1, ADMIT)
    assert b.state == OPEN
    assert changes == [(CLOSED, OPEN)]


def test_old_results_leave_the_window():
    b, _ = make()
    for _ in range(3):
        b.on_failure(0.0, ADMIT)
    b.on_failure(11.0, ADMIT)  # the first three have expired
    assert b.state == CLOSED


def test_open_rejects_until_open_time_then_admits_one_probe():
    b, _ = make()
    for _ in range(4):
        b.on_failure(0.0, ADMIT)
    assert b.admit(0.5) == REJECT
    assert b.admit(1.0) == PROBE
    assert b.state == HALF_OPEN
    assert b.admit(1.0) == REJECT  # one probe at a time


def test_successful_probe_closes_and_resets_counts():
    b, changes = make()
    for _ in range(4):
        b.on_failure(0.0, ADMIT)
    assert b.admit(1.0) == PROBE
    b.on_success(1.1, PROBE)
    assert b.state == CLOSED
    assert b.admit(1.1) == ADMIT
    assert changes == [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED)]
    b.on_failure(1.2, ADMIT)
    assert b.state == CLOSED  # the failures before the close were forgotten


def test_failed_probe_reopens_for_twice_as_long_up_to_the_maximum():
    b, _ = make()
    for _ in range(4):
        b.on_failure(0.0, ADMIT)
    t = 1.0
    expected = [2.0, 4.0, 8.0, 8.0]
    for duration in expected:
        assert b.admit(t) == PROBE
        b.on_failure(t, PROBE)
        assert b.state == OPEN
        assert b.open_until - t == duration
        t += duration


def test_open_time_is_jittered_within_bounds():
    policy = BreakerPolicy(min_calls=1, open_time=10.0, max_open_time=60.0, open_jitter=0.2)
    durations = set()
    for _ in range(50):
        b = CircuitBreaker(policy, now=0.0)
        b.on_failure(0.0, ADMIT)
        durations.add(b.open_until)
    assert all(8.0 <= d <= 12.0 for d in durations)
    assert len(durations) > 10


def test_multiple_probes_needed_when_configured():
    b, _ = make(probes=2)
    for _ in range(4):
        b.on_failure(0.0, ADMIT)
    assert b.admit(1.0) == PROBE
    b.on_success(1.0, PROBE)
    assert b.state == HALF_OPEN
    assert b.admit(1.0) == PROBE
    b.on_success(1.0, PROBE)
    assert b.state == CLOSED


def test_released_probe_lets_the_next_caller_probe():
    b, _ = make()
    for _ in range(4):
        b.on_failure(0.0, ADMIT)
    assert b.admit(1.0) == PROBE
    b.release(PROBE)
    assert b.admit(1.0) == PROBE


def test_disabled_breaker_never_opens():
    b, _ = make(enabled=False)
    for _ in range(100):
        b.on_failure(0.0, ADMIT)
    assert b.state == CLOSED


def test_sixteen_threads_never_get_two_probes_at_once():
    b, _ = make()
    for _ in range(4):
        b.on_failure(0.0, ADMIT)
    in_flight = 0
    peak = 0
    probes = 0
    lock = threading.Lock()

    def worker(_: int) -> None:
        nonlocal in_flight, peak, probes
        for i in range(2000):
            if b.admit(1.0 + i * 1e-6) == PROBE:
                with lock:
                    in_flight += 1
                    probes += 1
                    peak = max(peak, in_flight)
                with lock:
                    in_flight -= 1
                b.on_failure(1.0, PROBE)  # re-open; the open time has passed for the next admit
                b.open_until = 0.0

    run_in_threads(16, worker, timeout=30)
    assert probes > 0
    assert peak == 1


def draw_max(low, high):
    return high


def draw_min(low, high):
    return low


def open_after_failed_probes(policy, probes, uniform, start=0.0):
    """Open a breaker at ``start``, fail ``probes`` probes in a row; yield (opened_at, open_until) per opening."""
    b = CircuitBreaker(policy, now=start, uniform=uniform)
    b.on_failure(start, ADMIT)
    assert b.state == OPEN
    yield start, b.open_until
    for _ in range(probes):
        t = b.open_until
        assert b.admit(t) == PROBE
        b.on_failure(t, PROBE)
        assert b.state == OPEN
        yield t, b.open_until


def test_open_time_never_exceeds_max_open_time_when_the_jitter_draws_its_maximum():
    # bug 11: 60 s cap, +20 % jitter applied after the cap -> 72 s
    policy = BreakerPolicy(min_calls=1, open_time=5.0, max_open_time=60.0, open_jitter=0.2)
    durations = [until - t for t, until in open_after_failed_probes(policy, 6, draw_max)]
    assert durations[-1] == 60.0  # 5 * 2**6 = 320, capped at 60: the draw's maximum is the cap itself
    assert max(durations) <= 60.0


def test_open_time_below_the_cap_keeps_its_full_jitter_range():
    policy = BreakerPolicy(min_calls=1, open_time=5.0, max_open_time=60.0, open_jitter=0.2)
    assert [until - t for t, until in open_after_failed_probes(policy, 2, draw_max)] == [6.0, 12.0, 24.0]
    assert [until - t for t, until in open_after_failed_probes(policy, 2, draw_min)] == [4.0, 8.0, 16.0]


def test_at_the_cap_the_fleet_is_spread_below_it_not_piled_on_it():
    # clamping a jittered value would put half the fleet exactly at the cap, probing in step; the jitter
    # window moves below the cap instead: [cap * (1 - jitter), cap], uniformly
    policy = BreakerPolicy(min_calls=1, open_time=60.0, max_open_time=60.0, open_jitter=0.2)
    rng = random.Random(11)
    durations = []
    for _ in range(400):
        (t, until), = open_after_failed_probes(policy, 0, rng.uniform)
        durations.append(until - t)
    assert all(48.0 <= d <= 60.0 for d in durations)
    assert sum(d == 60.0 for d in durations) <= 1
    assert sum(d < 54.0 for d in durations) > 120  # about half below the middle of [48, 60]
    assert [until for _, until in open_after_failed_probes(policy, 0, draw_min)] == [48.0]


breaker_policies = st.builds(
    lambda open_time, extra, jitter: BreakerPolicy(min_calls=1, open_time=open_time,
                                                   max_open_time=min(open_time * extra, 86400.0),
                                                   open_jitter=jitter),
    st.floats(min_value=0.001, max_value=86400.0), st.floats(min_value=1.0, max_value=1e6),
    st.floats(min_value=0.0, max_value=0.9),
)


@settings(max_examples=400, deadline=None)
@given(policy=breaker_policies, probes=st.integers(min_value=0, max_value=60),
       u=st.floats(min_value=0.0, max_value=1.0), start=st.floats(min_value=0.0, max_value=1e6))
@example(policy=BreakerPolicy(min_calls=1, open_time=5.0, max_open_time=60.0, open_jitter=0.2), probes=6, u=1.0,
         start=0.0)
@example(policy=BreakerPolicy(min_calls=1, open_time=0.001, max_open_time=0.001, open_jitter=0.9), probes=3, u=0.0,
         start=1e6)
def test_open_duration_is_within_the_floor_and_max_open_time(policy, probes, u, start):
    """For any policy, any number of failed probes and any draw: open_time * (1 - jitter) <= open <= max_open_time.

    Compared in absolute time (``opened_at + bound``) because rounding is monotonic: a duration within the
    bounds gives an ``open_until`` within the equally rounded bounds, exactly, with no tolerance.
    """
    def uniform(low, high):
        return low + u * (high - low)

    floor = policy.open_time * (1.0 - policy.open_jitter)
    assert floor > 0
    for opened_at, until in open_after_failed_probes(policy, probes, uniform, start):
        assert opened_at < until <= opened_at + policy.max_open_time
        assert until >= opened_at + floor


class BreakerMachine(RuleBasedStateMachine):
    """Model check: the breaker agrees with a simple model of its rules at every step."""

    def __init__(self):
        super().__init__()
        self.policy = BreakerPolicy(min_calls=5, failure_ratio=0.6, window=1000.0, open_time=1.0,
                                    max_open_time=4.0, open_jitter=0.0)
        self.b = CircuitBreaker(self.policy, now=0.0)
        self.now = 0.0
        self.results: list[bool] = []   # model of the window while closed (window never expires here)
        self.probe = False

    @rule(dt=st.floats(min_value=0.0, max_value=3.0))
    def advance(self, dt):
        self.now += dt

    @precondition(lambda self: not self.probe)
    @rule()
    def admit(self):
        before = self.b.state
        ticket = self.b.admit(self.now)
        if before == CLOSED:
            assert ticket == ADMIT
        elif before == OPEN and self.now < self.b.open_until:
            assert ticket == REJECT
        else:
            assert ticket == PROBE
            assert self.b.state == HALF_OPEN
            self.probe = True

    @rule(ok=st.booleans())
    def closed_result(self, ok):
        if self.b.state != CLOSED:
            return
        if ok:
            self.b.on_success(self.now, ADMIT)
        else:
            self.b.on_failure(self.now, ADMIT)
        self.results.append(ok)
        failures = self.results.count(False)
        # the ratio is evaluated when a failure is recorded: a success never opens the breaker
        should_open = not ok and len(self.results) >= 5 and failures >= 0.6 * len(self.results)
        assert (self.b.state == OPEN) == should_open
        if should_open:
            self.results = []

    @precondition(lambda self: self.probe)
    @rule(ok=st.booleans())
    def probe_result(self, ok):
        if ok:
            self.b.on_success(self.now, PROBE)
            assert self.b.state == CLOSED
        else:
            self.b.on_failure(self.now, PROBE)
            assert self.b.state == OPEN
            assert self.b.open_until > self.now
        self.probe = False

    @invariant()
    def at_most_one_probe(self):
        if self.probe:
            assert self.b.admit(self.now) == REJECT

    @invariant()
    def open_time_bounded(self):
        if self.b.state == OPEN:
            assert self.b.open_until - self.now <= self.policy.max_open_time + 1e-9


TestBreakerStateMachine = BreakerMachine.TestCase
TestBreakerStateMachine.settings = settings(max_examples=150, stateful_step_count=60, deadline=None)


def test_an_outage_logs_one_warning_when_it_opens_and_one_when_it_closes(caplog):
    import logging

    b, _ = make()
    with caplog.at_level(logging.DEBUG, logger="resilient_aws"):
        for _ in range(4):
            b.on_failure(0.0, ADMIT)              # opens: WARNING
        for t in (2.0, 5.0):                      # two failed probes re-open it: DEBUG only
            assert b.admit(t) == PROBE
            b.on_failure(t, PROBE)
        assert b.admit(20.0) == PROBE
        b.on_success(20.0, PROBE)                 # closes: WARNING
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "opened" in warnings[0] and "closed again" in warnings[1]
    assert not any(r.getMessage().startswith("resilient_aws:") for r in caplog.records)
