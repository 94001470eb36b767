"""DnsCache's rules, driven by hand: last-known-good, single flight, re-check interval and jitter,
refresh ahead, max_stale, events and logs once per episode, bound, fork, clocks.

The resolver is ``support.dns.FakeResolver`` (it counts every lookup the cache made, on which thread,
and can hang until the test lets it go) and time is ``support.dns.FakeClock``: a TTL passes when the
test says so. No server, no sleep, no wall-clock bound. The same rules against real packets are in
``test_dns_cache_live.py``.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time

import pytest
from support.dns import NAME, ips, resolve_in_threads, settle
from support.threads import run_in_threads

from resilient_aws.dns import DnsCache, DnsLookupError
from resilient_aws.events import DNS_FAILURE, DNS_RECOVERED, DNS_STALE
from resilient_aws.policy import DnsPolicy
from resilient_aws.timing import Timing

FAILURES = ["empty", "nxdomain", "servfail", "timeout", "unreachable", "error"]


class Waits:
    """A ``wait`` for DnsCache that records the bound of every wait for a lookup in flight. ``real``:
    then waits (bounded) for the lookup; else the bound runs out at once. ``on_wait(n)`` is called
    with the number of waits so far, before waiting."""

    def __init__(self, real: bool = True, on_wait=None) -> None:
        self.bounds: list[float] = []
        self._real = real
        self._on_wait = on_wait
        self._lock = threading.Lock()

    def __call__(self, event: threading.Event, timeout: float) -> bool:
        with self._lock:
            self.bounds.append(timeout)
            n = len(self.bounds)
        if self._on_wait is not None:
            self._on_wait(n)
        return event.wait(timeout) if self._real else False


def off_the_test_thread(resolver, first: int) -> bool:
    """Whether every lookup from the ``first``-th (0-based) on ran on another thread than the test's."""
    me = threading.current_thread()
    return all(t is not me for t in resolver.threads[first:])


# -- last-known-good -------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", FAILURES)
def test_a_failing_name_keeps_serving_its_last_good_answer(resolver, clock, make_cache, kind):
    resolver.set(NAME, ["127.0.0.5"], ttl=1)
    cache = make_cache()
    assert ips(cache.resolve(NAME, 443)) == ["127.0.0.5"]
    resolver.set_mode(NAME, kind)
    clock.advance(1.05)  # past the TTL
    for _ in range(5):
        assert ips(cache.resolve(NAME, 443)) == ["127.0.0.5"]
        clock.advance(0.05)  # 0.25 s in all: before the first re-check (0.3 s)
    stats = cache.stats()
    assert resolver.count(NAME) == 2  # the first answer, then the one failed lookup
    assert stats["stale_episodes"] == 1
    assert stats["stale_served"] == 5
    assert stats["names_stale"] == [NAME]
    assert stats["failures_by_kind"] == {kind: 1}


def test_a_changed_answer_is_followed_at_once(resolver, clock, make_cache):
    resolver.set(NAME, ["127.0.0.5"], ttl=1)
    cache = make_cache()
    cache.resolve(NAME, 443)
    resolver.set(NAME, ["127.0.0.6", "127.0.0.7"], ttl=1)
    clock.advance(1.0)
    assert sorted(ips(cache.resolve(NAME, 443))) == ["127.0.0.6", "127.0.0.7"]
    assert resolver.count(NAME) == 2
    assert cache.stats()["answers_changed"] == 1


def test_a_new_answer_after_an_episode_replaces_the_stale_one(resolver, clock, make_cache, events):
    resolver.set(NAME, ["127.0.0.5"], ttl=1)
    cache = make_cache()
    cache.resolve(NAME, 443)
    resolver.set_mode(NAME, "empty")
    clock.advance(1.05)
    assert ips(cache.resolve(NAME, 443)) == ["127.0.0.5"]
    resolver.set(NAME, ["127.0.0.9"], ttl=1)
    clock.advance(0.3 * 1.25)  # the re-check is due
    resolver.hold()
    assert ips(cache.resolve(NAME, 443)) == ["127.0.0.5"]  # the re-check runs behind the caller's back
    resolver.release()
    settle(cache, NAME)
    assert ips(cache.resolve(NAME, 443)) == ["127.0.0.9"]
    assert resolver.count(NAME) == 3
    assert [e.kind for e in events] == [DNS_STALE, DNS_RECOVERED]
    assert events[1].detail["changed"] is True


