"""TLS through a cached address: the socket goes to the cached IP, while SNI and certificate
verification keep the real host name."""

from __future__ import annotations

import ssl
from collections.abc import Iterator

import pytest
import trustme
from botocore.exceptions import SSLError
from support.dns import ZONE, make_client

from resilient_aws.dns import attach_dns
from resilient_aws.testing.http import CountingHttpServer

pytestmark = pytest.mark.integration

SECURE = f"secure.{ZONE}"
WRONG = f"wrong.{ZONE}"


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_server(ca, dns_server) -> Iterator[tuple[list[str]]]:
    """An HTTPS server on 127.0.0.1 whose certificate names only SECURE; records the SNI it sees."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(SECURE).configure_cert(context)
    sni: list[str] = []
    context.sni_callback = lambda sock, name, ctx: sni.append(name)
    for name in (SECURE, WRONG):
        dns_server.set(name, a=["127.0.0.1"], ttl=30)
    with CountingHttpServer(ssl_context=context) as server:
        yield server, sni


def test_https_through_a_cached_address_verifies_the_real_name(ca, tls_server, make_live_cache, tmp_path):
    server, sni = tls_server
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    cache = make_live_cache()
    client = make_client(f"https://{SECURE}:{server.port}", verify=str(bundle))
    attach_dns(client, cache)
    assert client.list_tables()["TableNames"] == []
    assert sni and set(sni) == {SECURE}
    assert cache.addresses(SECURE) == ["127.0.0.1"]


def test_a_certificate_for_another_name_fails_verification(ca, tls_server, make_live_cache, tmp_path):
    server, sni = tls_server
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    client = make_client(f"https://{WRONG}:{server.port}", verify=str(bundle))
    attach_dns(client, make_live_cache())
    with pytest.raises(SSLError) as info:
        client.list_tables()
    assert "hostname" in str(info.value).lower() or "match" in str(info.value).lower()
    assert sni == [WRONG]
