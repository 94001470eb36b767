"""RedisState on a real redis-server on loopback: configuration, propagation between two processes
(two RedisState instances), Redis killed, restarted and stalled, the success path, fork.

Every wait here is a bounded poll (a few seconds at most) on something Redis or a background thread
does; nothing sleeps a fixed time. Tests that kill, stall or restart Redis start their own server.
"""

from __future__ import annotations

import dataclasses
import logging
import time

import pytest
from support.dns import NAME
from support.fleet import BREAKER, KEY, in_child, wait_until

from resilient_aws.breaker import ADMIT, CLOSED, OPEN, PROBE, CircuitBreaker
from resilient_aws.budget import RetryBudget
from resilient_aws.errors import ConfigError
from resilient_aws.fleet.redis_state import RedisState
from resilient_aws.fleet.store import View
from resilient_aws.policy import BreakerPolicy, BudgetPolicy, DnsPolicy

TIMEOUT = 0.1
#: "Promptly": well under the timeout plus a margin for a loaded machine.
PROMPT = TIMEOUT * 4
FLOOR_ONLY = BudgetPolicy(ratio=0.0, min_per_second=1.0, window=10.0)


class Process:
    """One process of the fleet: a RedisState with one endpoint's breaker and budget attached."""

    def __init__(self, url: str, namespace: str, breaker: BreakerPolicy = BREAKER, **kwargs: object) -> None:
        self.state = RedisState(url, namespace=namespace, **{"timeout": TIMEOUT, "reconnect_interval": 0.05,
                                                             **kwargs})
        now = time.monotonic()
        self.breaker = CircuitBreaker(breaker, name="redis-test", now=now)
        self.budget = RetryBudget(FLOOR_ONLY, now=now)
        self.link = self.state.endpoint(KEY, self.breaker, self.budget)

    def fail(self, times: int = 4) -> None:
        for _ in range(times):
            self.breaker.on_failure(time.monotonic(), ADMIT)


@pytest.fixture
def processes():
    """``make(server, namespace, breaker policy, **RedisState keywords)``; every state is closed after the test."""
    made: list[Process] = []

    def make(server, namespace: str, breaker: BreakerPolicy = BREAKER, **kwargs: object) -> Process:
        process = Process(server.url, namespace, breaker, **kwargs)
        made.append(process)
        return process

    yield make
    for process in made:
        process.state.close()


def subscribed(server, namespace: str, n: int) -> bool:
    """Bounded wait until ``n`` listeners are subscribed to the namespace's channel."""
    return wait_until(lambda: server.command("PUBSUB", "NUMSUB", f"{namespace}:events")[1] == n)


def settled(process: Process, calls: int = 1) -> bool:
    """Bounded wait until the store operations queued so far have run."""
    return wait_until(lambda: process.state.counters["calls"] >= calls and not process.state._outbox)


def listening(server, namespace: str, *ps: Process) -> bool:
    """Each process has seen one failure (below min_calls: reported to the fleet's window), and every one
    is subscribed (a RedisState subscribes when its first endpoint is attached)."""
    for p in ps:
        p.fail(1)
    return subscribed(server, namespace, len(ps)) and all(settled(p) for p in ps)


def fleet_warnings(caplog, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "resilient_aws.fleet" and r.levelno == logging.WARNING and text in r.getMessage()]


def timed(fn):
    start = time.monotonic()
    result = fn()
    return result, time.monotonic() - start


# -- configuration -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("kwargs", "field"), [
    ({"url": "http://127.0.0.1:6379"}, "RedisState.url"),
    ({"url": "127.0.0.1:6379"}, "RedisState.url"),
    ({"url": 6379}, "RedisState.url"),
    ({"namespace": "my fleet"}, "RedisState.namespace"),
    ({"namespace": ""}, "RedisState.namespace"),
    ({"namespace": "a{b}"}, "RedisState.namespace"),
    ({"namespace": "n" * 65}, "RedisState.namespace"),
    ({"namespace": 7}, "RedisState.namespace"),
    ({"timeout": 0}, "RedisState.timeout"),
    ({"timeout": 5.01}, "RedisState.timeout"),
    ({"timeout": -1}, "RedisState.timeout"),
    ({"timeout": True}, "RedisState.timeout"),
    ({"timeout": "0.05"}, "RedisState.timeout"),
    ({"reconnect_interval": 0}, "RedisState.reconnect_interval"),
    ({"reconnect_interval": 0.001}, "RedisState.reconnect_interval"),
    ({"reconnect_interval": 3601}, "RedisState.reconnect_interval"),
    ({"reconnect_interval": True}, "RedisState.reconnect_interval"),
    ({"reconnect_interval": "1"}, "RedisState.reconnect_interval"),
    ({"fallback_min_per_second": -0.1}, "RedisState.fallback_min_per_second"),
], ids=lambda v: repr(v) if not isinstance(v, str) else v)
def test_a_bad_setting_is_refused_naming_its_field(kwargs, field):
    arguments = {"url": "redis://127.0.0.1:1/0", **kwargs}
    with pytest.raises(ConfigError) as info:
        RedisState(arguments.pop("url"), **arguments)
    assert info.value.field == field