def test_the_last_good_answer_expires_after_max_stale(resolver, clock, make_cache, events):
    resolver.set(NAME, ["127.0.0.5"], ttl=1)
    cache = make_cache(max_stale=0.5, recheck_interval=0.2)
    cache.resolve(NAME, 443)
    resolver.set_mode(NAME, "nxdomain")
    clock.advance(1.1)
    assert ips(cache.resolve(NAME, 443)) == ["127.0.0.5"]
    clock.advance(0.6)  # TTL + max_stale have passed
    with pytest.raises(DnsLookupError) as info:
        cache.resolve(NAME, 443)
    assert info.value.kind == "nxdomain"
    assert cache.stats()["stale_expired"] == 1
    assert [e.kind for e in events] == [DNS_STALE, DNS_FAILURE, DNS_FAILURE]  # expired, then the failed lookup
    assert events[1].detail["kind"] == "stale_expired"


# -- nobody waits on DNS for a name that has an answer --------------------------------------------------
def test_an_empty_answer_costs_no_caller_any_waiting(resolver, clock, make_cache):
    resolver.set(NAME, ["127.0.0.5"], ttl=1)
    waits = Waits()
    cache = make_cache(timeout=1.0, wait=waits)
    cache.resolve(NAME, 443)
    resolver.set_mode(NAME, "timeout")
    clock.advance(1.05)
    cache.resolve(NAME, 443)  # the one caller that looks up itself: the TTL passed with the name idle
    assert resolver.count(NAME) == 2
    resolver.hold()  # from now on a lookup hangs, like a server that does not answer
    for _ in range(50):
        assert ips(cache.resolve(NAME, 443)) == ["127.0.0.5"]
        clock.advance(0.01)
    assert resolver.wait_in_flight(1)
    assert resolver.count(NAME) == 3  # the re-check, still hanging: nobody waited for it
    assert waits.bounds == []
    assert off_the_test_thread(resolver, first=2)
    resolver.release()
    settle(cache, NAME)
    assert not resolver.held_too_long


def test_a_healthy_name_is_refreshed_ahead_of_expiry_off_the_callers_path(resolver, clock, make_cache):
    resolver.set(NAME, ["127.0.0.5"], ttl=1)
    waits = Waits()
    cache = make_cache(refresh_ahead=0.5, timeout=1.0, wait=waits)
    cache.resolve(NAME, 443)
    resolver.set(NAME, ["127.0.0.6"], ttl=1)
    clock.advance(0.6)  # past 50 % of the TTL, before its end
    resolver.hold()
    assert ips(cache.resolve(NAME, 443)) == ["127.0.0.5"]  # answered from the cache...
    assert resolver.wait_in_flight(1)  # ...while the refresh is still running
    resolver.release()
    settle(cache, NAME)
    assert ips(cache.resolve(NAME, 443)) == ["127.0.0.6"]
    assert cache.stats()["refreshes_ahead"] == 1
    assert waits.bounds == [] and off_the_test_thread(resolver, first=1)


def test_a_busy_name_never_makes_a_caller_wait_even_when_dns_hangs(resolver, clock, make_cache):
    resolver.set(NAME, ["127.0.0.5"], ttl=1)
    waits = Waits()
    cache = make_cache(refresh_ahead=0.5, timeout=1.0, wait=waits)
    cache.resolve(NAME, 443)
    resolver.set_mode(NAME, "timeout")
    resolver.hold()  # every lookup hangs
    for _ in range(125):  # 2.5 s of calls, one every 20 ms: the TTL ends with the refresh still hanging
        clock.advance(0.02)
        assert ips(cache.resolve(NAME, 443)) == ["127.0.0.5"]
    assert resolver.wait_in_flight(1) and resolver.count(NAME) == 2  # one refresh, started at 0.5 s
    resolver.release()  # the refresh fails; the re-checks that follow fail at once
    settle(cache, NAME)
    for _ in range(50):  # 1 s more of calls
        clock.advance(0.02)
        assert ips(cache.resolve(NAME, 443)) == ["127.0.0.5"]
        settle(cache, NAME)
    assert resolver.count(NAME) >= 4  # the re-checks did happen...
    assert waits.bounds == [] and off_the_test_thread(resolver, first=1)  # ...behind every caller's back
    assert not resolver.held_too_long


