"""Fixtures for the DNS tests: caches on a fake resolver and a hand-moved clock (unit tests), caches
asking a loopback DNS server (integration tests), a moto server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from support.dns import FakeClock, FakeResolver

from resilient_aws.dns import DnsCache
from resilient_aws.events import Emitter, Event
from resilient_aws.policy import DnsPolicy
from resilient_aws.testing.dns_server import LoopbackDnsServer
from resilient_aws.testing.net import free_port

#: DnsCache keywords a factory passes on; every other keyword is a DnsPolicy field.
_CACHE_KEYWORDS = ("resolver", "hosts_path", "timing", "monotonic", "wall_clock", "random", "wait")
#: Short intervals for tests.
_TEST_POLICY = {"timeout": 0.5, "recheck_interval": 0.3, "min_ttl": 0.0}


@pytest.fixture
def dns_server() -> Iterator[LoopbackDnsServer]:
    with LoopbackDnsServer() as server:
        yield server


@pytest.fixture
def events() -> list[Event]:
    return []


@pytest.fixture
def clock() -> FakeClock:
    """The caches' monotonic clock, moved by hand."""
    return FakeClock()


@pytest.fixture
def resolver() -> Iterator[FakeResolver]:
    fake = FakeResolver()
    yield fake
    fake.release()  # never leave a background lookup blocked after its test


def _factory(events: list[Event], defaults: dict[str, Any], cache_defaults: dict[str, Any]
             ) -> tuple[Callable[..., DnsCache], list[DnsCache]]:
    made: list[DnsCache] = []

    def make(**overrides: Any) -> DnsCache:
        keywords = {**cache_defaults, **{k: v for k, v in overrides.items() if k in _CACHE_KEYWORDS}}
        fields = {**defaults, **{k: v for k, v in overrides.items() if k not in _CACHE_KEYWORDS}}
        emitter = Emitter()
        emitter.add(events.append)
        cache = DnsCache(DnsPolicy(**fields), emitter, **keywords)
        made.append(cache)
        return cache

    return make, made


@pytest.fixture
def make_cache(resolver: FakeResolver, clock: FakeClock, events: list[Event]) -> Iterator[Callable[..., DnsCache]]:
    """``make_cache(**DnsPolicy fields and DnsCache keywords)``: a cache asking ``resolver`` on the
    ``clock`` fixture's time, with short test intervals. No server, no sleeping."""
    make, made = _factory(events, {"nameservers": ["127.0.0.1"], **_TEST_POLICY},
                          {"resolver": resolver, "monotonic": clock})
    yield make
    resolver.release()
    for cache in made:
        cache.close()


@pytest.fixture
def make_live_cache(dns_server: LoopbackDnsServer, clock: FakeClock, events: list[Event],
                    tmp_path) -> Iterator[Callable[..., DnsCache]]:
    """``make_live_cache(**DnsPolicy fields and DnsCache keywords)``: a cache asking ``dns_server``
    (real packets on loopback) with short test intervals, on the ``clock`` fixture's time (so a TTL
    passes when the test says, not after a sleep), and an empty hosts file (so the machine's
    /etc/hosts cannot answer for test names)."""
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    make, made = _factory(events, {"nameservers": ["127.0.0.1"], "port": dns_server.port, **_TEST_POLICY},
                          {"hosts_path": str(hosts), "monotonic": clock})
    yield make
    for cache in made:
        cache.close()


@pytest.fixture(scope="session")
def moto_port() -> Iterator[int]:
    """A moto server on 127.0.0.1 (shared by the session; moto keeps regions apart by signature)."""
    from moto.server import ThreadedMotoServer

    port = free_port("127.0.0.1")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield port
    server.stop()