def test_constructing_a_redis_state_does_not_connect():
    state = RedisState("redis://127.0.0.1:1/0", timeout=0.05)   # nothing listens on port 1
    try:
        assert state.up and state.counters["calls"] == 0
    finally:
        state.close()


def test_the_password_in_the_url_is_not_shown():
    state = RedisState("redis://user:s3cret@127.0.0.1:1/0")
    try:
        assert "s3cret" not in repr(state) and "***" in repr(state)
    finally:
        state.close()


# -- two processes -----------------------------------------------------------------------------------------------
def test_a_breaker_opening_in_one_process_reaches_another_within_a_second(redis_server, namespace, processes):
    a, b = processes(redis_server, namespace), processes(redis_server, namespace)
    a.fail(1)                                              # b has made no failed call at all
    assert subscribed(redis_server, namespace, 2) and settled(a)
    a.fail(4)
    assert wait_until(lambda: b.breaker.state == OPEN, timeout=1.0)


def test_a_breaker_opening_reaches_a_process_that_has_seen_a_failure_within_a_second(redis_server, namespace,
                                                                                    processes):
    a, b = processes(redis_server, namespace), processes(redis_server, namespace)
    assert listening(redis_server, namespace, a, b)
    a.fail(3)
    start = time.monotonic()
    assert wait_until(lambda: b.breaker.state == OPEN, timeout=1.0)
    assert time.monotonic() - start < 1.0
    assert b.breaker.open_until > time.monotonic()
    assert b.state.counters["messages"] >= 1       # it came as a published message


def test_a_successful_probe_in_one_process_closes_the_breaker_of_another(redis_server, namespace, processes):
    short = dataclasses.replace(BREAKER, open_time=0.2)
    a, b = processes(redis_server, namespace, short), processes(redis_server, namespace, short)
    assert listening(redis_server, namespace, a, b)
    a.fail(3)
    assert wait_until(lambda: b.breaker.state == OPEN, timeout=1.0)
    latest = max(a.breaker.open_until, b.breaker.open_until)
    assert wait_until(lambda: time.monotonic() >= latest, timeout=1.0)
    assert a.breaker.admit(time.monotonic()) == PROBE      # a holds the fleet's lease...
    assert b.breaker.admit(time.monotonic()) != PROBE     # ...so b does not probe
    a.breaker.on_success(time.monotonic(), PROBE)
    assert wait_until(lambda: b.breaker.state == CLOSED, timeout=1.0)


# -- Redis killed ------------------------------------------------------------------------------------------------
def test_with_redis_killed_claims_reserves_and_dns_lookups_return_promptly(own_redis_server, namespace, processes):
    p = processes(own_redis_server, namespace)
    dns = p.state.dns(DnsPolicy(nameservers=["127.0.0.1"]))
    assert listening(own_redis_server, namespace, p)
    own_redis_server.kill()
    durations = []
    for _ in range(50):
        for call in (p.link.claim, lambda: p.link.reserve(time.monotonic()), lambda: dns.lookup(NAME)):
            result, took = timed(call)
            assert result is None
            durations.append(took)
    assert max(durations) < PROMPT, f"slowest call took {max(durations):.3f} s"
    assert not p.state.up


def test_a_call_that_finds_redis_killed_returns_promptly(own_redis_server, namespace):
    state = RedisState(own_redis_server.url, namespace=namespace, timeout=TIMEOUT, reconnect_interval=0.05)
    try:
        dns = state.dns(DnsPolicy(nameservers=["127.0.0.1"]))
        assert dns.lookup(NAME) is None and state.up      # no entry; Redis answered
        own_redis_server.kill()
        answer, took = timed(lambda: dns.lookup(NAME))
        assert answer is None and took < PROMPT
        assert not state.up and state.counters["outages"] == 1
    finally:
        state.close()


