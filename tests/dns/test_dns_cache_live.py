"""DnsCache against a real DNS server on loopback: what only real packets show. Each failure a server
can give (empty answer, NXDOMAIN, SERVFAIL, silence, no server at all) is told apart and the last good
answer is served through it; single flight and the re-check interval hold, counted by the server.

The cache runs on the hand-moved ``clock`` fixture, so a TTL passes when the test says, not after a
sleep; only the lookups take real time. The rules themselves are tested without a server in
``test_dns_cache.py``.
"""

from __future__ import annotations

import pytest
from support.dns import NAME, ips, resolve_in_threads, settle

from resilient_aws.dns import DnsLookupError

pytestmark = pytest.mark.integration

#: Server mode -> the failure kind the cache must report for it.
KINDS = {"empty": "empty", "nxdomain": "nxdomain", "servfail": "servfail", "drop": "timeout"}


@pytest.mark.parametrize("mode", list(KINDS))
def test_a_failing_name_keeps_serving_its_last_good_answer(dns_server, clock, make_live_cache, mode):
    dns_server.set(NAME, a=["127.0.0.5"], ttl=1)
    cache = make_live_cache()
    assert ips(cache.resolve(NAME, 443)) == ["127.0.0.5"]
    dns_server.set_mode(NAME, mode)
    clock.advance(1.05)  # past the TTL
    for _ in range(5):
        assert ips(cache.resolve(NAME, 443)) == ["127.0.0.5"]
        clock.advance(0.05)  # before the first re-check (0.3 s)
    stats = cache.stats()
    assert stats["stale_episodes"] == 1
    assert stats["stale_served"] == 5
    assert stats["names_stale"] == [NAME]
    assert stats["failures_by_kind"] == {KINDS[mode]: 1}
    assert dns_server.count(NAME, "A") == 2  # the first answer, then the one failed lookup


def test_an_unreachable_nameserver_keeps_the_last_good_answer(dns_server, clock, make_live_cache):
    dns_server.set(NAME, a=["127.0.0.5"], ttl=1)
    cache = make_live_cache()
    cache.resolve(NAME, 443)
    dns_server.stop()
    clock.advance(1.05)
    assert ips(cache.resolve(NAME, 443)) == ["127.0.0.5"]
    assert cache.stats()["failures"] == 1


def test_one_lookup_in_flight_per_name_with_32_threads(dns_server, make_live_cache):
    dns_server.set(NAME, a=["127.0.0.5"], ttl=60)
    cache = make_live_cache()
    results = resolve_in_threads(cache, NAME)
    assert len(results) == 32 * 20
    assert all(got == ["127.0.0.5"] for got in results)
    assert dns_server.count(NAME, "A") == 1


def test_rechecks_during_an_episode_are_bounded_by_the_interval(dns_server, clock, make_live_cache):
    dns_server.set(NAME, a=["127.0.0.5"], ttl=1)
    cache = make_live_cache(recheck_interval=0.4, random=lambda: 0.5)  # re-checks 0.45 s apart
    cache.resolve(NAME, 443)
    dns_server.set_mode(NAME, "empty")
    clock.advance(1.05)
    cache.resolve(NAME, 443)
    before = dns_server.count(NAME, "A")
    for _ in range(2000):  # 2 s of calls, one a millisecond
        clock.advance(0.001)
        cache.resolve(NAME, 443)
        settle(cache, NAME)
    assert dns_server.count(NAME, "A") - before == 4  # versus one per call without the re-check interval


def test_a_cold_timeout_costs_one_dns_timeout_not_two(dns_server, make_live_cache):
    dns_server.set_mode(NAME, "drop")
    cache = make_live_cache(timeout=0.3)
    with pytest.raises(DnsLookupError) as info:
        cache.resolve(NAME, 443)
    assert info.value.kind == "timeout"
    assert dns_server.count(NAME, "A") == 1
    assert dns_server.count(NAME, "AAAA") == 0  # A timed out: AAAA is not asked, so no second timeout
