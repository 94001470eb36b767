"""Last-known-good DNS answers of a fleet: what one process resolved, a process starting cold during
a DNS outage can use.

A good answer from DNS is published (once; again when it changes, or every ``republish`` seconds to
keep the entry young); a name with no answer of its own (no earlier answer, no persisted file) that
fails to resolve is served the fleet's addresses, as stale: the next re-check still asks DNS, a
non-empty answer replaces them, an empty one or NXDOMAIN does not. An entry older than ``max_stale``
is not used; with the store unavailable the cold name fails as it always did.

The caches run on ``support.dns.FakeResolver`` and the fleet's hand-moved clock (the store's clock
too), with ``random() = 0``, so re-check times are exact and nothing sleeps.
"""

from __future__ import annotations

import socket

import pytest
from support.dns import NAME, FakeResolver, ips, settle
from support.fleet import Fleet

from resilient_aws.dns import DnsCache, DnsLookupError
from resilient_aws.fleet.store import dns_entry
from resilient_aws.policy import DnsPolicy

MAX_STALE = 600.0
RECHECK = 0.3
POLICY = DnsPolicy(nameservers=["127.0.0.1"], timeout=0.5, recheck_interval=RECHECK, min_ttl=0.0,
                   max_stale=MAX_STALE)
REPUBLISH = min(60.0, MAX_STALE / 2)
GOOD = ["10.1.0.1", "10.1.0.2"]


class Host:
    """One process's DNS cache on its own fake resolver, linked to the fleet through ``fleet[i]``."""

    def __init__(self, fleet: Fleet, i: int, policy: DnsPolicy = POLICY) -> None:
        self.resolver = FakeResolver()
        self.shared = fleet[i].shared
        self.cache = DnsCache(policy, resolver=self.resolver, monotonic=fleet.clock, random=lambda: 0.0,
                              fleet=self.shared.dns(policy))

    def resolve(self) -> list[str]:
        return ips(self.cache.resolve(NAME, 443))

    def close(self) -> None:
        self.resolver.release()
        self.cache.close()


@pytest.fixture
def fleet() -> Fleet:
    return Fleet(2)


@pytest.fixture
def hosts(fleet):
    made = [Host(fleet, 0), Host(fleet, 1)]
    yield made
    for host in made:
        host.close()


def published(fleet: Fleet) -> int:
    return fleet.store.count("dns_put")


def warm_and_cold(fleet: Fleet, hosts: list[Host]) -> tuple[Host, Host]:
    """Host 0 resolved NAME (and published it); host 1 never did, and its DNS now fails."""
    warm, cold = hosts
    warm.resolver.set(NAME, GOOD, ttl=10)
    assert warm.resolve() == GOOD
    cold.resolver.set_mode(NAME, "nxdomain")
    return warm, cold


# -- publishing --------------------------------------------------------------------------------------------------
def test_a_good_answer_is_published_once(fleet, hosts):
    host = hosts[0]
    host.resolver.set(NAME, GOOD, ttl=1)
    for _ in range(5):
        assert host.resolve() == GOOD
        fleet.advance(1.0)    # past the TTL: the next resolve asks DNS again, and gets the same answer
    assert host.resolver.count(NAME) == 5
    assert published(fleet) == 1
    assert fleet.memory.dns_get(NAME)[0] == dns_entry(GOOD, fleet.namespace)


def test_a_changed_answer_is_published_again_at_once(fleet, hosts):
    host = hosts[0]
    host.resolver.set(NAME, GOOD, ttl=1)
    host.resolve()
    host.resolver.set(NAME, ["10.1.0.9"], ttl=1)
    fleet.advance(1.0)
    assert host.resolve() == ["10.1.0.9"]
    assert published(fleet) == 2
    assert fleet.memory.dns_get(NAME)[0] == dns_entry(["10.1.0.9"], fleet.namespace)


def test_an_unchanged_answer_is_published_again_after_republish(fleet, hosts):
    host = hosts[0]
    host.resolver.set(NAME, GOOD, ttl=10)
    host.resolve()
    for _ in range(int(REPUBLISH / 10) - 1):
        fleet.advance(10.0)
        host.resolve()
    assert published(fleet) == 1      # 50 s: not yet
    fleet.advance(10.0)
    host.resolve()
    assert published(fleet) == 2      # 60 s: the entry is made young again


def test_an_answer_from_the_hosts_file_is_not_published(fleet, hosts):
    host = hosts[0]
    host.resolver.set(NAME, ["127.0.0.1"], source="hosts")
    assert host.resolve() == ["127.0.0.1"]
    assert published(fleet) == 0


def test_a_name_that_resolves_never_asks_the_fleet(fleet, hosts):
    host = hosts[0]
    host.resolver.set(NAME, GOOD, ttl=1)
    host.resolve()
    assert fleet.store.count("dns_get") == 0


def test_a_name_with_a_good_answer_of_its_own_never_asks_the_fleet_when_dns_fails(fleet, hosts):
    host = hosts[0]
    host.resolver.set(NAME, GOOD, ttl=1)
    host.resolve()
    host.resolver.set_mode(NAME, "empty")
    fleet.advance(1.0)
    assert host.resolve() == GOOD      # its own last good answer, served stale
    assert fleet.store.count("dns_get") == 0


