"""Fixtures for the DNS tests: a loopback DNS server, caches pointed at it, a moto server."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from dns_helpers import free_port

from resilient_aws.dns import DnsCache
from resilient_aws.events import Emitter, Event
from resilient_aws.policy import DnsPolicy
from resilient_aws.testing.dns_server import LoopbackDnsServer


@pytest.fixture
def dns_server() -> Iterator[LoopbackDnsServer]:
    with LoopbackDnsServer() as server:
        yield server


@pytest.fixture
def events() -> list[Event]:
    return []


@pytest.fixture
def make_cache(dns_server: LoopbackDnsServer, events: list[Event], tmp_path) -> Iterator[Callable[..., DnsCache]]:
    """``make_cache(**DnsPolicy fields)``: a cache asking ``dns_server``, with short test intervals and
    an empty hosts file (so the machine's /etc/hosts cannot answer for test names)."""
    made: list[DnsCache] = []
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")

    def make(**overrides: object) -> DnsCache:
        fields: dict = {"nameservers": ["127.0.0.1"], "port": dns_server.port, "timeout": 0.5,
                        "recheck_interval": 0.3, "min_ttl": 0.0}
        fields.update(overrides)
        emitter = Emitter()
        emitter.add(events.append)
        cache = DnsCache(DnsPolicy(**fields), emitter, hosts_path=str(hosts))
        made.append(cache)
        return cache

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

