"""The hook: one botocore client's new connections open to addresses from a :class:`DnsCache`.

Why here: urllib3 2.x opens a connection's socket in ``HTTPConnection._new_conn()`` from
``(self._dns_host, self.port)``, while TLS SNI and certificate checks use ``self.host`` (and
``server_hostname``). A subclass of botocore's ``AWSHTTPConnection`` / ``AWSHTTPSConnection`` whose
``_new_conn`` resolves ``_dns_host`` through the cache changes *where the socket goes* and nothing
else: the Host header, SigV4, SNI and certificate verification all still see the real name.

Why per client: the subclasses are installed in *this* client's ``URLLib3Session`` only
(``_pool_classes_by_scheme``, a dict owned by that session and shared with its pool managers, proxy
managers included). ``socket.getaddrinfo`` and botocore's classes are never modified, so other
clients and libraries in the process are unaffected.

Proxies: a connection to a proxy (``self.proxy`` set) keeps urllib3's own resolution of the proxy's
name; the proxy resolves the AWS name itself, where this cache cannot help.
"""

from __future__ import annotations

import logging
import socket
import sys
from typing import Any

import botocore.awsrequest
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

from .. import _compat
from .cache import DnsCache, DnsLookupError

logger = logging.getLogger("resilient_aws.dns")

_MARK = "_resilient_dns_cache"


class _CachedDnsMixin:
    """``_new_conn`` through the cache; every address in order, a failed one moved to the back."""

    _resilient_dns_cache: DnsCache
    # attributes provided by urllib3's HTTPConnection
    _dns_host: str
    host: str
    port: int
    proxy: Any
    timeout: Any
    source_address: Any
    socket_options: Any

    def _new_conn(self) -> socket.socket:
        if self.proxy is not None:
            # the mixin's super() is urllib3's HTTPConnection, which attach_dns() mixes it into
            return super()._new_conn()  # type: ignore[misc,no-any-return]
        cache = self._resilient_dns_cache
        host = self._dns_host
        try:
            infos = cache.resolve(host, self.port)
        except DnsLookupError as e:
            reason = socket.gaierror(socket.EAI_NONAME, str(e))
            raise NameResolutionError(self.host, self, reason) from e  # type: ignore[arg-type]
        err: OSError | None = None
        for family, socktype, proto, _, sockaddr in infos:
            sock = None
            try:
                sock = socket.socket(family, socktype, proto)
                for opt in self.socket_options or ():
                    sock.setsockopt(*opt)
                if self.timeout is not _compat.DEFAULT_TIMEOUT:
                    sock.settimeout(self.timeout)
                if self.source_address:
                    sock.bind(self.source_address)
                sock.connect(sockaddr)
            except OSError as e:
                if sock is not None:
                    sock.close()
                err = e
                if len(infos) > 1:
                    logger.debug("connection to %s at %s failed (%s); trying the next address",
                                host, sockaddr[0], e)
                cache.report_failure(host, sockaddr[0])
                continue
            sys.audit("http.client.connect", self, self.host, self.port)
            return sock
        if isinstance(err, (TimeoutError, socket.timeout)):
            raise ConnectTimeoutError(
                self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})") from err
        raise NewConnectionError(self, f"Failed to establish a new connection: {err}") from err  # type: ignore[arg-type]


def attach_dns(client: Any, cache: DnsCache) -> None:
    """Route the new connections of ``client`` (a botocore client) through ``cache``.

    Idempotent (a second call only swaps the cache). Pools the client already made are dropped so
    that its next connections use the hook; connections in use finish normally. A client whose HTTP
    layer is not botocore's ``URLLib3Session`` is left alone with a warning.
    """
    http_session = _compat.http_session(client)
    pools = _compat.pool_classes(http_session) if http_session is not None else None
    if http_session is None or not isinstance(pools, dict) or "http" not in pools or "https" not in pools:
        logger.warning("%r has no botocore URLLib3Session; DNS cache not attached", client)
        return
    for scheme in ("http", "https"):
        pool_cls = pools[scheme]
        if getattr(pool_cls.ConnectionCls, _MARK, None) is not None:  # attached before: unwrap
            pool_cls = pool_cls.__mro__[1]
        conn_cls = type(f"CachedDns{pool_cls.ConnectionCls.__name__}", (_CachedDnsMixin, pool_cls.ConnectionCls),
                        {_MARK: cache, "__module__": __name__})
        pools[scheme] = type(f"CachedDns{pool_cls.__name__}", (pool_cls,),
                             {"ConnectionCls": conn_cls, "__module__": __name__})
    for manager in _compat.pool_managers(http_session):
        if manager.pool_classes_by_scheme is not pools:  # botocore shares the dict; keep it so
            manager.pool_classes_by_scheme = pools
        if len(manager.pools):
            manager.clear()


def is_attached(client: Any) -> bool:
    """True if ``client``'s connections go through a :class:`DnsCache`."""
    http_session = _compat.http_session(client)
    pools = _compat.pool_classes(http_session) if http_session is not None else {}
    return any(getattr(getattr(p, "ConnectionCls", None), _MARK, None) is not None for p in pools.values())


# The stock classes, for reference in tests and docs.
STOCK_CONNECTION_CLASSES = (botocore.awsrequest.AWSHTTPConnection, botocore.awsrequest.AWSHTTPSConnection)

__all__ = ["STOCK_CONNECTION_CLASSES", "attach_dns", "is_attached"]
