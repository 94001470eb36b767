"""One DNS lookup: IP literal, then ``/etc/hosts``, then dnspython (A, then AAAA); blocking or awaited.

Why dnspython and not ``socket.getaddrinfo``: getaddrinfo hides the TTL and folds "no such name",
"no records", "server failed" and "server silent" into one ``gaierror``. The last-known-good cache needs
both: the TTL to know when to refresh, and the kind of failure to log and count it. The hosts file is
read here because dnspython does not, and a user's ``/etc/hosts`` override must keep working.

Two faces, one set of rules: ``Resolver.lookup`` blocks (threads), ``Resolver.lookup_async`` awaits
``dns.asyncresolver`` on the event loop (asyncio clients). Which query comes next and how each outcome is
classified (empty, NXDOMAIN, SERVFAIL, timeout, unreachable) is written once, in ``_Queries``, which does
no I/O; each face only sends the queries it asks for.

This module never caches and never holds a lock: :class:`~resilient_aws.dns.cache.DnsCache` does both.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import dns.asyncbackend
import dns.asyncresolver
import dns.exception
import dns.name
import dns.rcode
import dns.rdatatype
import dns.resolver

from ..policy import DnsPolicy

#: Where the hosts file is read from unless told otherwise.
HOSTS_PATH = "/etc/hosts"
#: TTL given to answers from ``/etc/hosts`` or the system resolver fallback: short, so an edit is seen.
HOSTS_TTL = 5.0
#: Failure kinds, as reported in logs, events and ``stats()``.
FAILURE_KINDS = ("empty", "nxdomain", "servfail", "timeout", "unreachable", "error")

Address = tuple[int, str]  # (socket family, IP address text)


@dataclass(frozen=True)
class Answer:
    """A non-empty answer: addresses in preference order (IPv4 first) and its TTL in seconds."""

    addresses: tuple[Address, ...]
    ttl: float
    source: str  # "dns", "hosts", "literal", "system"
    queries: int = 0


class LookupFailure(Exception):
    """A lookup that produced no address. ``kind`` is one of :data:`FAILURE_KINDS`."""

    def __init__(self, host: str, kind: str, message: str, queries: int = 0) -> None:
        super().__init__(f"{host}: {kind}: {message}")
        self.host = host
        self.kind = kind
        self.queries = queries


def ip_literal(host: str) -> Address | None:
    """``(family, ip)`` if ``host`` is an IP address (``[::1]`` too), else None."""
    text = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    return (socket.AF_INET6 if ip.version == 6 else socket.AF_INET, text)


class HostsFile:
    """``/etc/hosts``, re-read when its modification time changes (checked at most once a second of
    ``monotonic()``, the owning cache's clock, so a test clock decides when an edit is seen)."""

    def __init__(self, path: str = HOSTS_PATH, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._mtime: float | None = None
        self._checked = 0.0
        self._table: dict[str, tuple[Address, ...]] = {}

    def lookup(self, host: str) -> tuple[Address, ...]:
        now = self._monotonic()
        if now - self._checked >= 1.0:
            self._reload(now)
        return self._table.get(host.lower().rstrip("."), ())

    def reload_due(self) -> bool:
        """Whether the next :meth:`lookup` may touch the file (a ``stat``, perhaps a read, under a lock):
        an event loop then calls it in a thread; otherwise it is a dict read."""
        return self._monotonic() - self._checked >= 1.0

    def _reload(self, now: float) -> None:
        with self._lock:
            if now - self._checked < 1.0:
                return
            self._checked = now
            try:
                mtime = os.stat(self.path).st_mtime
                if mtime == self._mtime:
                    return
                with open(self.path, encoding="utf-8", errors="replace") as f:
                    text = f.read(1 << 20)
            except OSError:
                self._table, self._mtime = {}, None
                return
            table: dict[str, list[Address]] = {}
            for line in text.splitlines():
                fields = line.split("#", 1)[0].split()
                if len(fields) < 2:
                    continue
                addr = ip_literal(fields[0])
                if addr is None:
                    continue
                for name in fields[1:]:
                    entry = table.setdefault(name.lower().rstrip("."), [])
                    if addr not in entry:
                        entry.append(addr)
            # IPv4 first, as for DNS answers; stable within a family (file order).
            self._table = {k: tuple(sorted(v, key=lambda a: a[0] != socket.AF_INET)) for k, v in table.items()}
            self._mtime = mtime


class Resolver:
    """Resolve one host name to addresses with a TTL, or raise :class:`LookupFailure`.

    ``DnsPolicy.nameservers``/``port``/``timeout`` choose the servers; without nameservers the
    system's ``/etc/resolv.conf`` is used, and if that cannot be read, ``socket.getaddrinfo``
    (which gives no TTL: :data:`HOSTS_TTL` is assumed).
    """

    def __init__(self, policy: DnsPolicy, hosts: HostsFile | None = None) -> None:
        self.policy = policy
        self.hosts = hosts if hosts is not None else HostsFile()
        self.query_ipv6 = socket.has_ipv6
        self._dns: dns.resolver.Resolver | None
        self._adns: dns.asyncresolver.Resolver | None = None
        try:
            if policy.nameservers:
                r = dns.resolver.Resolver(configure=False)
                r.nameservers = list(policy.nameservers)
                r.port = policy.port
            else:
                r = dns.resolver.Resolver(configure=True)
                if policy.port != 53:
                    r.port = policy.port
            r.timeout = policy.timeout
            r.lifetime = policy.timeout
            r.cache = None
            self._dns = r
        except dns.resolver.NoResolverConfiguration:
            self._dns = None

    def lookup(self, host: str) -> Answer:
        literal = ip_literal(host)
        if literal is not None:
            return Answer((literal,), float("inf"), "literal")
        from_hosts = self.hosts.lookup(host)
        if from_hosts:
            return Answer(from_hosts, HOSTS_TTL, "hosts")
        if self._dns is None:
            return self._system(host)
        return self._query(host)

    def _system(self, host: str) -> Answer:
        try:
            infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except socket.gaierror as e:
            kind = "nxdomain" if e.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", -5)) else "error"
            raise LookupFailure(host, kind, str(e)) from e
        seen: list[Address] = []
        for family, _, _, _, sockaddr in infos:
            addr = (family, str(sockaddr[0]))  # an IP address (str) for AF_INET and AF_INET6
            if addr not in seen:
                seen.append(addr)
        if not seen:
            raise LookupFailure(host, "empty", "no address")
        seen.sort(key=lambda a: a[0] != socket.AF_INET)
        return Answer(tuple(seen), HOSTS_TTL, "system")

    def _query(self, host: str) -> Answer:
        assert self._dns is not None
        q = _Queries(host, self.query_ipv6)
        for rdtype, family in q.types:
            q.queries += 1
            try:
                ans = self._dns.resolve(q.qname, rdtype, raise_on_no_answer=False, search=False)
            except dns.exception.DNSException as e:
                if q.failed(e):
                    break
                continue
            q.answered(family, ans)
        return q.result()

    # -- the asyncio face ------------------------------------------------------------------------
    async def lookup_async(self, host: str) -> Answer:
        """:meth:`lookup` for an event loop: the DNS queries are awaited (``dns.asyncresolver``); the
        hosts file, when due for a re-read, and the ``getaddrinfo`` fallback run in a thread. Nothing
        here blocks the loop."""
        literal = ip_literal(host)
        if literal is not None:
            return Answer((literal,), float("inf"), "literal")
        hosts = self.hosts
        from_hosts = await asyncio.to_thread(hosts.lookup, host) if hosts.reload_due() else hosts.lookup(host)
        if from_hosts:
            return Answer(from_hosts, HOSTS_TTL, "hosts")
        if self._dns is None:
            return await asyncio.to_thread(self._system, host)
        return await self._query_async(host)

    async def _query_async(self, host: str) -> Answer:
        r = self._async_dns()
        backend = dns.asyncbackend.get_backend("asyncio")  # named: dnspython need not detect the library
        q = _Queries(host, self.query_ipv6)
        for rdtype, family in q.types:
            q.queries += 1
            try:
                ans = await r.resolve(q.qname, rdtype, raise_on_no_answer=False, search=False, backend=backend)
            except dns.exception.DNSException as e:
                if q.failed(e):
                    break
                continue
            q.answered(family, ans)
        return q.result()

    def _async_dns(self) -> dns.asyncresolver.Resolver:
        """dnspython's asyncio resolver, configured like the blocking one. Made on first use and copied
        from it, not from ``/etc/resolv.conf`` again: no file is read on the event loop. (Two loops in two
        threads may both make one; either is fine, they are equal.)"""
        r = self._adns
        if r is None:
            assert self._dns is not None
            r = dns.asyncresolver.Resolver(configure=False)
            r.nameservers = list(self._dns.nameservers)
            r.port = self._dns.port
            r.timeout = self._dns.timeout
            r.lifetime = self._dns.lifetime
            r.cache = None
            self._adns = r
        return r


class _Queries:
    """The queries of one lookup and how their outcomes add up, without the I/O, so that the blocking and
    the asyncio face follow the same rules. The face loops over ``types``, counts ``queries``, sends each
    query and reports it with :meth:`answered` or :meth:`failed`, then takes :meth:`result`.

    A first; AAAA too unless A already showed the server is silent or unreachable or the name is gone
    (so a dead server costs one timeout, not two)."""

    def __init__(self, host: str, query_ipv6: bool) -> None:
        try:
            self.qname = dns.name.from_text(host)
        except dns.exception.DNSException as e:
            raise LookupFailure(host, "error", f"bad name: {e}") from e
        self.host = host
        self.types = (("A", socket.AF_INET), ("AAAA", socket.AF_INET6)) if query_ipv6 else (("A", socket.AF_INET),)
        self.queries = 0
        self._addresses: list[Address] = []
        self._ttls: list[float] = []
        self._failure: LookupFailure | None = None

    def answered(self, family: int, ans: dns.resolver.Answer) -> None:
        if ans.rrset is not None:
            self._ttls.append(float(ans.rrset.ttl))
            self._addresses.extend((family, rd.address) for rd in ans.rrset)

    def failed(self, e: dns.exception.DNSException) -> bool:
        """Record a failed query; True when no further query is worth sending. NXDOMAIN ends the
        lookup at once (raises)."""
        host, queries = self.host, self.queries
        if isinstance(e, dns.resolver.NXDOMAIN):
            raise LookupFailure(host, "nxdomain", "no such name", queries) from e
        if isinstance(e, dns.exception.Timeout):
            self._failure = LookupFailure(host, "timeout", str(e), queries)
            return True
        if isinstance(e, dns.resolver.NoNameservers):
            self._failure = LookupFailure(host, _no_nameservers_kind(e), str(e), queries)
            return self._failure.kind == "unreachable"
        self._failure = LookupFailure(host, "error", str(e), queries)
        return False

    def result(self) -> Answer:
        if self._addresses:
            return Answer(tuple(self._addresses), min(self._ttls), "dns", self.queries)
        if self._failure is not None:
            self._failure.queries = self.queries
            raise self._failure
        raise LookupFailure(self.host, "empty", "NOERROR with no A/AAAA records", self.queries)


def _no_nameservers_kind(exc: dns.resolver.NoNameservers) -> str:
    """SERVFAIL (or REFUSED) from a server, versus no server reachable at all."""
    errors = exc.kwargs.get("errors") or []
    for item in errors:
        # dnspython: (server, tcp, port, exception_or_None, response_or_None)
        response = item[4] if len(item) > 4 else None
        if response is not None and response.rcode() != dns.rcode.NOERROR:
            return "servfail"
    return "unreachable"


__all__ = ["FAILURE_KINDS", "HOSTS_PATH", "HOSTS_TTL", "Answer", "HostsFile", "LookupFailure", "Resolver", "ip_literal"]