# -- single flight ---------------------------------------------------------------------------------------
def test_one_lookup_in_flight_per_name_with_32_threads(resolver, make_cache):
    resolver.set(NAME, ["127.0.0.5"], ttl=60)
    resolver.hold()  # the first caller's lookup hangs until the 31 others wait for it
    waits = Waits(on_wait=lambda n: n == 31 and resolver.release())
    cache = make_cache(wait=waits)
    results = resolve_in_threads(cache, NAME)
    assert len(results) == 32 * 20
    assert all(got == ["127.0.0.5"] for got in results)
    assert resolver.count(NAME) == 1
    assert len(waits.bounds) == 31  # every other caller waited for that one lookup
    assert not resolver.held_too_long


def test_one_recheck_in_flight_while_the_name_fails_with_32_threads(resolver, clock, make_cache):
    resolver.set(NAME, ["127.0.0.5"], ttl=1)
    waits = Waits()
    cache = make_cache(recheck_interval=0.5, wait=waits)
    cache.resolve(NAME, 443)
    resolver.set_mode(NAME, "timeout")
    clock.advance(1.05)
    cache.resolve(NAME, 443)  # the lookup at expiry fails: the episode starts
    before = resolver.count(NAME)
    resolver.hold()
    clock.advance(0.5 * 1.25)  # the re-check is due
    served: list[list[list[str]]] = [[] for _ in range(32)]

    def worker(i: int) -> None:
        for _ in range(20):
            served[i].append(ips(cache.resolve(NAME, 443)))

    run_in_threads(32, worker, timeout=30)
    assert all(got == ["127.0.0.5"] for s in served for got in s)
    assert resolver.wait_in_flight(1)
    assert resolver.count(NAME) - before == 1  # one re-check for 640 calls, and nobody waited for it
    assert waits.bounds == []
    resolver.release()
    settle(cache, NAME)


# -- re-checks during an episode -------------------------------------------------------------------------
def test_rechecks_during_an_episode_are_bounded_by_the_interval(resolver, clock, make_cache):
    resolver.set(NAME, ["127.0.0.5"], ttl=1)
    cache = make_cache(recheck_interval=0.4, random=lambda: 0.5)  # re-checks 0.4 x 1.125 = 0.45 s apart
    cache.resolve(NAME, 443)
    resolver.set_mode(NAME, "empty")
    clock.advance(1.05)
    cache.resolve(NAME, 443)
    before = resolver.count(NAME)
    calls = 0
    for _ in range(2000):  # 2 s of calls, one a millisecond
        clock.advance(0.001)
        cache.resolve(NAME, 443)
        settle(cache, NAME)
        calls += 1
    rechecks = resolver.count(NAME) - before
    assert calls == 2000
    assert rechecks == 4  # at about 0.45, 0.90, 1.35 and 1.80 s; versus one per call without the interval
    assert cache.stats()["rechecks"] == rechecks


def _recheck_delays(cache, resolver, clock, n: int) -> list[float]:
    """Run ``n`` re-checks of NAME (failing) as they fall due; the delay each one set for the next."""
    delays = []
    for _ in range(n):
        delays.append(cache._entries[NAME].next_check - clock())
        clock.advance(delays[-1] + 1e-6)  # just past it: a + (b - a) may fall one ulp short of b
        cache.resolve(NAME, 443)
        settle(cache, NAME)
    return delays


def test_rechecks_are_jittered_by_up_to_a_quarter_of_the_interval(resolver, clock, make_cache):
    draws = [0.0, 0.2, 0.5, 0.8, 0.99]
    cache = make_cache(recheck_interval=10.0, random=iter(draws).__next__)
    resolver.set(NAME, ["127.0.0.5"], ttl=1)
    cache.resolve(NAME, 443)
    resolver.set_mode(NAME, "empty")
    clock.advance(1.05)
    cache.resolve(NAME, 443)  # the lookup at expiry fails: draw 1 of 5
    delays = _recheck_delays(cache, resolver, clock, 4)  # and each re-check: draws 2 to 5
    delays.append(cache._entries[NAME].next_check - clock())
    assert delays == pytest.approx([10.0 * (1 + 0.25 * r) for r in draws])


def test_the_default_jitter_is_random(resolver, clock, make_cache):
    cache = make_cache(recheck_interval=10.0)
    resolver.set(NAME, ["127.0.0.5"], ttl=1)
    cache.resolve(NAME, 443)
    resolver.set_mode(NAME, "empty")
    clock.advance(1.05)
    cache.resolve(NAME, 443)
    delays = _recheck_delays(cache, resolver, clock, 5)
    assert all(10.0 <= d <= 12.5 for d in delays)
    assert len({round(d, 6) for d in delays}) > 1


