"""TLS through CachedResolver: aiohttp connects to the cached IP, while SNI and certificate verification
keep the real host name (the asyncio twin of tests/dns/test_dns_tls.py), through aiobotocore's own seam
(``AioConfig(connector_args=...)``)."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from typing import Any

import pytest
import trustme
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import SSLError

from resilient_aws.aio.resolver import CachedResolver, connector_args
from resilient_aws.dns import DnsCache
from resilient_aws.policy import DnsPolicy
from resilient_aws.testing.dns_server import LoopbackDnsServer
from resilient_aws.testing.http import CountingHttpServer

pytestmark = [pytest.mark.asyncio, pytest.mark.integration]

SECURE = "dynamodb.test-region-1.example.test"
WRONG = "dynamodb.test-region-2.example.test"


@pytest.fixture
def aio_tls_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def aio_tls_server(aio_tls_ca) -> Iterator[tuple[CountingHttpServer, list[str]]]:
    """An HTTPS server on 127.0.0.1 whose certificate names only SECURE; records the SNI it sees."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    aio_tls_ca.issue_cert(SECURE).configure_cert(context)
    sni: list[str] = []
    context.sni_callback = lambda sock, name, ctx: sni.append(name)  # type: ignore[assignment,return-value]
    with CountingHttpServer(ssl_context=context) as server:
        yield server, sni


@pytest.fixture
def aio_tls_resolver(tmp_path) -> Iterator[CachedResolver]:
    """A CachedResolver whose DNS server answers 127.0.0.1 for SECURE and WRONG."""
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    with LoopbackDnsServer() as dns_server:
        for name in (SECURE, WRONG):
            dns_server.set(name, a=["127.0.0.1"], ttl=30)
        cache = DnsCache(DnsPolicy(nameservers=["127.0.0.1"], port=dns_server.port, timeout=1.0),
                         hosts_path=str(hosts))
        yield CachedResolver(cache)
        cache.close()


async def _list_tables(url: str, bundle: str, resolver: CachedResolver) -> Any:
    config = AioConfig(connector_args=connector_args(resolver, {"keepalive_timeout": 5}),
                       retries={"total_max_attempts": 1}, connect_timeout=2, read_timeout=5)
    async with get_session().create_client("dynamodb", region_name="us-east-1", endpoint_url=url, verify=bundle,
                                           aws_access_key_id="x", aws_secret_access_key="x",
                                           config=config) as client:
        return await client.list_tables()


async def test_https_through_a_cached_address_verifies_the_real_name(aio_tls_ca, aio_tls_server, aio_tls_resolver,
                                                                    tmp_path):
    server, sni = aio_tls_server
    bundle = tmp_path / "ca.pem"
    aio_tls_ca.cert_pem.write_to_path(str(bundle))
    response = await _list_tables(f"https://{SECURE}:{server.port}", str(bundle), aio_tls_resolver)
    assert response["TableNames"] == []
    assert sni and set(sni) == {SECURE}
    assert aio_tls_resolver.cache.addresses(SECURE) == ["127.0.0.1"]
    assert server.requests == 1


async def test_a_certificate_for_another_name_fails_verification(aio_tls_ca, aio_tls_server, aio_tls_resolver,
                                                                 tmp_path):
    server, sni = aio_tls_server
    bundle = tmp_path / "ca.pem"
    aio_tls_ca.cert_pem.write_to_path(str(bundle))
    with pytest.raises(SSLError) as info:
        await _list_tables(f"https://{WRONG}:{server.port}", str(bundle), aio_tls_resolver)
    assert "hostname" in str(info.value).lower() or "match" in str(info.value).lower()
    assert sni == [WRONG]
    assert aio_tls_resolver.cache.addresses(WRONG) == ["127.0.0.1"]  # the name did resolve through the cache
    assert server.requests == 0
