"""DnsCache against a real DNS server on loopback: last-known-good, single flight, re-check, refresh
ahead, max_stale, events and logs once per episode, bound, fork."""

from __future__ import annotations

import logging
import os
import threading
import time

import pytest
from dns_helpers import NAME, ips, wait_until

from resilient_aws.dns import DnsCache, DnsLookupError
from resilient_aws.events import DNS_FAILURE, DNS_RECOVERED, DNS_STALE

pytestmark = pytest.mark.integration

FAILURES = ["empty", "nxdomain", "servfail", "drop"]


@pytest.mark.parametrize("mode", FAILURES)
def test_a_failing_name_keeps_serving_its_last_good_answer(dns_server, make_cache, mode):
    dns_server.set(NAME, a=["127.0.0.5"], ttl=1)
    cache = make_cache()
    assert ips(cache.resolve(NAME, 443)) == ["127.0.0.5"]
    dns_server.set_mode(NAME, mode)
    time.sleep(1.05)  # past the TTL
    for _ in range(5):
        assert ips(cache.resolve(NAME, 443)) == ["127.0.0.5"]
        time.sleep(0.1)
    stats = cache.stats()
    assert stats["stale_episodes"] == 1
    assert stats["stale_served"] >= 1
    assert stats["names_stale"] == [NAME]


def test_an_unreachable_nameserver_keeps_the_last_good_answer(dns_server, make_cache):
    dns_server.set(NAME, a=["127.0.0.5"], ttl=1)
    cache = make_cache()
    cache.resolve(NAME, 443)
    dns_server.stop()
    time.sleep(1.05)
    assert ips(cache.resolve(NAME, 443)) == ["127.0.0.5"]
    assert cache.stats()["failures"] >= 1


def test_an_empty_answer_costs_no_caller_any_waiting(dns_server, make_cache):
    dns_server.set(NAME, a=["127.0.0.5"], ttl=1)
    cache = make_cache(timeout=1.0)
    cache.resolve(NAME, 443)
    dns_server.set_mode(NAME, "drop")  # every lookup now waits the full timeout
    time.sleep(1.05)
    cache.resolve(NAME, 443)  # the one caller that waits: the TTL passed with the name idle
    worst = 0.0
    for _ in range(50):
        t = time.perf_counter()
        cache.resolve(NAME, 443)
        worst = max(worst, time.perf_counter() - t)
        time.sleep(0.01)
    assert worst < 0.2  # a lookup now takes the full 1 s timeout; nobody waited for one


def test_a_changed_answer_is_followed_at_once(dns_server, make_cache):
    dns_server.set(NAME, a=["127.0.0.5"], ttl=1)
    cache = make_cache()
    cache.resolve(NAME, 443)
    dns_server.set(NAME, a=["127.0.0.6", "127.0.0.7"], ttl=1)
    assert wait_until(lambda: sorted(ips(cache.resolve(NAME, 443))) == ["127.0.0.6", "127.0.0.7"], timeout=3)
    assert cache.stats()["answers_changed"] == 1


def test_a_new_answer_after_an_episode_replaces_the_stale_one(dns_server, make_cache, events):
    dns_server.set(NAME, a=["127.0.0.5"], ttl=1)
    cache = make_cache()
    cache.resolve(NAME, 443)
    dns_server.set_mode(NAME, "empty")
    time.sleep(1.05)
    cache.resolve(NAME, 443)
    dns_server.set(NAME, a=["127.0.0.9"], ttl=1)
    assert wait_until(lambda: ips(cache.resolve(NAME, 443)) == ["127.0.0.9"], timeout=3)
    assert [e.kind for e in events] == [DNS_STALE, DNS_RECOVERED]
    assert events[1].detail["changed"] is True


