"""What the DNS cache costs, and proof that pooled calls do no DNS work.

Why: resilient_aws answers every connection's name lookup from its own cache (last-known-good DNS), so
that lookup is on the path of each new connection; it must cost less than the ``getaddrinfo`` it
replaces, and a call on an already open keep-alive connection must not look anything up at all.

1. The median cost of a cache hit (``DnsCache.resolve`` for a name it knows) next to
   ``socket.getaddrinfo`` of the same name (``localhost``, answered from a hosts file, so the
   comparison is the cheapest case for getaddrinfo: no DNS packet at all). Target: <= 2 us a hit.
2. N calls of one botocore client (attached to the cache) over one keep-alive connection to a
   loopback HTTP server: how many times the cache was asked, how many DNS queries the (loopback) DNS
   server got, and how many connections the HTTP server saw.

Everything runs on 127.0.0.1, in this process: a dnspython DNS server and an HTTP server.
"""

from __future__ import annotations

import platform
import socket
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .timing import Progress, repeated

NAME = "dynamodb.us-east-1.bench.test"
HIT_TARGET_US = 2.0


@dataclass(frozen=True)
class Settings:
    """Rounds and calls; the defaults take about 10 s."""

    rounds: int = 15          # timed rounds of each lookup
    calls: int = 20_000       # cache hits per round (getaddrinfo: a tenth, at least 200)
    pooled_calls: int = 200   # calls over one pooled connection


#: ``--quick``: a few seconds.
QUICK = Settings(rounds=7, calls=2_000)


@dataclass(frozen=True)
class Outcome:
    text: str
    ok: bool  # no DNS work on a pooled connection (the hit's speed is reported, not enforced)


def _lookup_costs(settings: Settings, progress: Progress) -> tuple[list[float], list[float], int]:
    """Per-call samples of a cache hit and of getaddrinfo for ``localhost``; and getaddrinfo's calls per round."""
    from resilient_aws.dns import DnsCache
    from resilient_aws.policy import DnsPolicy

    gai_calls = max(200, settings.calls // 10)
    with tempfile.TemporaryDirectory() as tmp:
        hosts = Path(tmp) / "hosts"
        hosts.write_text("127.0.0.1 localhost\n")
        # the nameserver is never asked: localhost is in the hosts file
        cache = DnsCache(DnsPolicy(nameservers=["127.0.0.1"], port=53), hosts_path=str(hosts))
        cache.resolve("localhost", 443)  # warm: from then on, every call is a hit
        hits = repeated(lambda: cache.resolve("localhost", 443), settings.calls, settings.rounds, progress,
                        "cache hit")
        gai = repeated(lambda: socket.getaddrinfo("localhost", 443, type=socket.SOCK_STREAM), gai_calls,
                       settings.rounds, progress, "getaddrinfo")
    return hits, gai, gai_calls


def _pooled(settings: Settings, progress: Progress) -> tuple[tuple[int, int], tuple[int, int], int, int]:
    """(cache lookups, DNS queries) for the first call and for the next ones; connections, requests."""
    import botocore.session
    from botocore.config import Config

    from resilient_aws.dns import DnsCache, attach_dns
    from resilient_aws.policy import DnsPolicy
    from resilient_aws.testing.dns_server import LoopbackDnsServer
    from resilient_aws.testing.http import CountingHttpServer

    with LoopbackDnsServer() as dns_server:
        dns_server.set(NAME, a=["127.0.0.1"], ttl=300)
        cache = DnsCache(DnsPolicy(nameservers=["127.0.0.1"], port=dns_server.port, timeout=1.0))
        asked: list[str] = []
        original = cache.resolve

        def counting(host: str, port: int) -> list[Any]:
            asked.append(host)
            return original(host, port)

        cache.resolve = counting  # type: ignore[method-assign]  # this instance only
        server = CountingHttpServer().start()
        try:
            client = botocore.session.get_session().create_client(
                "dynamodb", region_name="us-east-1", endpoint_url=f"http://{NAME}:{server.port}",
                aws_access_key_id="x", aws_secret_access_key="x",
                config=Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=5))
            attach_dns(client, cache)
            client.list_tables()
            first = (len(asked), dns_server.count(NAME))
            for _ in range(settings.pooled_calls):
                client.list_tables()
            rest = (len(asked) - first[0], dns_server.count(NAME) - first[1])
            connections, requests = server.connections, server.requests
        finally:
            server.close()
    progress(f"pooled: {settings.pooled_calls} calls after the first: {rest[0]} cache lookups, {rest[1]} DNS "
             f"queries, {connections} connection(s) in all")
    return first, rest, connections, requests


def run(settings: Settings, progress: Progress | None = None) -> Outcome:
    """Both measurements; the tables (Markdown) and whether pooled calls did no DNS work."""
    progress = progress or Progress("dns")
    hits, gai, gai_calls = _lookup_costs(settings, progress)
    hit_med, hit_best = statistics.median(hits), min(hits)
    gai_med, gai_best = statistics.median(gai), min(gai)
    first, rest, connections, requests = _pooled(settings, progress)
    met = hit_med <= HIT_TARGET_US and rest == (0, 0) and connections == 1
    lines = [
        f"DNS cache on {platform.python_implementation()} {platform.python_version()} ({platform.machine()}): "
        f"{settings.rounds} rounds of {settings.calls} cache hits and of {gai_calls} getaddrinfo calls.",
        "",
        "| what | median us/call | best us/call |",
        "| --- | --- | --- |",
        f"| `DnsCache.resolve('localhost', 443)`, cache hit | {hit_med:.2f} | {hit_best:.2f} |",
        f"| `socket.getaddrinfo('localhost', 443)` (/etc/hosts, no DNS packet) | {gai_med:.2f} | {gai_best:.2f} |",
        "",
        "| pooled keep-alive client | calls | cache lookups | DNS queries | TCP connections |",
        "| --- | --- | --- | --- | --- |",
        f"| first call | 1 | {first[0]} | {first[1]} | 1 |",
        f"| next calls, same connection | {settings.pooled_calls} | {rest[0]} | {rest[1]} | {connections - 1} |",
        "",
        f"(server saw {requests} requests on {connections} connection(s))",
        "",
        f"target (hit <= 2 us, no DNS work on a pooled connection): {'met' if met else 'NOT met'}",
        "",
    ]
    return Outcome("\n".join(lines), ok=rest == (0, 0))
