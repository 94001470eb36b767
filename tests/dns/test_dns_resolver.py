"""The resolver: dnspython for A and AAAA with TTLs, IP literals and the hosts file first, and the
kind of every failure told apart. The tests that ask the loopback DNS server are integration tests."""

from __future__ import annotations

import os
import socket

import pytest
from support.dns import NAME, FakeClock

from resilient_aws.dns import HostsFile, LookupFailure, Resolver
from resilient_aws.policy import DnsPolicy

integration = pytest.mark.integration


@pytest.fixture
def resolver(dns_server, tmp_path):
    hosts = tmp_path / "hosts"
    hosts.write_text("# comment\n127.0.0.1 localhost\n127.0.0.42 pinned.example pinned # trailing\n::1 v6only\n")
    policy = DnsPolicy(nameservers=["127.0.0.1"], port=dns_server.port, timeout=0.5)
    return Resolver(policy, HostsFile(str(hosts)))


@integration
def test_a_and_aaaa_records_are_returned_ipv4_first_with_the_smallest_ttl(dns_server, resolver):
    dns_server.set(NAME, a=["127.0.0.5"], aaaa=["::1"], ttl=7)
    answer = resolver.lookup(NAME)
    assert answer.addresses == ((socket.AF_INET, "127.0.0.5"), (socket.AF_INET6, "::1"))
    assert answer.ttl == 7
    assert answer.source == "dns"


@integration
def test_an_ip_literal_needs_no_query(dns_server, resolver):
    assert resolver.lookup("127.0.0.9").addresses == ((socket.AF_INET, "127.0.0.9"),)
    assert resolver.lookup("[::1]").addresses == ((socket.AF_INET6, "::1"),)
    assert dns_server.count() == 0


@integration
def test_the_hosts_file_answers_before_dns(dns_server, resolver):
    dns_server.set("pinned.example", a=["127.0.0.99"], ttl=5)
    answer = resolver.lookup("pinned.example")
    assert answer.addresses == ((socket.AF_INET, "127.0.0.42"),)
    assert answer.source == "hosts"
    assert resolver.lookup("PINNED").addresses == ((socket.AF_INET, "127.0.0.42"),)
    assert resolver.lookup("v6only").addresses == ((socket.AF_INET6, "::1"),)
    assert dns_server.count() == 0


@integration
@pytest.mark.parametrize(("mode", "kind"), [
    ("empty", "empty"), ("nxdomain", "nxdomain"), ("servfail", "servfail"), ("drop", "timeout")])
def test_each_failure_is_reported_with_its_kind(dns_server, resolver, mode, kind):
    dns_server.set(NAME, a=["127.0.0.5"], ttl=5)
    dns_server.set_mode(NAME, mode)
    with pytest.raises(LookupFailure) as info:
        resolver.lookup(NAME)
    assert info.value.kind == kind


@integration
def test_a_timeout_costs_one_dns_timeout_not_two(dns_server, resolver):
    import time

    dns_server.set_mode(NAME, "drop")
    t = time.monotonic()
    with pytest.raises(LookupFailure):
        resolver.lookup(NAME)
    assert time.monotonic() - t < 0.5 * 1.8
    assert dns_server.count(NAME, "AAAA") == 0


@integration
def test_large_answers_fall_back_to_tcp(dns_server, resolver):
    many = [f"127.0.{i // 250}.{i % 250 + 1}" for i in range(60)]  # > 512 bytes over UDP
    dns_server.set(NAME, a=many, ttl=5)
    assert len(resolver.lookup(NAME).addresses) == 60


def test_without_nameservers_the_system_configuration_is_used():
    import dns.resolver

    resolver = Resolver(DnsPolicy())
    if resolver._dns is None:  # no /etc/resolv.conf here: getaddrinfo is the fallback
        return
    assert resolver._dns.nameservers == dns.resolver.Resolver(configure=True).nameservers
    assert resolver._dns.lifetime == DnsPolicy().timeout


def test_the_hosts_file_is_read_again_once_a_second_of_its_clock_has_passed(tmp_path):
    path = tmp_path / "hosts"
    path.write_text("127.0.0.42 pinned.example\n")
    clock = FakeClock()
    hosts = HostsFile(str(path), monotonic=clock)
    assert hosts.lookup("pinned.example") == ((socket.AF_INET, "127.0.0.42"),)
    path.write_text("127.0.0.43 pinned.example\n")
    os.utime(path, (0, 12345))  # a modification time of its own, whatever the file system's granularity
    clock.advance(0.9)
    assert hosts.lookup("pinned.example") == ((socket.AF_INET, "127.0.0.42"),)  # not checked again yet
    clock.advance(0.1)
    assert hosts.lookup("pinned.example") == ((socket.AF_INET, "127.0.0.43"),)
