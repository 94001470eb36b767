"""The connection hook: one botocore client's new connections use the cache, nothing global changes."""

from __future__ import annotations

import http.client
import http.server
import socket
import threading
from collections.abc import Iterator

import botocore.awsrequest
import pytest
from botocore.exceptions import EndpointConnectionError
from support.dns import NAME, ZONE, ips, make_client

from resilient_aws.dns import attach_dns, is_attached
from resilient_aws.testing.http import CountingHttpServer

pytestmark = pytest.mark.integration


def counting(cache) -> list[str]:
    """Record every host the cache is asked for (an instance attribute shadows the method)."""
    seen: list[str] = []
    original = cache.resolve

    def resolve(host: str, port: int):
        seen.append(host)
        return original(host, port)

    cache.resolve = resolve
    return seen


@pytest.fixture
def named_endpoint(dns_server, moto_port) -> str:
    dns_server.set(NAME, a=["127.0.0.1"], ttl=30)
    return f"http://{NAME}:{moto_port}"


def test_a_client_reaches_its_endpoint_through_the_cache(named_endpoint, make_live_cache):
    cache = make_live_cache()
    client = make_client(named_endpoint)
    attach_dns(client, cache)
    assert "TableNames" in client.list_tables()
    assert cache.addresses(NAME) == ["127.0.0.1"]
    assert is_attached(client)


def test_socket_getaddrinfo_is_never_replaced_nor_called(named_endpoint, make_live_cache, monkeypatch):
    original = socket.getaddrinfo
    calls: list[tuple] = []

    def spy(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    cache = make_live_cache()
    client = make_client(named_endpoint)
    attach_dns(client, cache)
    assert socket.getaddrinfo is original  # attach_dns patched nothing global
    monkeypatch.setattr(socket, "getaddrinfo", spy)
    client.list_tables()
    assert calls == []  # the hooked connection never asked the system resolver
    monkeypatch.undo()
    assert socket.getaddrinfo is original


def test_a_client_without_attach_dns_is_unaffected(named_endpoint, make_live_cache, moto_port, monkeypatch):
    cache = make_live_cache()
    hooked = make_client(named_endpoint)
    attach_dns(hooked, cache)
    plain = make_client(f"http://localhost:{moto_port}")
    pools = plain._endpoint.http_session._pool_classes_by_scheme
    assert pools == {"http": botocore.awsrequest.AWSHTTPConnectionPool,
                     "https": botocore.awsrequest.AWSHTTPSConnectionPool}
    assert not is_attached(plain)
    seen = counting(cache)
    original = socket.getaddrinfo
    system: list[str] = []
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *a, **k: (system.append(host), original(host, *a, **k))[1])
    plain.list_tables()
    assert seen == [] and system == ["localhost"]  # the plain client resolves as botocore always did


def test_a_name_with_no_history_fails_as_an_endpoint_connection_error(dns_server, make_live_cache, moto_port):
    cache = make_live_cache()
    client = make_client(f"http://missing.{ZONE}:{moto_port}")
    attach_dns(client, cache)
    with pytest.raises(EndpointConnectionError) as info:
        client.list_tables()
    assert "missing." in str(info.value)


def test_a_refused_address_is_skipped_and_moved_to_the_back(dns_server, make_live_cache, moto_port):
    dns_server.set(NAME, a=["127.0.0.3", "127.0.0.4", "127.0.0.1"], ttl=30)  # nothing listens on .3/.4
    cache = make_live_cache()
    cache.resolve(NAME, moto_port)
    cache.report_failure(NAME, "127.0.0.1")  # the good address last: both bad ones are tried first
    before = cache.stats()["connect_failures"]
    client = make_client(f"http://{NAME}:{moto_port}")
    attach_dns(client, cache)
    assert "TableNames" in client.list_tables()
    assert cache.addresses(NAME)[0] == "127.0.0.1"
    assert cache.stats()["connect_failures"] - before == 2


def test_when_every_address_refuses_the_error_is_an_endpoint_connection_error(dns_server, make_live_cache, moto_port):
    dns_server.set(NAME, a=["127.0.0.3"], ttl=30)
    client = make_client(f"http://{NAME}:{moto_port}")
    attach_dns(client, make_live_cache())
    with pytest.raises(EndpointConnectionError):
        client.list_tables()


def test_a_pooled_keep_alive_connection_does_no_dns_work(dns_server, make_live_cache):
    dns_server.set(NAME, a=["127.0.0.1"], ttl=30)
    cache = make_live_cache()
    with CountingHttpServer() as server:
        client = make_client(f"http://{NAME}:{server.port}")
        attach_dns(client, cache)
        seen = counting(cache)
        for _ in range(20):
            client.list_tables()
        assert server.requests == 20 and server.connections == 1
    assert seen == [NAME]


def test_attach_dns_twice_swaps_the_cache_without_stacking_subclasses(named_endpoint, make_live_cache):
    first, second = make_live_cache(), make_live_cache()
    client = make_client(named_endpoint)
    attach_dns(client, first)
    client.list_tables()
    attach_dns(client, second)
    client.list_tables()
    pool_cls = client._endpoint.http_session._pool_classes_by_scheme["http"]
    assert pool_cls.__mro__[1] is botocore.awsrequest.AWSHTTPConnectionPool
    assert pool_cls.ConnectionCls._resilient_dns_cache is second
    assert second.addresses(NAME) == ["127.0.0.1"]


class _ForwardProxy:
    """A tiny HTTP forward proxy on loopback that sends everything to one upstream port."""

    def __init__(self, upstream_port: int) -> None:
        self.targets: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                outer.targets.append(self.path)
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                upstream = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=5)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("proxy-connection",)}
                upstream.request("POST", "/", body=body, headers=headers)
                resp = upstream.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                upstream.close()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)

    def __enter__(self) -> _ForwardProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy(moto_port) -> Iterator[_ForwardProxy]:
    with _ForwardProxy(moto_port) as p:
        yield p


def test_proxies_keep_working_and_resolve_the_target_themselves(dns_server, make_live_cache, moto_port, proxy):
    dns_server.set(NAME, a=["127.0.0.1"], ttl=30)
    cache = make_live_cache()
    seen = counting(cache)
    client = make_client(f"http://{NAME}:{moto_port}", proxies={"http": f"http://127.0.0.1:{proxy.port}"})
    attach_dns(client, cache)
    assert "TableNames" in client.list_tables()
    assert proxy.targets == [f"http://{NAME}:{moto_port}/"]
    assert seen == []


def test_a_client_with_another_http_layer_is_left_alone(make_live_cache, caplog):
    class Odd:
        _endpoint = None

    attach_dns(Odd(), make_live_cache())
    assert "not attached" in caplog.text


def test_resolve_returns_getaddrinfo_shaped_tuples(dns_server, make_live_cache):
    dns_server.set(NAME, a=["127.0.0.5"], aaaa=["::1"], ttl=30)
    infos = make_live_cache().resolve(NAME, 8000)
    assert infos == [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.5", 8000)),
                     (socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("::1", 8000, 0, 0))]
    assert ips(infos) == ["127.0.0.5", "::1"]