def test_a_stale_episode_is_logged_once_at_start_and_once_at_end(resolver, clock, make_cache, caplog, events):
    resolver.set(NAME, ["127.0.0.5"], ttl=1)
    cache = make_cache(recheck_interval=0.1)
    cache.resolve(NAME, 443)
    resolver.set_mode(NAME, "empty")
    clock.advance(1.05)
    with caplog.at_level(logging.INFO, logger="resilient_aws"):
        for _ in range(200):  # 1 s of calls, one every 5 ms
            cache.resolve(NAME, 443)
            settle(cache, NAME)
            clock.advance(0.005)
        resolver.restore(NAME)
        clock.advance(0.1 * 1.25)  # the next re-check is due
        cache.resolve(NAME, 443)
        settle(cache, NAME)
    assert cache.stats()["recoveries"] == 1
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("resilient_aws")]
    assert len(messages) == 2, messages
    assert "serving last-known-good" in messages[0]
    assert "answers again" in messages[1]
    assert [e.kind for e in events] == [DNS_STALE, DNS_RECOVERED]
    assert events[0].detail == {"host": NAME, "kind": "empty", "addresses": ["127.0.0.5"]}
    failures = cache.stats()["failures"]
    assert failures == resolver.count(NAME) - 2  # every lookup but the first answer and the recovery
    assert failures >= 8  # about one re-check per 0.1-0.125 s: many re-checks, one log line each way


# -- names with no history -------------------------------------------------------------------------------
def test_a_name_with_no_history_that_cannot_resolve_raises(make_cache, events):
    cache = make_cache()
    with pytest.raises(DnsLookupError) as info:
        cache.resolve("missing." + NAME, 443)
    assert info.value.kind == "nxdomain"
    assert isinstance(info.value, OSError)
    assert cache.stats()["cold_failures"] == 1
    assert [e.kind for e in events] == [DNS_FAILURE]


def test_a_dead_cold_name_is_not_queried_again_before_the_recheck_interval(resolver, clock, make_cache):
    cache = make_cache(recheck_interval=5.0)
    for _ in range(20):  # 4 s of attempts
        with pytest.raises(DnsLookupError):
            cache.resolve("missing." + NAME, 443)
        clock.advance(0.2)
    assert resolver.count("missing." + NAME) == 1
    clock.advance(5.0 * 1.25)
    with pytest.raises(DnsLookupError):
        cache.resolve("missing." + NAME, 443)
    assert resolver.count("missing." + NAME) == 2


def test_a_cold_timeout_is_reported_as_a_timeout(resolver, make_cache):
    resolver.set_mode(NAME, "timeout")
    cache = make_cache()
    with pytest.raises(DnsLookupError) as info:
        cache.resolve(NAME, 443)
    assert info.value.kind == "timeout"
    assert resolver.count(NAME) == 1


def test_a_caller_with_nothing_to_serve_waits_for_the_lookup_in_flight_at_most_2_timeouts_plus_1_s(
        resolver, make_cache):
    resolver.set_mode(NAME, "timeout")
    resolver.hold()
    waits = Waits(real=False)  # the bound runs out at once
    cache = make_cache(timeout=0.3, wait=waits)
    first: list[BaseException] = []

    def first_caller() -> None:
        try:
            cache.resolve(NAME, 443)
        except DnsLookupError as e:
            first.append(e)

    looking_up = threading.Thread(target=first_caller, daemon=True)
    looking_up.start()
    assert resolver.wait_in_flight(1)
    with pytest.raises(DnsLookupError) as info:
        cache.resolve(NAME, 443)  # nothing to serve: waits for the first caller's lookup, bounded
    assert waits.bounds == [pytest.approx(2 * 0.3 + 1.0)]
    assert info.value.kind == "timeout"
    resolver.release()
    looking_up.join(5)
    assert not looking_up.is_alive()
    assert [e.kind for e in first] == ["timeout"]
    assert resolver.count(NAME) == 1


def test_a_resolver_that_raises_does_not_leave_the_name_in_flight(resolver, clock, make_cache, caplog):
    resolver.set(NAME, ["127.0.0.5"], ttl=60)
    resolver.set_mode(NAME, "crash")
    cache = make_cache()
    with caplog.at_level(logging.ERROR, logger="resilient_aws"), pytest.raises(DnsLookupError) as info:
        cache.resolve(NAME, 443)
    assert info.value.kind == "error"
    assert "raised" in caplog.text
    resolver.restore(NAME)
    clock.advance(0.3 * 1.25)
    assert ips(cache.resolve(NAME, 443)) == ["127.0.0.5"]