def test_publishing_with_the_store_down_changes_nothing_for_the_caller(fleet, hosts):
    fleet.store.down = True
    host = hosts[0]
    host.resolver.set(NAME, GOOD, ttl=1)
    assert host.resolve() == GOOD
    assert not host.shared.up


# -- a cold start served by the fleet ------------------------------------------------------------------------------
def test_a_cold_name_that_fails_to_resolve_is_served_the_fleets_addresses(fleet, hosts):
    _, cold = warm_and_cold(fleet, hosts)
    assert cold.resolve() == GOOD
    stats = cold.cache.stats()
    assert stats["fleet_loads"] == 1 and stats["names_stale"] == [NAME]


def test_ipv6_addresses_from_the_fleet_are_served_as_ipv6(fleet, hosts):
    cold = hosts[1]
    cold.resolver.set_mode(NAME, "nxdomain")
    fleet.memory.put_raw_dns(NAME, dns_entry(["2600:1f18::1", "10.1.0.1"], fleet.namespace), age=1.0, ttl=60.0)
    infos = cold.cache.resolve(NAME, 443)
    assert [(family, sockaddr) for family, _, _, _, sockaddr in infos] == [
        (socket.AF_INET6, ("2600:1f18::1", 443, 0, 0)), (socket.AF_INET, ("10.1.0.1", 443))]


def test_the_fleets_addresses_are_stale_so_the_next_recheck_still_asks_dns(fleet, hosts):
    _, cold = warm_and_cold(fleet, hosts)
    cold.resolve()
    asked = cold.resolver.count(NAME)
    fleet.advance(RECHECK / 2)
    assert cold.resolve() == GOOD
    assert cold.resolver.count(NAME) == asked       # before the re-check time, no query
    fleet.advance(RECHECK / 2)
    assert cold.resolve() == GOOD                   # the re-check runs behind the caller's back
    settle(cold.cache, NAME)
    assert cold.resolver.count(NAME) == asked + 1


def test_a_non_empty_answer_replaces_the_fleets_addresses(fleet, hosts):
    _, cold = warm_and_cold(fleet, hosts)
    cold.resolve()
    cold.resolver.set(NAME, ["10.2.0.1"], ttl=10)
    fleet.advance(RECHECK)
    cold.resolve()
    settle(cold.cache, NAME)
    assert cold.resolve() == ["10.2.0.1"]
    assert cold.cache.stats()["names_stale"] == []


@pytest.mark.parametrize("kind", ["empty", "nxdomain", "servfail", "timeout"])
def test_a_failed_recheck_does_not_replace_the_fleets_addresses(fleet, hosts, kind):
    _, cold = warm_and_cold(fleet, hosts)
    cold.resolve()
    cold.resolver.set_mode(NAME, kind)
    for _ in range(3):
        fleet.advance(RECHECK)
        cold.resolve()
        settle(cold.cache, NAME)
    assert cold.resolve() == GOOD
    assert cold.cache.stats()["fleet_loads"] == 1    # read once; the re-checks ask DNS, not the fleet again


def test_the_fleets_addresses_are_served_only_for_what_is_left_of_max_stale(fleet, hosts):
    cold = hosts[1]
    cold.resolver.set_mode(NAME, "nxdomain")
    fleet.memory.put_raw_dns(NAME, dns_entry(GOOD, fleet.namespace), age=400.0, ttl=10 * MAX_STALE)
    assert cold.resolve() == GOOD
    fleet.advance(MAX_STALE - 400.0 - 0.5)
    assert cold.resolve() == GOOD
    settle(cold.cache, NAME)
    fleet.advance(0.5)
    with pytest.raises(DnsLookupError):
        cold.resolve()


def test_a_fleet_entry_older_than_max_stale_is_not_used(fleet, hosts):
    cold = hosts[1]
    cold.resolver.set_mode(NAME, "nxdomain")
    # written by a process whose max_stale is longer than this one's
    fleet.memory.put_raw_dns(NAME, dns_entry(GOOD, fleet.namespace), age=MAX_STALE, ttl=10 * MAX_STALE)
    with pytest.raises(DnsLookupError) as info:
        cold.resolve()
    assert info.value.kind == "nxdomain"
    assert cold.cache.stats()["fleet_loads"] == 0


def test_a_fleet_entry_is_gone_once_its_publishers_max_stale_has_passed(fleet, hosts):
    _, cold = warm_and_cold(fleet, hosts)
    fleet.advance(MAX_STALE)
    with pytest.raises(DnsLookupError):
        cold.resolve()
    assert fleet.store.count("dns_get") == 1


def test_with_the_fleet_unavailable_a_cold_name_fails_with_the_old_dns_lookup_error(fleet, hosts):
    _, cold = warm_and_cold(fleet, hosts)
    fleet.store.down = True
    with pytest.raises(DnsLookupError) as info:
        cold.resolve()
    assert info.value.kind == "nxdomain" and info.value.host == NAME
    assert not cold.shared.up and cold.cache.stats()["fleet_loads"] == 0


def test_a_cold_name_with_no_fleet_entry_fails_with_the_old_dns_lookup_error(fleet, hosts):
    cold = hosts[1]
    cold.resolver.set_mode(NAME, "servfail")
    with pytest.raises(DnsLookupError) as info:
        cold.resolve()
    assert info.value.kind == "servfail"
    assert cold.shared.up
