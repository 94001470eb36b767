"""Name resolution for the drill's plain botocore clients: a fresh DNS query on every new connection.

Why this exists: the drill's point is the 2025-10-20 DNS failure, so the plain botocore clients must
resolve ``dynamodb.us-east-1.drill.test`` through the drill's loopback DNS server, exactly as a
stock boto3 process resolves ``dynamodb.us-east-1.amazonaws.com`` through its system resolver.
Patching ``socket.getaddrinfo`` would change every socket of the process (the moto servers' and the
resilient client's included), so instead each baseline client gets its own connection hook.

Why not ``resilient_aws.dns.DnsCache``: that cache *is* the feature under test (last-known-good,
TTL, single flight). A stock client has no cache at all: urllib3 calls ``getaddrinfo`` for every new
connection, and glibc's ``getaddrinfo`` (no nscd) sends an A and an AAAA query each time. So
:class:`UncachedResolver` does the same: two queries per new connection, no memory of past answers,
and any failure (empty answer, NXDOMAIN, SERVFAIL, timeout) is a failed lookup. It has the two
methods ``resilient_aws.dns.attach_dns`` expects of a cache (``resolve`` and ``report_failure``),
so the connection hook itself is the library's, not a second copy.
"""

from __future__ import annotations

import socket
from typing import Any

import dns.exception
import dns.rdatatype
import dns.resolver

from ..dns import DnsLookupError, attach_dns

__all__ = ["UncachedResolver", "attach_uncached_dns"]


class UncachedResolver:
    """getaddrinfo-like lookups against given nameservers with no cache (A then AAAA, like glibc)."""

    def __init__(self, nameservers: list[str], port: int, timeout: float = 2.0) -> None:
        self._nameservers = list(nameservers)
        self._port = port
        self._timeout = timeout

    def _resolver(self) -> dns.resolver.Resolver:
        r = dns.resolver.Resolver(configure=False)  # no /etc/resolv.conf, no dnspython cache
        r.nameservers = self._nameservers
        r.port = self._port
        r.timeout = r.lifetime = self._timeout
        return r

    def resolve(self, host: str, port: int) -> list[tuple[Any, ...]]:
        resolver = self._resolver()
        infos: list[tuple[Any, ...]] = []
        failure: tuple[str, str] | None = None
        for rdtype, family in ((dns.rdatatype.A, socket.AF_INET), (dns.rdatatype.AAAA, socket.AF_INET6)):
            try:
                answer = resolver.resolve(host, rdtype, search=False, raise_on_no_answer=False)
            except dns.resolver.NXDOMAIN as e:
                failure = ("nxdomain", str(e))
                break  # glibc stops too: the name does not exist
            except dns.resolver.NoNameservers as e:
                failure = failure or ("servfail", str(e))
                continue
            except dns.exception.Timeout as e:
                failure = failure or ("timeout", str(e))
                continue
            for rr in answer.rrset or ():
                infos.append((family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (rr.address, port)))
        if infos:
            return infos
        kind, message = failure or ("empty", "no A or AAAA records")
        raise DnsLookupError(host, kind, message)

    def report_failure(self, host: str, ip: str) -> None:
        """A stock client remembers nothing about failed addresses."""


def attach_uncached_dns(client: Any, nameservers: list[str], port: int, timeout: float = 2.0) -> None:
    """Make ``client`` (a botocore client) resolve its endpoint through ``nameservers:port`` on every
    new connection, without caching: a stock client aimed at the drill's DNS server."""
    attach_dns(client, UncachedResolver(nameservers, port, timeout))  # type: ignore[arg-type]
