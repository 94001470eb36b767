"""Last-known-good DNS for aiobotocore clients, through aiohttp's public resolver seam.

Why a resolver and not a connection hook: aiohttp asks ``TCPConnector``'s resolver (an
:class:`aiohttp.abc.AbstractResolver`) for a host's addresses and then connects to each result's
``host``/``port`` only; the TLS server name and the certificate check use the URL's host
(``server_hostname``). So returning numeric IPs changes *where the socket goes* and nothing else: SNI,
certificate verification, the Host header and SigV4 all still see the real name, as with the sync hook
(:mod:`resilient_aws.dns.connection`).

Why ``use_dns_cache=False``: aiohttp's own cache would keep our answers for ``ttl_dns_cache`` seconds
whatever the cache's rules say; with it off, aiohttp calls :meth:`CachedResolver.resolve` for every new
connection (in the caller's task, unshielded), and :class:`~resilient_aws.dns.DnsCache` decides.

The rules (what counts as a failure, stale serving, re-checks, statistics, events, persistence, the
fleet link) are the cache's, not copied here: a fresh answer is :meth:`DnsCache.peek` (a dict read, no
lock, no await); anything else is :meth:`DnsCache.resolve_async`, whose one lookup per name is a task
awaiting ``dns.asyncresolver`` and shared by every waiter (see its docstring for cancellation).

Life cycle: aiohttp closes a resolver only when it created it, so this one belongs to whoever made it
(the session); it owns nothing to release (the lookups in flight belong to the cache and end within
the DNS timeout).
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult

from ..dns.cache import AddrInfo, DnsCache
from ..dns.resolver import ip_literal
from ..errors import ConfigError

#: aiohttp connects to these results as they are: numeric host and port, nothing to resolve again.
_NUMERIC = socket.AI_NUMERICHOST | socket.AI_NUMERICSERV


class CachedResolver(AbstractResolver):
    """aiohttp resolver answering from a :class:`DnsCache` (last-known-good addresses).

    ``resolve`` returns the addresses in the cache's connection order, filtered to ``family`` unless it
    is ``AF_UNSPEC`` (aiohttp's default). A name with no usable answer raises the cache's
    :class:`~resilient_aws.dns.DnsLookupError`, an ``OSError``: aiohttp turns it into
    ``ClientConnectorDNSError`` and botocore into ``EndpointConnectionError``, which the core fails over.
    """

    def __init__(self, cache: DnsCache) -> None:
        self.cache = cache

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        literal = ip_literal(host)
        if literal is not None:  # like the sync path: an IP address needs no DNS
            lit_family, ip = literal
            return [_result(host, ip, port, lit_family)]
        infos = self.cache.peek(host, port)
        if infos is None:
            infos = await self.cache.resolve_async(host, port)
        return _results(host, port, family, infos)

    async def close(self) -> None:
        """Nothing to release (see the module docstring); the cache is closed by its owner."""

    def __repr__(self) -> str:
        return f"CachedResolver({self.cache!r})"


def _result(host: str, ip: str, port: int, family: int) -> ResolveResult:
    return {"hostname": host, "host": ip, "port": port, "family": family, "proto": socket.IPPROTO_TCP,
            "flags": _NUMERIC}


def _results(host: str, port: int, family: int, infos: list[AddrInfo]) -> list[ResolveResult]:
    out = [_result(host, str(sockaddr[0]), port, fam) for fam, _, _, _, sockaddr in infos
           if family == socket.AF_UNSPEC or fam == family]
    if not out:
        # The name resolves, but not in the family the connector was told to use: say so, as an
        # OSError, so it is a connection error like any other resolution failure.
        raise OSError(f"{host!r} has no {socket.AddressFamily(family).name} address "
                      f"(cached: {', '.join(str(i[4][0]) for i in infos)})")
    return out


def connector_args(resolver: AbstractResolver, user_args: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``AioConfig(connector_args=...)`` that routes a client's connections through ``resolver`` while
    keeping the user's other connector settings (``limit``, ``keepalive_timeout``, ...): ``AioConfig.merge``
    replaces ``connector_args`` wholesale, so they must be merged here.

    ``use_dns_cache`` is forced off (aiohttp's cache would keep answers past the cache's rules). A
    ``resolver`` of the user's own is refused rather than silently replaced: one of the two would be
    ignored, and it would be theirs.
    """
    args = dict(user_args or {})
    own = args.get("resolver")
    if own is not None and own is not resolver:
        raise ConfigError("config", "connector_args sets its own 'resolver', which would bypass the last-known-good "
                          "DNS cache; remove it, or disable DNS caching with DnsPolicy(enabled=False)")
    return {**args, "resolver": resolver, "use_dns_cache": False}


__all__ = ["CachedResolver", "connector_args"]