def test_one_lookup_in_flight_per_name_with_32_threads(dns_server, make_cache):
    dns_server.set(NAME, a=["127.0.0.5"], ttl=60)
    cache = make_cache()
    barrier = threading.Barrier(32)
    results: list[list[str]] = []
    lock = threading.Lock()

    def worker() -> None:
        barrier.wait(timeout=5)
        for _ in range(20):
            got = ips(cache.resolve(NAME, 443))
            with lock:
                results.append(got)

    threads = [threading.Thread(target=worker) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert len(results) == 32 * 20
    assert all(r == ["127.0.0.5"] for r in results)
    assert dns_server.count(NAME, "A") == 1


def test_one_recheck_in_flight_while_the_name_fails_with_32_threads(dns_server, make_cache):
    dns_server.set(NAME, a=["127.0.0.5"], ttl=1)
    cache = make_cache(recheck_interval=0.5)
    cache.resolve(NAME, 443)
    dns_server.set_mode(NAME, "drop")
    time.sleep(1.05)
    before = dns_server.count(NAME, "A")
    stop = time.monotonic() + 1.0
    served = []

    def worker() -> None:
        while time.monotonic() < stop:
            served.append(ips(cache.resolve(NAME, 443)))
            time.sleep(0.002)

    threads = [threading.Thread(target=worker) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert all(s == ["127.0.0.5"] for s in served)
    # 1 s of failure with a 0.5 s re-check (+ jitter): the expiry lookup plus at most 2 re-checks.
    assert dns_server.count(NAME, "A") - before <= 3


def test_rechecks_during_an_episode_are_bounded_by_the_interval(dns_server, make_cache):
    dns_server.set(NAME, a=["127.0.0.5"], ttl=1)
    cache = make_cache(recheck_interval=0.4)
    cache.resolve(NAME, 443)
    dns_server.set_mode(NAME, "empty")
    time.sleep(1.05)
    before = dns_server.count(NAME, "A")
    start = time.monotonic()
    calls = 0
    while time.monotonic() - start < 2.0:
        cache.resolve(NAME, 443)
        calls += 1
        time.sleep(0.001)
    queries = dns_server.count(NAME, "A") - before
    assert calls > 100
    assert 2 <= queries <= 2.0 / 0.4 + 1  # versus one per call without the re-check interval


def test_rechecks_are_jittered(dns_server, make_cache):
    dns_server.set(NAME, a=["127.0.0.5"], ttl=1)
    cache = make_cache(recheck_interval=10.0)
    cache.resolve(NAME, 443)
    dns_server.set_mode(NAME, "empty")
    time.sleep(1.05)
    delays = set()
    for _ in range(5):
        cache._entries[NAME].refresh_at = 0.0
        cache._entries[NAME].next_check = 0.0
        cache.resolve(NAME, 443)
        wait_until(lambda: cache._entries[NAME].inflight is None, timeout=2)
        delays.add(round(cache._entries[NAME].next_check - time.monotonic(), 3))
    assert all(9.5 <= d <= 12.5 for d in delays)
    assert len(delays) > 1


def test_a_healthy_name_is_refreshed_ahead_of_expiry_off_the_callers_path(dns_server, make_cache):
    dns_server.set(NAME, a=["127.0.0.5"], ttl=1)
    cache = make_cache(refresh_ahead=0.5, timeout=1.0)
    cache.resolve(NAME, 443)
    dns_server.set(NAME, a=["127.0.0.6"], ttl=1)
    time.sleep(0.6)  # past 50 % of the TTL, before its end
    first = ips(cache.resolve(NAME, 443))
    assert first == ["127.0.0.5"]  # answered from the cache: the caller did not wait for the refresh
    assert wait_until(lambda: ips(cache.resolve(NAME, 443)) == ["127.0.0.6"], timeout=1)
    assert cache.stats()["refreshes_ahead"] >= 1


def test_a_busy_name_never_makes_a_caller_wait_even_when_dns_hangs(dns_server, make_cache):
    dns_server.set(NAME, a=["127.0.0.5"], ttl=1)
    cache = make_cache(refresh_ahead=0.5, timeout=1.0)
    cache.resolve(NAME, 443)
    dns_server.set_mode(NAME, "drop")
    worst = 0.0
    end = time.monotonic() + 2.5
    while time.monotonic() < end:
        t = time.perf_counter()
        assert ips(cache.resolve(NAME, 443)) == ["127.0.0.5"]
        worst = max(worst, time.perf_counter() - t)
        time.sleep(0.02)
    assert worst < 0.2  # every refresh now hangs for the 1 s timeout, behind the callers' backs


def test_the_last_good_answer_expires_after_max_stale(dns_server, make_cache, events):
    dns_server.set(NAME, a=["127.0.0.5"], ttl=1)
    cache = make_cache(max_stale=0.5, recheck_interval=0.2)
    cache.resolve(NAME, 443)
    dns_server.set_mode(NAME, "nxdomain")
    time.sleep(1.1)
    assert ips(cache.resolve(NAME, 443)) == ["127.0.0.5"]
    time.sleep(0.6)  # TTL + max_stale have passed
    with pytest.raises(DnsLookupError) as info:
        cache.resolve(NAME, 443)
    assert info.value.kind == "nxdomain"
    assert cache.stats()["stale_expired"] == 1
    assert [e.kind for e in events] == [DNS_STALE, DNS_FAILURE, DNS_FAILURE]  # expired, then the failed lookup
    assert events[1].detail["kind"] == "stale_expired"


def test_a_stale_episode_is_logged_once_at_start_and_once_at_end(dns_server, make_cache, caplog, events):
    dns_server.set(NAME, a=["127.0.0.5"], ttl=1)
    cache = make_cache(recheck_interval=0.1)
    cache.resolve(NAME, 443)
    dns_server.set_mode(NAME, "empty")
    time.sleep(1.05)
    with caplog.at_level(logging.INFO, logger="resilient_aws"):
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            cache.resolve(NAME, 443)
            time.sleep(0.005)
        dns_server.restore(NAME)
        assert wait_until(lambda: (cache.resolve(NAME, 443), cache.stats()["recoveries"] == 1)[1], timeout=2)
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("resilient_aws")]
    assert len(messages) == 2, messages
    assert "serving last-known-good" in messages[0]
    assert "answers again" in messages[1]
    assert [e.kind for e in events] == [DNS_STALE, DNS_RECOVERED]
    assert events[0].detail == {"host": NAME, "kind": "empty", "addresses": ["127.0.0.5"]}
    assert cache.stats()["failures"] >= 5  # many re-checks, one log line each way


def test_a_name_with_no_history_that_cannot_resolve_raises(dns_server, make_cache, events):
    cache = make_cache()
    with pytest.raises(DnsLookupError) as info:
        cache.resolve("missing." + NAME, 443)
    assert info.value.kind == "nxdomain"
    assert isinstance(info.value, OSError)
    assert cache.stats()["cold_failures"] == 1
    assert [e.kind for e in events] == [DNS_FAILURE]


def test_a_dead_cold_name_is_not_queried_again_before_the_recheck_interval(dns_server, make_cache):
    cache = make_cache(recheck_interval=5.0)
    for _ in range(20):
        with pytest.raises(DnsLookupError):
            cache.resolve("missing." + NAME, 443)
    assert dns_server.count("missing." + NAME, "A") == 1


def test_a_cold_timeout_waits_at_most_about_the_dns_timeout(dns_server, make_cache):
    dns_server.set_mode(NAME, "drop")
    cache = make_cache(timeout=0.3)
    t = time.monotonic()
    with pytest.raises(DnsLookupError) as info:
        cache.resolve(NAME, 443)
    assert info.value.kind == "timeout"
    assert time.monotonic() - t < 1.0


def test_a_refused_address_moves_to_the_back(dns_server, make_cache):
    dns_server.set(NAME, a=["127.0.0.5", "127.0.0.6", "127.0.0.7"], ttl=60)
    cache = make_cache()
    first = ips(cache.resolve(NAME, 443))
    cache.report_failure(NAME, first[0])
    assert ips(cache.resolve(NAME, 443)) == [*first[1:], first[0]]


def test_the_cache_is_bounded_by_max_names(dns_server, make_cache):
    for i in range(10):
        dns_server.set(f"n{i}.{NAME}", a=[f"127.0.1.{i}"], ttl=60)
    cache = make_cache(max_names=4)
    for i in range(10):
        cache.resolve(f"n{i}.{NAME}", 443)
    assert len(cache._entries) <= 4
    assert cache.stats()["names_cached"] <= 4
    assert ips(cache.resolve(f"n9.{NAME}", 443)) == ["127.0.1.9"]


def test_stats_are_json_serializable(dns_server, make_cache):
    import json

    dns_server.set(NAME, a=["127.0.0.5"], ttl=60)
    cache = make_cache()
    cache.resolve(NAME, 443)
    data = json.loads(json.dumps(cache.stats()))
    assert data["answers"] == 1 and data["queries"] >= 1 and data["names_cached"] == 1


def test_after_fork_a_child_keeps_the_answers_and_can_resolve(dns_server, make_cache):
    dns_server.set(NAME, a=["127.0.0.5"], ttl=1)
    cache = make_cache()
    cache.resolve(NAME, 443)
    dns_server.set_mode(NAME, "empty")
    cache._entries[NAME].inflight = threading.Event()  # as if a lookup was in flight at fork time
    pid = os.fork()
    if pid == 0:  # child: must not block on the parent's in-flight lookup, must serve the answer
        code = 1
        try:
            time.sleep(1.05)
            code = 0 if ips(cache.resolve(NAME, 443)) == ["127.0.0.5"] else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    cache._entries[NAME].inflight = None
    assert os.waitstatus_to_exitcode(status) == 0


def test_the_default_policy_builds_a_cache_without_a_network_call():
    from resilient_aws.policy import DnsPolicy

    cache = DnsCache(DnsPolicy())
    assert cache.stats()["queries"] == 0