# -- addresses, bound, stats -----------------------------------------------------------------------------
def test_a_refused_address_moves_to_the_back(resolver, make_cache):
    resolver.set(NAME, ["127.0.0.5", "127.0.0.6", "127.0.0.7"], ttl=60)
    cache = make_cache()
    first = ips(cache.resolve(NAME, 443))
    cache.report_failure(NAME, first[0])
    assert ips(cache.resolve(NAME, 443)) == [*first[1:], first[0]]
    assert cache.stats()["connect_failures"] == 1


def test_the_cache_is_bounded_by_max_names(resolver, make_cache):
    for i in range(10):
        resolver.set(f"n{i}.{NAME}", [f"127.0.1.{i}"], ttl=60)
    cache = make_cache(max_names=4)
    for i in range(10):
        cache.resolve(f"n{i}.{NAME}", 443)
    assert len(cache._entries) <= 4
    assert cache.stats()["names_cached"] <= 4
    assert ips(cache.resolve(f"n9.{NAME}", 443)) == ["127.0.1.9"]
    assert resolver.count(f"n9.{NAME}") == 1  # the newest name was kept: no second lookup


def test_stats_are_json_serializable(resolver, make_cache):
    resolver.set(NAME, ["127.0.0.5"], ttl=60)
    cache = make_cache()
    cache.resolve(NAME, 443)
    data = json.loads(json.dumps(cache.stats()))
    assert data["answers"] == 1 and data["queries"] >= 1 and data["names_cached"] == 1


# -- fork ------------------------------------------------------------------------------------------------
def test_after_fork_a_child_keeps_the_answers_and_can_resolve(resolver, clock, make_cache):
    resolver.set(NAME, ["127.0.0.5"], ttl=1)
    cache = make_cache()
    cache.resolve(NAME, 443)
    resolver.set_mode(NAME, "empty")
    cache._entries[NAME].inflight = threading.Event()  # as if a lookup was in flight at fork time
    pid = os.fork()
    if pid == 0:  # child: must not count on the parent's lookup, must look up itself and serve the answer
        code = 1
        try:
            clock.advance(1.05)
            served = ips(cache.resolve(NAME, 443))
            code = 0 if served == ["127.0.0.5"] and resolver.count(NAME) == 2 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    cache._entries[NAME].inflight = None
    assert os.waitstatus_to_exitcode(status) == 0


# -- clocks ----------------------------------------------------------------------------------------------
def test_the_default_policy_builds_a_cache_without_a_network_call():
    cache = DnsCache(DnsPolicy())
    assert cache.stats()["queries"] == 0


def test_by_default_the_cache_runs_on_the_real_clocks():
    cache = DnsCache(DnsPolicy())
    assert cache._monotonic is time.monotonic
    assert cache._wall_clock is time.time
    assert cache._random is random.random
    assert cache._wait is threading.Event.wait
    assert cache._resolver.hosts._monotonic is time.monotonic


def test_a_timing_gives_the_cache_its_clock_and_its_jitter(resolver, clock):
    policy = DnsPolicy(nameservers=["127.0.0.1"], recheck_interval=4.0, min_ttl=0.0, refresh_ahead=0.0)
    cache = DnsCache(policy, resolver=resolver, timing=Timing(monotonic=clock, random=lambda: 1.0))
    resolver.set(NAME, ["127.0.0.5"], ttl=10)
    cache.resolve(NAME, 443)
    resolver.set_mode(NAME, "empty")
    clock.advance(9.9)
    cache.resolve(NAME, 443)
    assert resolver.count(NAME) == 1  # still within the TTL on the timing's clock
    clock.advance(0.2)
    cache.resolve(NAME, 443)
    assert resolver.count(NAME) == 2
    assert cache._entries[NAME].next_check - clock() == pytest.approx(4.0 * 1.25)  # the timing's random()


def test_an_explicit_clock_wins_over_the_timing(resolver, clock):
    other = Timing(monotonic=lambda: 0.0)
    cache = DnsCache(DnsPolicy(), resolver=resolver, timing=other, monotonic=clock)
    assert cache._monotonic is clock and cache._random is other.random