def test_a_state_marked_down_by_a_call_in_the_callers_thread_reconnects(own_redis_server, namespace):
    state = RedisState(own_redis_server.url, namespace=namespace, timeout=TIMEOUT, reconnect_interval=0.05)
    try:
        dns = state.dns(DnsPolicy(nameservers=["127.0.0.1"]))
        own_redis_server.kill()
        dns.lookup(NAME)
        assert not state.up
        own_redis_server.start()
        assert wait_until(lambda: state.up, timeout=1.0)
    finally:
        state.close()


def test_with_redis_killed_one_warning_is_logged_for_many_calls(own_redis_server, namespace, processes, caplog):
    caplog.set_level(logging.WARNING, logger="resilient_aws.fleet")
    p = processes(own_redis_server, namespace)
    dns = p.state.dns(DnsPolicy(nameservers=["127.0.0.1"]))
    assert listening(own_redis_server, namespace, p)
    own_redis_server.kill()
    for _ in range(200):
        p.link.claim()
        p.budget.try_withdraw(time.monotonic())
        dns.lookup(NAME)
    assert wait_until(lambda: not p.state.up)
    assert len(fleet_warnings(caplog, "unreachable")) == 1


def test_with_redis_killed_the_breaker_probes_locally(own_redis_server, namespace, processes):
    p = processes(own_redis_server, namespace)
    assert listening(own_redis_server, namespace, p)
    p.fail(4)
    assert settled(p, calls=2)
    own_redis_server.kill()
    ticket, took = timed(lambda: p.breaker.admit(p.breaker.open_until))
    assert ticket == PROBE and took < PROMPT


def test_with_redis_killed_the_budget_floor_is_the_fallback(own_redis_server, namespace, processes):
    p = processes(own_redis_server, namespace, fallback_min_per_second=0.3)
    assert listening(own_redis_server, namespace, p)
    own_redis_server.kill()
    now = time.monotonic()
    assert sum(p.budget.try_withdraw(now) for _ in range(50)) == 3


# -- Redis restarted ---------------------------------------------------------------------------------------------
def test_after_a_restart_the_state_comes_back_up_with_one_warning(own_redis_server, namespace, processes, caplog):
    caplog.set_level(logging.WARNING, logger="resilient_aws.fleet")
    p = processes(own_redis_server, namespace)
    assert listening(own_redis_server, namespace, p)
    own_redis_server.kill()
    p.link.claim()
    assert wait_until(lambda: not p.state.up)
    own_redis_server.start()                      # the same port, empty
    assert wait_until(lambda: p.state.up)
    assert subscribed(own_redis_server, namespace, 1)
    assert len(fleet_warnings(caplog, "unreachable")) == 1
    assert len(fleet_warnings(caplog, "reachable again")) == 1


def test_after_a_restart_sharing_resumes(own_redis_server, namespace, processes):
    a, b = processes(own_redis_server, namespace), processes(own_redis_server, namespace)
    assert listening(own_redis_server, namespace, a, b)
    own_redis_server.kill()
    a.link.claim()
    b.link.claim()
    assert wait_until(lambda: not a.state.up and not b.state.up)
    own_redis_server.start()
    assert wait_until(lambda: a.state.up and b.state.up)
    assert subscribed(own_redis_server, namespace, 2)
    a.fail(3)
    assert wait_until(lambda: b.breaker.state == OPEN, timeout=1.0)


def test_an_opening_made_while_redis_was_down_is_told_to_the_store_after_the_restart(own_redis_server, namespace,
                                                                                     processes):
    a = processes(own_redis_server, namespace)
    assert listening(own_redis_server, namespace, a)
    own_redis_server.kill()
    a.link.claim()
    assert wait_until(lambda: not a.state.up)
    a.fail(3)                                  # opened locally; Redis did not hear of it
    own_redis_server.start()                   # empty
    assert wait_until(lambda: a.state.up)
    assert wait_until(lambda: (a.state.store.read(KEY) or View("closed")).state == "open")   # a's resync


def test_a_process_that_missed_an_opening_learns_it_from_its_next_failure(redis_server, namespace, processes):
    b = processes(redis_server, namespace)
    b.state.store.open(KEY, "another process", open_time=5.0)   # published before b listened
    b.fail(1)                                                    # reported: the reply says open
    assert wait_until(lambda: b.breaker.state == OPEN, timeout=1.0)
    assert b.breaker.open_until > time.monotonic() + 4.0


# -- Redis forgetting things ----------------------------------------------------------------------------------------
def test_after_the_script_cache_is_flushed_calls_still_work(redis_server, namespace, processes):
    p = processes(redis_server, namespace)
    redis_server.command("SCRIPT", "FLUSH")
    answer = p.link.claim()
    assert answer is not None and answer[0]
    assert p.state.up and p.state.counters["outages"] == 0


def test_a_listener_whose_connection_redis_closes_subscribes_again(own_redis_server, namespace, processes):
    a, b = processes(own_redis_server, namespace), processes(own_redis_server, namespace)
    assert listening(own_redis_server, namespace, a, b)
    own_redis_server.command("CLIENT", "KILL", "TYPE", "pubsub")
    assert wait_until(lambda: a.state.up and b.state.up)
    assert subscribed(own_redis_server, namespace, 2)
    a.fail(3)
    assert wait_until(lambda: b.breaker.state == OPEN, timeout=1.0)


# -- Redis stalled -----------------------------------------------------------------------------------------------
def test_with_redis_stalled_a_claim_returns_within_the_timeout(own_redis_server, namespace, processes):
    p = processes(own_redis_server, namespace)
    assert listening(own_redis_server, namespace, p)
    own_redis_server.stall()
    try:
        answer, took = timed(p.link.claim)
        assert answer is None and took < PROMPT
        assert not p.state.up
        answers = [timed(p.link.claim) for _ in range(20)]
        assert all(a is None and t < PROMPT for a, t in answers)
    finally:
        own_redis_server.resume()


@pytest.mark.parametrize("operation", ["reserve", "dns lookup"])
def test_with_redis_stalled_reserve_and_dns_lookup_return_within_the_timeout(own_redis_server, namespace,
                                                                             processes, operation):
    p = processes(own_redis_server, namespace)
    dns = p.state.dns(DnsPolicy(nameservers=["127.0.0.1"]))
    assert listening(own_redis_server, namespace, p)
    call = (lambda: p.link.reserve(time.monotonic())) if operation == "reserve" else (lambda: dns.lookup(NAME))
    own_redis_server.stall()
    try:
        answer, took = timed(call)
        assert answer is None and took < PROMPT
        assert not p.state.up
    finally:
        own_redis_server.resume()


def test_after_a_stall_the_state_comes_back_up(own_redis_server, namespace, processes):
    p = processes(own_redis_server, namespace)
    assert listening(own_redis_server, namespace, p)
    own_redis_server.stall()
    try:
        p.link.claim()
        assert not p.state.up
    finally:
        own_redis_server.resume()
    assert wait_until(lambda: p.state.up)
    assert p.link.claim() is not None


# -- the success path --------------------------------------------------------------------------------------------
#: What the test's own look at the server costs: the statistics commands and the connection's handshake.
_PROBE_COMMANDS = {"config|resetstat", "info", "hello", "client|setinfo"}


def test_the_success_path_sends_no_command_to_redis(own_redis_server, namespace, processes):
    p = processes(own_redis_server, namespace)
    assert listening(own_redis_server, namespace, p)      # its threads run: the listener is subscribed
    assert wait_until(lambda: own_redis_server.commandstats().get("evalsha", 0) >= 1)  # the report has run
    calls = p.state.counters["calls"]
    own_redis_server.reset_stats()
    for _ in range(10_000):
        now = time.monotonic()
        ticket = p.breaker.admit(now)
        p.budget.deposit(now)
        p.breaker.on_success(now, ticket)
    assert p.state.counters["calls"] == calls
    stats = own_redis_server.commandstats()
    assert {name: n for name, n in stats.items() if name not in _PROBE_COMMANDS} == {}
    assert stats.get("hello", 0) <= 1          # the statistics connection's own, if the client sends one


# -- fork --------------------------------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded")
def test_a_forked_child_has_a_new_owner_and_can_still_claim(redis_server, namespace, processes):
    p = processes(redis_server, namespace)
    assert listening(redis_server, namespace, p)
    p.state.store.open(KEY, "someone", open_time=0.05)
    assert wait_until(lambda: p.state.store.read(KEY).remaining == 0.0)
    parent_owner = p.state.owner

    def child() -> dict:
        answer = p.link.claim()
        return {"owner": p.state.owner, "granted": None if answer is None else answer[0],
                "holder": None if answer is None else answer[1].holder}

    report = in_child(child)
    assert report["owner"] != parent_owner
    assert report["granted"] is True and report["holder"] == report["owner"]
    assert p.state.store.read(KEY).holder == report["owner"]
    assert p.state.owner == parent_owner
